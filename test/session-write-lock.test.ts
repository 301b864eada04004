// Issue 6: the drop-in `acquireSessionWriteLock` adapter. Each block reproduces a failure
// users reported with the old O_EXCL `{pid, createdAt}` lock file, and shows it fixed.
// Real files in temp dirs, real child processes (test/fixtures/swl-child.cjs over IPC).
import { type ChildProcess, execFile, fork, spawn } from 'node:child_process';
import * as diagnostics from 'node:diagnostics_channel';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { heldLocks } from '../dist/cjs/index.js';
import {
  acquireSessionWriteLock,
  releaseAllSessionWriteLocks,
  SessionWriteLockTimeoutError,
} from '../dist/cjs/adapters/session-write-lock.js';

const execFileP = promisify(execFile);
const repo = path.resolve(__dirname, '..');
const childFixture = path.join(__dirname, 'fixtures', 'swl-child.cjs');
const esmFixture = path.join(__dirname, 'fixtures', 'swl-esm.mjs');

interface Reply {
  id: number;
  ok: boolean;
  name?: string;
  code?: string;
  message?: string;
  lockPath?: string;
  timeoutMs?: number;
  ownerPid?: number | null;
  ownerPidAlive?: boolean | null;
}

interface Child {
  proc: ChildProcess;
  pid: number;
  request(msg: Record<string, unknown>): Promise<Reply>;
  /** SIGKILL and wait until the process is gone. */
  kill(): Promise<void>;
}

let dir: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'swl-')));
});

afterEach(async () => {
  await releaseAllSessionWriteLocks();
  for (const proc of children.splice(0)) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

function exited(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => proc.once('exit', () => resolve()));
}

async function startChild(): Promise<Child> {
  const proc = fork(childFixture, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(proc);
  let nextId = 1;
  const pending = new Map<number, (reply: Reply) => void>();
  const pid = await new Promise<number>((resolve, reject) => {
    proc.once('error', reject);
    proc.once('exit', (code, signal) => reject(new Error(`child exited early: ${code ?? signal}`)));
    proc.on('message', (msg: Reply & { ready?: boolean; pid?: number }) => {
      if (msg.ready) resolve(msg.pid as number);
      else pending.get(msg.id)?.(msg);
    });
  });
  return {
    proc,
    pid,
    request(msg) {
      const id = nextId++;
      return new Promise<Reply>((resolve, reject) => {
        pending.set(id, resolve);
        proc.send({ id, ...msg }, (error) => error && reject(error));
      });
    },
    async kill() {
      proc.kill('SIGKILL');
      await exited(proc);
    },
  };
}

/** The pid of a process that has exited (and was reaped), for legacy lock files and records. */
async function deadPid(): Promise<number> {
  const proc = spawn(process.execPath, ['-e', '']);
  await exited(proc);
  return proc.pid as number;
}

/** The rejection of `promise`, failing the test if it resolves. */
async function rejection(promise: Promise<unknown>): Promise<SessionWriteLockTimeoutError> {
  try {
    await promise;
  } catch (error) {
    return error as SessionWriteLockTimeoutError;
  }
  throw new Error('expected a rejection');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const lockPathOf = (sessionFile: string): string => `${sessionFile}.lock`;

describe('lock path', () => {
  it('is realpath(dirname) + basename + .lock, so a symlinked sessions dir shares one lock; the dir is created', async () => {
    const real = path.join(dir, 'real', 'sessions');
    const sessionFile = path.join(real, 'a.jsonl');
    const lock = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0 });
    expect(fs.statSync(real).isDirectory()).toBe(true);
    expect(lock.lockPath).toBe(lockPathOf(sessionFile));
    expect(lock.sessionFile).toBe(sessionFile);

    fs.symlinkSync(real, path.join(dir, 'link'));
    const viaLink = path.join(dir, 'link', 'a.jsonl');
    const error = await rejection(acquireSessionWriteLock({ sessionFile: viaLink, timeoutMs: 0 }));
    expect(error).toBeInstanceOf(SessionWriteLockTimeoutError);
    expect(error.lockPath).toBe(lock.lockPath);

    // A child through the symlink sees the same lock.
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile: viaLink, timeoutMs: 0 })).ok).toBe(false);
    await lock.release();
    const reply = await child.request({ cmd: 'acquire', sessionFile: viaLink, timeoutMs: 0 });
    expect(reply).toMatchObject({ ok: true, lockPath: lock.lockPath });
  });
});

describe('old failure: a SIGKILLed holder wedged the session until staleMs (30 min)', () => {
  it('the session is acquirable at once after the holder is SIGKILLed', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(true);
    // Really held by the child: a one-attempt acquire here fails, naming it.
    const before = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 0 }));
    expect(before.ownerPid).toBe(child.pid);
    expect(before.ownerPidAlive).toBe(true);

    await child.kill();
    // Its record is left behind (the child never ran release); it decides nothing.
    expect(JSON.parse(fs.readFileSync(`${lockPathOf(sessionFile)}.json`, 'utf8')).pid).toBe(child.pid);
    const lock = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0 });
    expect(lock.held).toBe(true);
    expect(JSON.parse(fs.readFileSync(`${lockPathOf(sessionFile)}.json`, 'utf8')).pid).toBe(process.pid);
    await lock.release();
  });
});

describe('old failure: an in-process restart kept the pid (PID 1 in a container), so its own lock looked alive', () => {
  it('releaseAllSessionWriteLocks frees it, re-acquire succeeds, and the old handle is inert', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const before = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0 });
    const beforeReentered = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0, allowReentrant: true });

    // "Restart": the new server iteration in the same process starts by releasing everything.
    expect(await releaseAllSessionWriteLocks()).toBe(1);
    expect(before.held).toBe(false);
    expect(beforeReentered.held).toBe(false);

    const after = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0 });
    // The old iteration's late release calls must not free the new holder's lock.
    await before.release();
    await beforeReentered.release();
    expect(after.held).toBe(true);
    const child = await startChild();
    const blocked = await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 });
    expect(blocked).toMatchObject({ ok: false, code: 'SESSION_WRITE_LOCK_TIMEOUT', ownerPid: process.pid, ownerPidAlive: true });
    // Re-entrancy counts were reset too: a re-entrant acquire joins the new hold, not the dead one.
    const joined = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0, allowReentrant: true });
    await joined.release();
    expect(after.held).toBe(true);

    await after.release();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(true);
  });

  it('an acquire pending at the restart is failed, not left to grab the lock later', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(true);
    const pending = acquireSessionWriteLock({ sessionFile, timeoutMs: Infinity });
    // Wait until it is queued in the core (it first awaits mkdir/realpath).
    await untilQueued(lockPathOf(sessionFile));
    await releaseAllSessionWriteLocks();
    const error = await rejection(pending);
    expect(error.name).toBe('AbortError');
  });
});

/**
 * How many acquires this process has queued on lockPath. Reads the core's registry, which
 * DESIGN.md puts on globalThis under Symbol.for('session-flock.registry.v2') so that copies
 * of the package share it (heldLocks().waiters only shows entries this process holds).
 */
function queuedOn(lockPath: string): number {
  const registry = (globalThis as Record<symbol, { entries: Map<string, { lockPath: string; waiters: number }> } | undefined>)[Symbol.for('session-flock.registry.v2')];
  if (registry === undefined) throw new Error('core registry not found');
  // Entries are keyed by the lock file's identity; each names the path it was first locked by.
  for (const entry of registry.entries.values()) if (entry.lockPath === lockPath) return entry.waiters;
  return 0;
}

/** Resolves once `n` acquires of this process are queued on lockPath. */
async function untilQueued(lockPath: string, n = 1): Promise<void> {
  while (queuedOn(lockPath) < n) await new Promise((r) => setTimeout(r, 5));
}

describe('old failure: a leaked release in a live process held the session forever, silently', () => {
  it('the long hold is reported (maxHoldMs, never stolen) and releaseAllSessionWriteLocks frees it', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const reports: { lockPath: string; heldForMs: number; maxHoldMs: number }[] = [];
    const warnings: Error[] = [];
    let reported!: () => void;
    const gotReport = new Promise<void>((resolve) => (reported = resolve));
    const onReport = (message: unknown): void => {
      reports.push(message as (typeof reports)[number]);
      reported();
    };
    const onWarning = (warning: Error): void => void warnings.push(warning);
    diagnostics.subscribe('session-flock:long-hold', onReport);
    process.on('warning', onWarning);
    try {
      // The caller "forgets" release(): it keeps the handle but never calls it.
      const leaked = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0, maxHoldMs: 50 });
      await gotReport;
      expect(reports).toHaveLength(1);
      expect(reports[0]).toMatchObject({ lockPath: leaked.lockPath, maxHoldMs: 50 });
      expect(reports[0].heldForMs).toBeGreaterThanOrEqual(50);
      // Reported, not stolen: still held, and another process still cannot have it.
      expect(leaked.held).toBe(true);
      const child = await startChild();
      const blocked = await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 });
      expect(blocked).toMatchObject({ ok: false, ownerPid: process.pid, ownerPidAlive: true });
      await new Promise((r) => setImmediate(r));
      expect(warnings.some((w) => (w as NodeJS.ErrnoException).code === 'SESSION_FLOCK_LONG_HOLD' && w.message.includes(leaked.lockPath))).toBe(true);

      expect(await releaseAllSessionWriteLocks()).toBe(1);
      expect(leaked.held).toBe(false);
      expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(true);
    } finally {
      diagnostics.unsubscribe('session-flock:long-hold', onReport);
      process.off('warning', onWarning);
    }
  });

  it('a handle dropped without release() is released when collected, with a leak warning', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const { stdout } = await execFileP(process.execPath, ['--expose-gc', path.join(__dirname, 'fixtures', 'swl-gc.cjs'), sessionFile]);
    const result = JSON.parse(stdout);
    expect(result).toMatchObject({ heldBefore: 1, heldAfter: 0, leakWarning: true, leakReport: true });
    // Freed for everyone else too.
    const lock = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0 });
    await lock.release();
  });
});

describe('old failure: a stale legacy lock file (O_EXCL, {pid, createdAt}) with a dead pid blocked for staleMs', () => {
  it('does not block, is neither truncated nor deleted, and its pid is never reported as the holder', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const pid = await deadPid();
    const legacy = JSON.stringify({ pid, createdAt: new Date(Date.now() - 60_000).toISOString() }, null, 2);
    fs.writeFileSync(lockPathOf(sessionFile), legacy);

    const lock = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0 });
    expect(lock.held).toBe(true);
    expect(fs.readFileSync(lockPathOf(sessionFile), 'utf8')).toBe(legacy);
    // The holder record is the separate sidecar, not the legacy body.
    expect(JSON.parse(fs.readFileSync(`${lockPathOf(sessionFile)}.json`, 'utf8')).pid).toBe(process.pid);

    // The kernel lock on that same path is what counts: another process is refused, and told who really holds it.
    const child = await startChild();
    const blocked = await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 });
    expect(blocked).toMatchObject({ ok: false, code: 'SESSION_WRITE_LOCK_TIMEOUT', ownerPid: process.pid, ownerPidAlive: true });
    expect(blocked.message).not.toContain(`pid=${pid} `);

    await lock.release();
    expect(fs.readFileSync(lockPathOf(sessionFile), 'utf8')).toBe(legacy);
    expect(fs.existsSync(`${lockPathOf(sessionFile)}.json`)).toBe(false);
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(true);
  });

  it('a legacy file naming a live pid does not block either (no exclusion with old O_EXCL processes; see migration.md)', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const live = await startChild();
    fs.writeFileSync(lockPathOf(sessionFile), JSON.stringify({ pid: live.pid, createdAt: new Date().toISOString() }));
    const lock = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0 });
    expect(lock.held).toBe(true);
    await lock.release();
  });
});

describe('timeout error names the holder', () => {
  it('SessionWriteLockTimeoutError: code, lockPath, timeoutMs, ownerPid, ownerPidAlive, and the familiar message prefix', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(true);
    const error = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 300 }));
    expect(error).toBeInstanceOf(SessionWriteLockTimeoutError);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('SessionWriteLockTimeoutError');
    expect(error.code).toBe('SESSION_WRITE_LOCK_TIMEOUT');
    expect(error.lockPath).toBe(lockPathOf(sessionFile));
    expect(error.timeoutMs).toBe(300);
    expect(error.ownerPid).toBe(child.pid);
    expect(error.ownerPidAlive).toBe(true);
    expect(error.message).toMatch(new RegExp(`^session file locked \\(timeout 300ms\\): pid=${child.pid} alive=true ageMs=\\d+ ${escapeRegExp(lockPathOf(sessionFile))}$`));
  });

  it('the default budget is 10 000 ms (this test waits it out)', { timeout: 30_000 }, async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(true);
    const error = await rejection(acquireSessionWriteLock({ sessionFile }));
    expect(error.timeoutMs).toBe(10_000);
    expect(error.message).toMatch(new RegExp(`^session file locked \\(timeout 10000ms\\): pid=${child.pid} alive=true ageMs=\\d+ `));
  });

  it('says owner=unknown when the holder left no record (e.g. a foreign flock user)', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'core-hold', target: sessionFile, record: false })).ok).toBe(true);
    const error = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 0 }));
    expect(error).toBeInstanceOf(SessionWriteLockTimeoutError);
    expect(error.ownerPid).toBeNull();
    expect(error.ownerPidAlive).toBeNull();
    expect(error.message).toBe(`session file locked (timeout 0ms): owner=unknown ${lockPathOf(sessionFile)}`);
  });

  it('says alive=false when the only record names a dead pid (the record is diagnostics, the kernel still decides)', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'core-hold', target: sessionFile, record: false })).ok).toBe(true);
    const pid = await deadPid();
    fs.writeFileSync(`${lockPathOf(sessionFile)}.json`, JSON.stringify({ pid, hostname: os.hostname(), acquiredAt: Date.now() - 5000 }));
    const error = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 0 }));
    expect(error.ownerPid).toBe(pid);
    expect(error.ownerPidAlive).toBe(false);
    expect(error.message).toMatch(new RegExp(`^session file locked \\(timeout 0ms\\): pid=${pid} alive=false ageMs=\\d+ `));
  });

  it('staleMs is ignored: a live holder is never robbed, however small staleMs is', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(true);
    const error = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 200, staleMs: 1 }));
    expect(error.code).toBe('SESSION_WRITE_LOCK_TIMEOUT');
    expect(error.ownerPid).toBe(child.pid);
  });
});

describe('re-entrancy', () => {
  it('off (default): a second acquire of the same session in this process waits, then times out', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const first = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0 });
    const error = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 200 }));
    expect(error).toBeInstanceOf(SessionWriteLockTimeoutError);
    expect(error.ownerPid).toBe(process.pid);
    expect(error.ownerPidAlive).toBe(true);

    // It waits (rather than failing at once) and gets the lock when the first lets go.
    const second = acquireSessionWriteLock({ sessionFile, timeoutMs: Infinity });
    await untilQueued(lockPathOf(sessionFile));
    await first.release();
    const lock = await second;
    expect(lock.held).toBe(true);
    await lock.release();
  });

  it('on: it counts, release() is idempotent, and the OS lock goes on the last release', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const a = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0, allowReentrant: true });
    const b = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0, allowReentrant: true });
    expect(heldLocks().filter((h) => h.lockPath === a.lockPath)).toHaveLength(1);

    const child = await startChild();
    await a.release();
    await a.release();
    expect(a.held).toBe(false);
    expect(b.held).toBe(true);
    expect(await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).toMatchObject({ ok: false, ownerPid: process.pid });

    await b.release();
    expect(heldLocks()).toHaveLength(0);
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(true);
  });

  it('on: process-wide, it joins a hold taken without allowReentrant too', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const plain = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0 });
    const nested = await acquireSessionWriteLock({ sessionFile, timeoutMs: 0, allowReentrant: true });
    await plain.release();
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(false);
    await nested.release();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(true);
  });

  it('on: re-entrant acquires waiting on another process all join the first grant (one OS lock)', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(true);
    const x = acquireSessionWriteLock({ sessionFile, timeoutMs: Infinity, allowReentrant: true });
    const y = acquireSessionWriteLock({ sessionFile, timeoutMs: Infinity, allowReentrant: true });
    await untilQueued(lockPathOf(sessionFile), 2);
    await child.request({ cmd: 'release' });
    const [lx, ly] = await Promise.all([x, y]);
    expect(heldLocks().filter((h) => h.lockPath === lx.lockPath)).toHaveLength(1);
    await lx.release();
    expect(ly.held).toBe(true);
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(false);
    await ly.release();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 0 })).ok).toBe(true);
  });
});

describe('package entry points', () => {
  it("ESM: import { acquireSessionWriteLock } from 'session-flock/session-write-lock' (self-reference in the repo)", async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const { stdout } = await execFileP(process.execPath, [esmFixture, sessionFile]);
    expect(JSON.parse(stdout)).toEqual({ lockPath: lockPathOf(sessionFile), second: 'SESSION_WRITE_LOCK_TIMEOUT', closed: 0, held: false });
  });

  it('ESM and CJS from a consumer project with node_modules/session-flock installed (symlink)', async () => {
    const consumer = path.join(dir, 'consumer');
    fs.mkdirSync(path.join(consumer, 'node_modules'), { recursive: true });
    fs.symlinkSync(repo, path.join(consumer, 'node_modules', 'session-flock'), 'dir');
    fs.copyFileSync(esmFixture, path.join(consumer, 'main.mjs'));
    const sessionFile = path.join(dir, 's', 'a.jsonl');
    const esm = await execFileP(process.execPath, [path.join(consumer, 'main.mjs'), sessionFile], { cwd: consumer });
    expect(JSON.parse(esm.stdout)).toMatchObject({ lockPath: lockPathOf(sessionFile), second: 'SESSION_WRITE_LOCK_TIMEOUT' });
    const cjs = await execFileP(
      process.execPath,
      ['-e', "const m = require('session-flock/session-write-lock'); console.log(Object.keys(m).sort().join(','))"],
      { cwd: consumer },
    );
    expect(cjs.stdout.trim()).toBe('SessionWriteLockTimeoutError,acquireSessionWriteLock,releaseAllSessionWriteLocks');
  });
});
