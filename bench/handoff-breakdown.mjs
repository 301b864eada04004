// Where a cross-process handoff's time goes: the parent holds the lock (util-linux-style
// flock through fs-ext), lets one waiter process block, releases, and measures release ->
// waiter resumed. Waiters of every mode take turns in one run, so drift hits all alike.
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
  return { mode, child, next, samples: [] };
}

const waiters = ['binding', 'api', 'api-record', 'fs-ext'].map(waiter);
await new Promise((r) => setTimeout(r, 500));
for (let round = 0; round < rounds; round++) {
  for (const w of waiters) {
    const fd = fs.openSync(lockPath, 'r+');
    fsExt.flockSync(fd, 'ex');
    w.child.stdin.write('go\n');
    await w.next(); // "waiting"
    await new Promise((r) => setTimeout(r, 3)); // let it block in the kernel
    const released = process.hrtime.bigint(); // from the start of the release, as run.mjs times it
    fs.closeSync(fd);
    const granted = BigInt((await w.next()).split(' ')[1]);
    w.samples.push(Number(granted - released) / 1000);
  }
}
console.log(`| waiter (${rounds} handoffs each, interleaved) | p50 µs | p90 µs | × fs-ext p50 |\n|---|---:|---:|---:|`);
const p = (s, q) => s[Math.min(s.length - 1, Math.floor(s.length * q))];
const base = p([...waiters.find((w) => w.mode === 'fs-ext').samples].sort((a, b) => a - b), 0.5);
for (const w of waiters) {
  w.child.kill();
  const s = [...w.samples].sort((a, b) => a - b);
  console.log(`| ${w.mode} | ${p(s, 0.5).toFixed(1)} | ${p(s, 0.9).toFixed(1)} | ${(p(s, 0.5) / base).toFixed(2)} |`);
}
fs.rmSync(dir, { recursive: true, force: true });
