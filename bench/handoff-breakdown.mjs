// Where a cross-process handoff's time goes: the parent holds the lock (util-linux-style
// flock through fs-ext), lets one waiter process block, releases, and measures release ->
// the waiter's completion callback (the kernel's and the event loop's wake-up) and callback
// -> the waiter's awaiting code resumed (the JavaScript of the grant). Waiters of every mode
// take turns in one run, in an order that rotates every round (the first after the parent's
// own pause pays differently), so drift and position hit all alike; and each mode's waiter
// process is replaced every PER_PROCESS rounds, since one process keeps its own bias (where
// the scheduler tends to place its threads) of 20% and more on a small VM.
// Usage: node bench/handoff-breakdown.mjs [rounds=300]   (needs the fs-ext dev dependency)
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const fsExt = require('fs-ext');
const here = path.dirname(fileURLToPath(import.meta.url));
const rounds = Number(process.argv[2] ?? 300);
const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'sf-handoff-'));
const lockPath = path.join(dir, 's.jsonl.lock');
fs.writeFileSync(lockPath, '');

function waiter(mode) {
  const child = spawn(process.execPath, [path.join(here, 'handoff-waiter.cjs'), mode, lockPath], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = [];
  let wake = null;
  let buffer = '';
  child.stdout.on('data', (chunk) => {
    buffer += chunk;
    for (let i; (i = buffer.indexOf('\n')) >= 0; buffer = buffer.slice(i + 1)) lines.push(buffer.slice(0, i));
    wake?.();
  });
  const next = () =>
    new Promise((resolve) => {
      const poll = () => (lines.length > 0 ? ((wake = null), resolve(lines.shift())) : (wake = poll));
      poll();
    });
  return { mode, child, next };
}

const PER_PROCESS = 25;
const waiters = ['binding', 'api', 'api-record', 'fs-ext'].map((mode) => ({ mode, child: null, samples: [], wake: [], grant: [] }));
for (let round = 0; round < rounds; round++) {
  if (round % PER_PROCESS === 0) {
    for (const [i, w] of waiters.entries()) {
      w.child?.kill();
      waiters[i] = { ...w, ...waiter(w.mode), samples: w.samples, wake: w.wake, grant: w.grant };
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  for (let i = 0; i < waiters.length; i++) {
    const w = waiters[(round + i) % waiters.length];
    const fd = fs.openSync(lockPath, 'r+');
    fsExt.flockSync(fd, 'ex');
    w.child.stdin.write('go\n');
    await w.next(); // "waiting"
    await new Promise((r) => setTimeout(r, 3)); // let it block in the kernel
    const released = process.hrtime.bigint(); // from the start of the release, as run.mjs times it
    fs.closeSync(fd);
    const [resumed, callback] = (await w.next()).split(' ').slice(1).map(BigInt);
    w.samples.push(Number(resumed - released) / 1000);
    w.wake.push(Number(callback - released) / 1000);
    w.grant.push(Number(resumed - callback) / 1000);
  }
}
console.log(
  `| waiter (${rounds} handoffs each, interleaved) | p50 µs | p90 µs | × fs-ext p50 | release → callback p50 | callback → resumed p50 |\n|---|---:|---:|---:|---:|---:|`,
);
const p = (s, q) => s[Math.min(s.length - 1, Math.floor(s.length * q))];
const median = (samples) => p([...samples].sort((a, b) => a - b), 0.5);
const base = median(waiters.find((w) => w.mode === 'fs-ext').samples);
for (const w of waiters) {
  w.child.kill();
  const s = [...w.samples].sort((a, b) => a - b);
  console.log(`| ${w.mode} | ${p(s, 0.5).toFixed(1)} | ${p(s, 0.9).toFixed(1)} | ${(p(s, 0.5) / base).toFixed(2)} | ${median(w.wake).toFixed(1)} | ${median(w.grant).toFixed(1)} |`);
}
fs.rmSync(dir, { recursive: true, force: true });
