// The README's sample `session-flock status` table ("Who holds what"), made for real: in a
// temp folder, processes hold, share, wait for, die holding and pass on locks, and then
// `session-flock status sessions` runs there. Prints that transcript; test/docs.test.ts
// checks that the README shows it (numbers and column spacing aside).
// `--write` puts the fresh output into README.md. Linux only (waiters come from /proc/locks).
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSample } from './doc-blocks.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'dist', 'cjs', 'cli', 'main.js');
const lib = path.join(root, 'dist', 'cjs', 'index.js');
const COMMAND = 'npx session-flock status sessions';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-flock-sample-'));
fs.mkdirSync(path.join(dir, 'sessions'));
const children = [];
const strays = new Set();

/** A node process that takes the lock of sessions/<name>.jsonl and keeps it until killed. */
function locker(name, options) {
  const script = `require(${JSON.stringify(lib)}).acquire(${JSON.stringify(`sessions/${name}.jsonl`)}, ${JSON.stringify(options)})
    .then((lock) => { globalThis.lock = lock; process.stdout.write('held\\n'); }, (e) => { console.error(e); process.exit(1); });
    setInterval(() => {}, 1e6);`;
  const child = spawn(process.execPath, ['-e', script], { cwd: dir, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  return child;
}

function held(child) {
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`a locker exited with ${code}`)));
  });
}

function status(args) {
  const run = spawnSync(process.execPath, [cli, 'status', ...args], { cwd: dir, encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`status ${args.join(' ')}: ${run.stderr}`);
  return run.stdout;
}

async function until(what, test) {
  for (const deadline = Date.now() + 15_000; Date.now() < deadline; ) {
    if (test()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`gave up waiting until ${what}`);
}

const lockOf = (name) => JSON.parse(status(['--json', `sessions/${name}.jsonl`]))[0];
const exited = (child) => new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', resolve)));

let output;
try {
  // Held, and another process waits for it in the kernel.
  await held(locker('7f3c9a1e', { owner: 'agent:coder' }));
  locker('7f3c9a1e', { owner: 'agent:next', timeoutMs: 3_600_000 });
  await until('the waiter waits in the kernel', () => lockOf('7f3c9a1e').waiters?.length === 1);
  // Two readers.
  await held(locker('b21d04c7', { owner: 'reader:index', shared: true }));
  await held(locker('b21d04c7', { owner: 'reader:index', shared: true }));
  // A holder SIGKILLed: the kernel frees the lock at once; its record stays behind.
  const killed = locker('c90e5b33', { owner: 'agent:old' });
  await held(killed);
  killed.kill('SIGKILL');
  await exited(killed);
  // `run` killed while its command runs: the command keeps the lock through fd 3.
  const run = spawn(process.execPath, [cli, 'run', '--owner', 'job:compact', 'sessions/e4a8f210.jsonl', 'sh', '-c', 'echo running; exec sleep 600'], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(run);
  await held(run);
  run.kill('SIGKILL');
  await exited(run);
  for (const holder of lockOf('e4a8f210').holders) if (holder.alive) strays.add(holder.pid);
  // A lock file nobody holds.
  const free = spawnSync(process.execPath, [cli, 'run', 'sessions/f0015d2a.jsonl', 'true'], { cwd: dir });
  if (free.status !== 0) throw new Error('run true failed');
  // Let every hold be a second or more old, so no age column reads in milliseconds.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  output = `$ ${COMMAND}\n${status(['sessions'])}`;
} finally {
  for (const child of children) {
    child.kill('SIGKILL');
    // The command that outlived `run` holds the write end of run's stdout.
    child.stdout.destroy();
  }
  for (const pid of strays) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

if (process.argv.includes('--write')) writeSample('console', 'status-sample.mjs', output);
else process.stdout.write(output);
