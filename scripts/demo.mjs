// `npm run demo`: what session-flock does, in a few seconds, with real processes.
//
//   1. process A takes the session lock and appends to a JSONL transcript;
//   2. process B tries for 1.5 s and gets a timeout that names A;
//   3. `session-flock status` shows who holds what;
//   4. A is SIGKILLed (no cleanup runs) and B, already waiting, gets the lock at once;
//   5. `session-flock status` again; then everything is cleaned up.
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const lib = path.join(root, 'dist', 'cjs', 'index.js');
const cli = path.join(root, 'dist', 'cjs', 'cli', 'main.js');
if (!fs.existsSync(lib) || !fs.existsSync(cli)) {
  console.error('dist/ is missing: run `npm run demo` (it builds first) or `npm run build:ts`.');
  process.exit(1);
}

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const bold = (s) => (color ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s) => (color ? `\x1b[2m${s}\x1b[0m` : s);
let step = 0;
const heading = (text) => console.log(`\n${bold(`[${++step}] ${text}`)}`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-flock-demo-'));
const sessions = path.join(dir, 'sessions');
fs.mkdirSync(sessions);
const transcript = path.join(sessions, `${randomUUID().slice(0, 8)}.jsonl`);
const children = new Set();

function cleanup() {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
}
process.on('exit', cleanup);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

// Process A: holds the lock and appends a line every 200 ms.
const writerCode = `
  const fs = require('node:fs');
  const { acquire } = require(${JSON.stringify(lib)});
  (async () => {
    const lock = await acquire(process.argv[1], { owner: 'agent:writer' });
    console.log('holding the lock (pid ' + process.pid + ')');
    let n = 0;
    // The interval uses the lock, so it stays reachable: a SessionLock that becomes
    // garbage while held is released by its finalizer (with a leak warning).
    setInterval(() => {
      if (!lock.held) throw new Error('lost the lock');
      fs.appendFileSync(process.argv[1], JSON.stringify({ from: 'A', n: ++n, at: new Date().toISOString() }) + '\\n');
      if (n <= 3) console.log('appended line ' + n);
    }, 200);
  })();
`;

// Process B: one attempt with a 1.5 s budget (fails: A holds it), then waits for real.
const secondCode = `
  const fs = require('node:fs');
  const { acquire, LockTimeoutError } = require(${JSON.stringify(lib)});
  (async () => {
    try {
      await acquire(process.argv[1], { owner: 'agent:second', timeoutMs: 1500 });
    } catch (error) {
      if (!(error instanceof LockTimeoutError)) throw error;
      console.log('TIMEOUT ' + error.name + ': ' + error.message);
    }
    console.log('WAITING');
    const lock = await acquire(process.argv[1], { owner: 'agent:second', timeoutMs: 30000 });
    console.log('GOT ' + Date.now());
    fs.appendFileSync(process.argv[1], JSON.stringify({ from: 'B', n: 1, at: new Date().toISOString() }) + '\\n');
    process.stdin.resume();
    process.stdin.on('end', async () => { await lock.release(); process.exit(0); });
  })();
`;

function start(name, code) {
  const child = spawn(process.execPath, ['-e', code, transcript], { stdio: ['pipe', 'pipe', 'inherit'] });
  children.add(child);
  const lines = [];
  const waiters = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line);
    for (const w of [...waiters]) w();
  });
  child.on('exit', () => {
    for (const w of [...waiters]) w();
  });
  return {
    child,
    name,
    /** Resolves with the first line (old or new) that matches. */
    next(match, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name}: no line matching ${match} within ${timeoutMs}ms`)), timeoutMs);
        const check = () => {
          const found = lines.find((l) => match.test(l));
          if (found !== undefined) {
            waiters.splice(waiters.indexOf(check), 1);
            clearTimeout(timer);
            resolve(found);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            reject(new Error(`${name} exited (${child.exitCode ?? child.signalCode})`));
          }
        };
        waiters.push(check);
        check();
      });
    },
  };
}

function status() {
  const result = spawnSync(process.execPath, [cli, 'status', '-r', '.'], { cwd: dir, encoding: 'utf8' });
  console.log(dim(`$ session-flock status -r .   (in ${dir})`));
  process.stdout.write(result.stdout.trimEnd().replace(/^/gm, '  ') + '\n');
  if (result.stderr) process.stderr.write(result.stderr);
}

const rel = path.relative(dir, transcript);
console.log(bold('session-flock demo') + dim(` — temp folder ${dir}`));
console.log(`A transcript ${rel}; its lock is ${rel}.lock, a kernel flock(2)/LockFileEx lock.`);

heading('Process A takes the session lock and appends to the transcript');
const a = start('A', writerCode);
console.log(`  A: ${await a.next(/^holding/)}`);
await a.next(/^appended line 3/);
console.log('  A: appended 3 lines (and keeps appending)');

heading('Process B wants the same session: it waits 1.5 s, then times out naming the holder');
const b = start('B', secondCode);
const timeout = await b.next(/^TIMEOUT /);
console.log(`  B: ${timeout.slice('TIMEOUT '.length)}`);
await b.next(/^WAITING$/);
console.log('  B: now waiting for the lock without a deadline (in the kernel, on an addon thread)');

heading('`session-flock status` shows who holds it, from the kernel on Linux');
await new Promise((r) => setTimeout(r, 300));
status();

heading('Process A is SIGKILLed: none of its cleanup code runs');
const killedAt = Date.now();
a.child.kill('SIGKILL');
const got = await b.next(/^GOT \d+/);
const waited = Number(got.slice(4)) - killedAt;
console.log(`  B: got the lock ${waited}ms after A was killed — the kernel released A's lock as A died.`);
console.log('     No stale-lock timeout, no PID check, no lock file to delete.');
await new Promise((r) => setTimeout(r, 100));

heading('`session-flock status` now');
status();

heading('B releases; the lock is free and the transcript is intact');
b.child.stdin.end();
await new Promise((resolve) => b.child.once('exit', resolve));
status();
const lines = fs.readFileSync(transcript, 'utf8').trimEnd().split('\n');
const parsed = lines.map((line) => {
  try {
    return JSON.parse(line);
  } catch {
    return null;
  }
});
const torn = parsed.filter((p) => p === null).length;
console.log(`  ${rel}: ${lines.length} lines (${parsed.filter((p) => p?.from === 'A').length} from A, ${parsed.filter((p) => p?.from === 'B').length} from B), ${torn} torn`);

console.log(`\n${dim(`Removing ${dir}.`)}`);
