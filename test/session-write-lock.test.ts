// The drop-in `session-flock/session-write-lock`: the OpenClaw gateway's module as of
// April 2026, with the same exports, defaults and option rules, on kernel locks.
// Real files in temp dirs, real child processes (test/fixtures/swl-child.cjs over IPC).
import { type ChildProcess, execFile, fork, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { acquire as coreAcquire, heldLocks } from '../dist/cjs/index.js';
import {
  acquireSessionWriteLock,
  cleanStaleLockFiles,
  drainSessionWriteLockStateForTest,
  isSessionWriteLockTimeoutError,
  releaseAllSessionWriteLocks,
  resetSessionWriteLockStateForTest,
  resolveSessionLockMaxHoldFromTimeout,
  SESSION_WRITE_LOCK_TIMEOUT,
  SessionWriteLockTimeoutError,
} from '../dist/cjs/adapters/session-write-lock.js';
import { processStartTime } from '../dist/cjs/adapters/legacy-pid.js';

const execFileP = promisify(execFile);
const repo = path.resolve(__dirname, '..');
const fixtures = path.join(__dirname, 'fixtures');
const childFixture = path.join(fixtures, 'swl-child.cjs');
const esmFixture = path.join(fixtures, 'swl-esm.mjs');

interface Reply {
  id: number;
  ok: boolean;
  free?: boolean;
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
  /** One non-blocking try-lock of lockPath in this child: is it free for another process? */
  free(lockPath: string): Promise<boolean>;
  /** SIGKILL and wait until the process is gone. */
  kill(): Promise<void>;
}

let dir: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'swl-')));
});

afterEach(async () => {
  await drainSessionWriteLockStateForTest();
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
  const request = (msg: Record<string, unknown>): Promise<Reply> => {
    const id = nextId++;
    return new Promise<Reply>((resolve, reject) => {
      pending.set(id, resolve);
      proc.send({ id, ...msg }, (error) => error && reject(error));
    });
  };
  return {
    proc,
    pid,
    request,
    async free(lockPath) {
      const reply = await request({ cmd: 'probe', lockPath });
      if (!reply.ok) throw new Error(`probe failed: ${reply.message}`);
      return reply.free as boolean;
    },
    async kill() {
      proc.kill('SIGKILL');
      await exited(proc);
    },
  };
}

/** The pid of a process that has exited (and was reaped), for old-format lock files and records. */
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

const lockPathOf = (sessionFile: string): string => `${sessionFile}.lock`;

/**
 * How many acquires this process has queued on lockPath. Reads the core's registry, which
 * DESIGN.md puts on globalThis under Symbol.for('session-flock.registry.v2') so that copies
 * of the package share it (heldLocks().waiters only shows entries this process holds).
 */
function queuedOn(lockPath: string): number {
  const registry = (globalThis as Record<symbol, { entries: Map<string, { name: string; waiters: number }> } | undefined>)[Symbol.for('session-flock.registry.v2')];
  if (registry === undefined) throw new Error('core registry not found');
  // Entries are keyed by the lock file's identity; each names (`name`) the path it was first locked by.
  // An unused entry of an earlier file at this path may linger until the next turn.
  let queued = 0;
  for (const entry of registry.entries.values()) if (entry.name === lockPath) queued += entry.waiters;
  return queued;
}

/** Resolves once `n` acquires of this process are queued on lockPath. */
async function untilQueued(lockPath: string, n = 1): Promise<void> {
  while (queuedOn(lockPath) < n) await new Promise((r) => setTimeout(r, 5));
}

/** Whether `promise` is still pending after everything already queued has run. */
async function isPending(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  await new Promise((r) => setImmediate(r));
  return (await Promise.race([promise.then(() => 'settled', () => 'settled'), Promise.resolve(marker)])) === marker;
}

describe('lock path and symlinked session folders', () => {
  it('is realpath(dirname) + basename + .lock; the directory is created', async () => {
    const real = path.join(dir, 'real', 'sessions');
    const sessionFile = path.join(real, 'a.jsonl');
    const lock = await acquireSessionWriteLock({ sessionFile });
    expect(fs.statSync(real).isDirectory()).toBe(true);
    expect(lock.lockPath).toBe(lockPathOf(sessionFile));
    expect(lock.sessionFile).toBe(sessionFile);
    await lock.release();
  });

  it('two paths through a symlinked folder are one lock: the second re-enters, and the lock lasts until the last release', async () => {
    const real = path.join(dir, 'real');
    fs.mkdirSync(real);
    fs.symlinkSync(real, path.join(dir, 'link'));
    const viaReal = path.join(real, 'a.jsonl');
    const viaLink = path.join(dir, 'link', 'a.jsonl');
    const a = await acquireSessionWriteLock({ sessionFile: viaReal });
    const b = await acquireSessionWriteLock({ sessionFile: viaLink, timeoutMs: 100 });
    expect(b.lockPath).toBe(a.lockPath);
    expect(heldLocks()).toHaveLength(1);

    const child = await startChild();
    await a.release();
    expect(fs.existsSync(lockPathOf(viaReal))).toBe(true);
    expect(await child.free(lockPathOf(viaReal))).toBe(false);
    await b.release();
    expect(fs.existsSync(lockPathOf(viaReal))).toBe(false);
    expect(await child.free(lockPathOf(viaReal))).toBe(true);
    // A child going through the symlink is excluded by the same lock.
    expect((await child.request({ cmd: 'acquire', sessionFile: viaLink, timeoutMs: 100 })).ok).toBe(true);
    const error = await rejection(acquireSessionWriteLock({ sessionFile: viaReal, timeoutMs: 100 }));
    expect(error.ownerPid).toBe(child.pid);
  });
});

describe('the lock file: it names its holder while held, and is gone after the last release', () => {
  it('holds one line of JSON whose pid and createdAt (ISO 8601) are the holder\'s, this process\'s or another\'s', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const before = Date.now();
    const lock = await acquireSessionWriteLock({ sessionFile });
    const raw = fs.readFileSync(lockPathOf(sessionFile), 'utf8');
    expect(raw.trimEnd().split('\n')).toHaveLength(1);
    // What the old module's readers (doctor, scripts) read: a live pid and a fresh createdAt.
    const body = JSON.parse(raw) as { pid: number; createdAt: string };
    expect(body.pid).toBe(process.pid);
    expect(new Date(body.createdAt).toISOString()).toBe(body.createdAt);
    expect(Date.parse(body.createdAt)).toBeGreaterThanOrEqual(before - 1);
    expect(Date.parse(body.createdAt)).toBeLessThanOrEqual(Date.now());
    // A re-entrant acquire joins the hold: the file still names the first acquire.
    const nested = await acquireSessionWriteLock({ sessionFile });
    expect(fs.readFileSync(lockPathOf(sessionFile), 'utf8')).toBe(raw);
    await nested.release();
    await lock.release();
    expect(fs.existsSync(lockPathOf(sessionFile))).toBe(false);

    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 100 })).ok).toBe(true);
    expect(JSON.parse(fs.readFileSync(lockPathOf(sessionFile), 'utf8'))).toMatchObject({ pid: child.pid, createdAt: expect.any(String) });
    await child.request({ cmd: 'release' });
    expect(fs.existsSync(lockPathOf(sessionFile))).toBe(false);
  });

  it('is gone after the last release however many acquires re-entered it, and after each of many holds in turn', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    for (let round = 0; round < 3; round++) {
      const handles = [await acquireSessionWriteLock({ sessionFile })];
      for (let i = 0; i < round + 1; i++) handles.push(await acquireSessionWriteLock({ sessionFile }));
      for (const handle of handles.slice(1)) {
        await handle.release();
        expect(fs.existsSync(lockPathOf(sessionFile))).toBe(true);
      }
      await handles[0].release();
      expect(fs.existsSync(lockPathOf(sessionFile))).toBe(false);
    }
    expect(fs.readdirSync(dir)).toEqual([]);
  });
});

describe('re-entrancy (allowReentrant, default true as in the old module)', () => {
  it('default: a nested acquire with default options re-enters at once and counts; the OS lock goes on the last release', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    // run/attempt.ts holds the session for the whole run...
    const run = await acquireSessionWriteLock({
      sessionFile,
      maxHoldMs: resolveSessionLockMaxHoldFromTimeout({ timeoutMs: 600_000 }),
    });
    // ...while compact / tool-result truncation / transcript rewrite acquire it again with
    // defaults (without re-entry this would wait out the 10 s budget for itself and reject).
    const compact = await acquireSessionWriteLock({ sessionFile });
    const truncate = await acquireSessionWriteLock({ sessionFile });
    expect(heldLocks()).toMatchObject([{ lockPath: lockPathOf(sessionFile), count: 3 }]);

    const child = await startChild();
    await compact.release();
    await truncate.release();
    expect(run.held).toBe(true);
    expect(JSON.parse(fs.readFileSync(lockPathOf(sessionFile), 'utf8'))).toMatchObject({ pid: process.pid });
    expect(await child.free(lockPathOf(sessionFile))).toBe(false);
    await run.release();
    expect(heldLocks()).toHaveLength(0);
    expect(fs.existsSync(lockPathOf(sessionFile))).toBe(false);
    expect(await child.free(lockPathOf(sessionFile))).toBe(true);
  });

  it('release() is idempotent and works detached; a double release does not drop another handle\'s count', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const { release } = await acquireSessionWriteLock({ sessionFile });
    const second = await acquireSessionWriteLock({ sessionFile });
    await release();
    await release();
    expect(second.held).toBe(true);
    const child = await startChild();
    expect(await child.free(lockPathOf(sessionFile))).toBe(false);
    await second.release();
    expect(await child.free(lockPathOf(sessionFile))).toBe(true);
  });

  it('allowReentrant: false does not re-enter: it queues behind this process\'s own hold and times out naming this pid', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const first = await acquireSessionWriteLock({ sessionFile });
    const error = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 150, allowReentrant: false }));
    expect(error).toBeInstanceOf(SessionWriteLockTimeoutError);
    expect(error.ownerPid).toBe(process.pid);
    expect(error.ownerPidAlive).toBe(true);

    const second = acquireSessionWriteLock({ sessionFile, timeoutMs: Infinity, allowReentrant: false });
    await untilQueued(lockPathOf(sessionFile));
    expect(await isPending(second)).toBe(true);
    await first.release();
    const lock = await second;
    expect(lock.held).toBe(true);
    expect(heldLocks()).toMatchObject([{ count: 1 }]);
    await lock.release();
  });

  it('process-wide, but only with a hold that exists: acquires waiting on another process queue, they do not join each other', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 100 })).ok).toBe(true);
    const x = acquireSessionWriteLock({ sessionFile, timeoutMs: Infinity });
    const y = acquireSessionWriteLock({ sessionFile, timeoutMs: Infinity });
    await untilQueued(lockPathOf(sessionFile), 2);
    await child.request({ cmd: 'release' });
    // Either may reach the queue first (each awaits mkdir and realpath before it queues).
    const first = await Promise.race([x.then((lock) => ({ lock, other: y })), y.then((lock) => ({ lock, other: x }))]);
    const { other } = first;
    expect(await isPending(other)).toBe(true);
    await first.lock.release();
    const second = await other;
    expect(second.held).toBe(true);
    expect(heldLocks()).toMatchObject([{ count: 1 }]);
    await second.release();
  });

  it('re-enters a hold taken through the core too (process-wide), and the hooks leave the core\'s view alone', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const core = await coreAcquire(sessionFile);
    const joined = await acquireSessionWriteLock({ sessionFile, timeoutMs: 100 });
    expect(heldLocks()).toMatchObject([{ count: 2 }]);
    resetSessionWriteLockStateForTest();
    expect(joined.held).toBe(false);
    expect(core.held).toBe(true);
    await core.release();
  });
});

describe('options follow the old rule: a non-number, NaN or <= 0 means the default', () => {
  it.each([0, -1, NaN, '250', null])('timeoutMs %s waits with the default budget instead of trying once', async (timeoutMs) => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 100 })).ok).toBe(true);
    const pending = acquireSessionWriteLock({ sessionFile, timeoutMs: timeoutMs as number });
    await untilQueued(lockPathOf(sessionFile));
    expect(await isPending(pending)).toBe(true);
    await child.request({ cmd: 'release' });
    const lock = await pending;
    expect(lock.held).toBe(true);
    await lock.release();
  });

  it('the default budget is 10 000 ms (this test waits it out) and the message says so', { timeout: 30_000 }, async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 100 })).ok).toBe(true);
    const error = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 0 }));
    expect(error.timeoutMs).toBe(10_000);
    expect(error.message).toBe(`session file locked (timeout 10000ms): pid=${child.pid} ${lockPathOf(sessionFile)}`);
  });

  it('timeoutMs: Infinity waits without limit (until aborted)', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 100 })).ok).toBe(true);
    const controller = new AbortController();
    const pending = acquireSessionWriteLock({ sessionFile, timeoutMs: Infinity, signal: controller.signal });
    await untilQueued(lockPathOf(sessionFile));
    controller.abort();
    expect((await rejection(pending)).name).toBe('AbortError');
    await child.request({ cmd: 'release' });
    expect(heldLocks()).toHaveLength(0);
  });

  it('staleMs is ignored: a live holder is never robbed, however small staleMs is', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 100 })).ok).toBe(true);
    const error = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 200, staleMs: 1 }));
    expect(error.code).toBe('SESSION_WRITE_LOCK_TIMEOUT');
    expect(error.ownerPid).toBe(child.pid);
  });

  it('bad sessionFile, allowReentrant, signal or owner is a TypeError that leaves nothing held', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    for (const params of [
      { sessionFile: 42 },
      { sessionFile: '' },
      { sessionFile, allowReentrant: 'yes' },
      { sessionFile, signal: {} },
      { sessionFile, owner: 7 },
    ]) {
      const error = await rejection(acquireSessionWriteLock(params as never));
      expect(error).toBeInstanceOf(TypeError);
      expect(error.message).toMatch(/params\.(sessionFile|allowReentrant|signal|owner)/);
    }
    expect(heldLocks()).toHaveLength(0);
  });

  it('resolveSessionLockMaxHoldFromTimeout: max(minMs, timeoutMs + graceMs), 2 min grace, 5 min floor, capped at 2 147 000 000', () => {
    expect(resolveSessionLockMaxHoldFromTimeout({ timeoutMs: 600_000 })).toBe(720_000);
    expect(resolveSessionLockMaxHoldFromTimeout({ timeoutMs: 1_000, minMs: 5_000 })).toBe(121_000);
    expect(resolveSessionLockMaxHoldFromTimeout({ timeoutMs: 1_000 })).toBe(300_000);
    expect(resolveSessionLockMaxHoldFromTimeout({ timeoutMs: 10_000, graceMs: 1_000, minMs: 1 })).toBe(11_000);
    expect(resolveSessionLockMaxHoldFromTimeout({ timeoutMs: 2_147_000_000 })).toBe(2_147_000_000);
    expect(resolveSessionLockMaxHoldFromTimeout({ timeoutMs: Infinity })).toBe(2_147_000_000);
    // The duration rule: the default for timeoutMs is minMs; for graceMs and minMs their own.
    expect(resolveSessionLockMaxHoldFromTimeout({ timeoutMs: 0 })).toBe(420_000);
    expect(resolveSessionLockMaxHoldFromTimeout({ timeoutMs: NaN, minMs: 1_000 })).toBe(121_000);
    expect(resolveSessionLockMaxHoldFromTimeout({ timeoutMs: 10_000, graceMs: -1, minMs: Infinity })).toBe(300_000);
  });
});

describe('no stale lock blocks anymore: only a kernel lock does', () => {
  it('a SIGKILLed holder frees the session at once; its leftover record decides nothing', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 100 })).ok).toBe(true);
    const before = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 100 }));
    expect(before.ownerPid).toBe(child.pid);
    expect(before.ownerPidAlive).toBe(true);

    await child.kill();
    expect(JSON.parse(fs.readFileSync(lockPathOf(sessionFile), 'utf8')).pid).toBe(child.pid);
    const lock = await acquireSessionWriteLock({ sessionFile, timeoutMs: 100 });
    expect(lock.held).toBe(true);
    expect(JSON.parse(fs.readFileSync(lockPathOf(sessionFile), 'utf8')).pid).toBe(process.pid);
    await lock.release();
    expect(fs.existsSync(lockPathOf(sessionFile))).toBe(false);
  });

  it.each([
    ['an old-format body naming a dead pid', async () => JSON.stringify({ pid: await deadPid(), createdAt: new Date(Date.now() - 60_000).toISOString() }, null, 2)],
    ['an old-format body naming this very pid (same-pid restart)', async () => JSON.stringify({ pid: process.pid, createdAt: new Date().toISOString() })],
    ['an old-format body with a recycled pid (live pid, wrong starttime)', async () => JSON.stringify({ pid: process.ppid, createdAt: new Date().toISOString(), starttime: 999_999_999 })],
    ['a fresh malformed body', async () => '{}'],
  ])('a lock file nobody holds never blocks, whatever it holds: %s; an old-format body gives way to the record, anything else is not written over', async (_name, body) => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const content = await body();
    const oldFormat = content !== '{}';
    fs.writeFileSync(lockPathOf(sessionFile), content);
    const lock = await acquireSessionWriteLock({ sessionFile, timeoutMs: 100 });
    expect(lock.held).toBe(true);
    if (oldFormat) expect(JSON.parse(fs.readFileSync(lockPathOf(sessionFile), 'utf8'))).toMatchObject({ pid: process.pid, createdAt: expect.any(String) });
    else expect(fs.readFileSync(lockPathOf(sessionFile), 'utf8')).toBe(content);
    // The kernel lock on that same path is what counts: another process is refused, and told who really holds it.
    const child = await startChild();
    const blocked = await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 100 });
    expect(blocked).toMatchObject({ ok: false, code: 'SESSION_WRITE_LOCK_TIMEOUT', ownerPid: process.pid, ownerPidAlive: true });
    await lock.release();
    expect(fs.existsSync(lockPathOf(sessionFile))).toBe(false);
    // (Not a probe: this child's given-up kernel wait may still be draining.)
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 5_000 })).ok).toBe(true);
  });
});

describe('release everything: releaseAllSessionWriteLocks and the test hooks', () => {
  it('releaseAllSessionWriteLocks (same-pid restart) frees it; old handles are inert and cannot free a later holder', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const before = await acquireSessionWriteLock({ sessionFile });
    const beforeNested = await acquireSessionWriteLock({ sessionFile });
    expect(await releaseAllSessionWriteLocks()).toBe(1);
    expect(before.held).toBe(false);
    expect(beforeNested.held).toBe(false);
    expect(fs.existsSync(lockPathOf(sessionFile))).toBe(false);

    const after = await acquireSessionWriteLock({ sessionFile, timeoutMs: 100 });
    await before.release();
    await beforeNested.release();
    expect(after.held).toBe(true);
    const child = await startChild();
    expect(await child.free(lockPathOf(sessionFile))).toBe(false);
    // A nested acquire joins the new hold, not the dead one.
    const joined = await acquireSessionWriteLock({ sessionFile });
    await joined.release();
    expect(after.held).toBe(true);
    await after.release();
    expect(fs.existsSync(lockPathOf(sessionFile))).toBe(false);
    expect(await child.free(lockPathOf(sessionFile))).toBe(true);
  });

  it('drainSessionWriteLockStateForTest releases every handle, fails pending acquires, and resolves after they settled', async () => {
    const a = path.join(dir, 'a.jsonl');
    const b = path.join(dir, 'b.jsonl');
    const held = await acquireSessionWriteLock({ sessionFile: a });
    const nested = await acquireSessionWriteLock({ sessionFile: a });
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile: b, timeoutMs: 100 })).ok).toBe(true);
    let settled = false;
    const pending = acquireSessionWriteLock({ sessionFile: b, timeoutMs: Infinity }).finally(() => (settled = true));
    pending.catch(() => undefined);
    await untilQueued(lockPathOf(b));

    const drained = drainSessionWriteLockStateForTest();
    expect(drained).toBeInstanceOf(Promise);
    await drained;
    expect(settled).toBe(true);
    expect((await rejection(pending)).name).toBe('AbortError');
    expect(held.held).toBe(false);
    expect(nested.held).toBe(false);
    expect(heldLocks()).toHaveLength(0);
    expect(fs.existsSync(lockPathOf(a))).toBe(false);
    expect(await child.free(lockPathOf(a))).toBe(true);
    // Later acquires work, and a stale handle cannot touch them.
    const again = await acquireSessionWriteLock({ sessionFile: a, timeoutMs: 100 });
    await held.release();
    expect(again.held).toBe(true);
    await again.release();
  });

  it('resetSessionWriteLockStateForTest is synchronous: the locks are free for another process right after it returns', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const lock = await acquireSessionWriteLock({ sessionFile });
    const child = await startChild();
    expect(await child.free(lockPathOf(sessionFile))).toBe(false);
    expect(resetSessionWriteLockStateForTest()).toBeUndefined();
    expect(lock.held).toBe(false);
    expect(await child.free(lockPathOf(sessionFile))).toBe(true);
  });

  it('an acquire pending in the kernel when a hook runs is failed, not left to grab the lock later', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 100 })).ok).toBe(true);
    const pending = acquireSessionWriteLock({ sessionFile, timeoutMs: Infinity });
    await untilQueued(lockPathOf(sessionFile));
    resetSessionWriteLockStateForTest();
    expect((await rejection(pending)).name).toBe('AbortError');
    await child.request({ cmd: 'release' });
    expect(heldLocks()).toHaveLength(0);
  });
});

describe('the timeout error', () => {
  it('is the old message exactly (pid=<holder> then the path), with SESSION_WRITE_LOCK_TIMEOUT and the holder in fields', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 100 })).ok).toBe(true);
    const error = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 300 }));
    expect(error).toBeInstanceOf(SessionWriteLockTimeoutError);
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toBe(`session file locked (timeout 300ms): pid=${child.pid} ${lockPathOf(sessionFile)}`);
    expect(error.code).toBe(SESSION_WRITE_LOCK_TIMEOUT);
    expect(SESSION_WRITE_LOCK_TIMEOUT).toBe('SESSION_WRITE_LOCK_TIMEOUT');
    expect(error.lockPath).toBe(lockPathOf(sessionFile));
    expect(error.timeoutMs).toBe(300);
    expect(error.ownerPid).toBe(child.pid);
    expect(error.ownerPidAlive).toBe(true);
    expect(error.ageMs).toBeGreaterThanOrEqual(0);
    expect(isSessionWriteLockTimeoutError(error)).toBe(true);
  });

  it('isSessionWriteLockTimeoutError goes by code (another copy of the package), not by message', () => {
    expect(isSessionWriteLockTimeoutError(Object.assign(new Error('x'), { code: 'SESSION_WRITE_LOCK_TIMEOUT' }))).toBe(true);
    expect(isSessionWriteLockTimeoutError(new Error('session file locked (timeout 10ms): unknown /x.lock'))).toBe(false);
    expect(isSessionWriteLockTimeoutError({ code: 'SESSION_WRITE_LOCK_TIMEOUT' })).toBe(false);
    expect(isSessionWriteLockTimeoutError(null)).toBe(false);
    expect(new SessionWriteLockTimeoutError('/s/a.jsonl.lock', 10_000, { pid: null, alive: null, ageMs: null, hostname: null, owner: null }).message).toBe(
      'session file locked (timeout 10000ms): unknown /s/a.jsonl.lock',
    );
  });

  it.runIf(process.platform === 'linux')('names the kernel\'s holder on Linux, even with no record or a record naming someone else', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'core-hold', target: sessionFile, record: false })).ok).toBe(true);
    const noRecord = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 100 }));
    expect(noRecord.message).toBe(`session file locked (timeout 100ms): pid=${child.pid} ${lockPathOf(sessionFile)}`);
    expect(noRecord.ownerPidAlive).toBe(true);

    const pid = await deadPid();
    fs.writeFileSync(lockPathOf(sessionFile), JSON.stringify({ pid, hostname: os.hostname(), acquiredAt: Date.now() - 5000, nonce: 'x-1' }));
    const lying = await rejection(acquireSessionWriteLock({ sessionFile, timeoutMs: 100 }));
    expect(lying.ownerPid).toBe(child.pid);
    expect(lying.message).not.toContain(`pid=${pid} `);
  });

  it('signal: an aborted wait rejects with AbortError and leaves nothing held; an already aborted signal never acquires', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile, timeoutMs: 100 })).ok).toBe(true);
    const controller = new AbortController();
    const pending = acquireSessionWriteLock({ sessionFile, signal: controller.signal });
    await untilQueued(lockPathOf(sessionFile));
    controller.abort(new Error('run cancelled'));
    const error = await rejection(pending);
    expect(error.name).toBe('AbortError');
    await child.request({ cmd: 'release' });
    expect(heldLocks()).toHaveLength(0);
    expect(await child.free(lockPathOf(sessionFile))).toBe(true);
    const before = await rejection(acquireSessionWriteLock({ sessionFile, signal: AbortSignal.abort() }));
    expect(before.name).toBe('AbortError');
    expect(heldLocks()).toHaveLength(0);
  });
});

describe('leaks', () => {
  it('a handle dropped without release() is released when collected, with a leak warning', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const { stdout } = await execFileP(process.execPath, ['--expose-gc', path.join(fixtures, 'swl-gc.cjs'), sessionFile]);
    expect(JSON.parse(stdout)).toMatchObject({ heldBefore: 1, heldAfter: 0, leakWarning: true, leakReport: true });
    const lock = await acquireSessionWriteLock({ sessionFile, timeoutMs: 100 });
    await lock.release();
  });
});

describe('cleanStaleLockFiles: kernel truth first, then the old rules; a lock file is removed only by a sweeper holding its lock', () => {
  it('never removes a held lock file; removes a free one whose pid is dead or missing or whose age is past staleMs, in the old words', async () => {
    const sessionsDir = path.join(dir, 'sessions');
    fs.mkdirSync(sessionsDir);
    const held = path.join(sessionsDir, 'held.jsonl');
    const child = await startChild();
    expect((await child.request({ cmd: 'acquire', sessionFile: held, timeoutMs: 100 })).ok).toBe(true);
    const nowMs = Date.now();
    const body = (pid: number, ageMs: number): string => JSON.stringify({ pid, createdAt: new Date(nowMs - ageMs).toISOString() });
    const dead = await deadPid();
    fs.writeFileSync(path.join(sessionsDir, 'empty.jsonl.lock'), '');
    fs.writeFileSync(path.join(sessionsDir, 'malformed.jsonl.lock'), '{}');
    fs.writeFileSync(path.join(sessionsDir, 'dead.jsonl.lock'), body(dead, 120_000));
    // Nobody holds these two: the live pid is a process that does not lock (an old-module gateway).
    fs.writeFileSync(path.join(sessionsDir, 'old-live.jsonl.lock'), body(child.pid, 120_000));
    fs.writeFileSync(path.join(sessionsDir, 'fresh-live.jsonl.lock'), body(child.pid, 1_000));
    fs.writeFileSync(path.join(sessionsDir, 'notes.txt.lock'), '');

    const warnings: string[] = [];
    const result = await cleanStaleLockFiles({ sessionsDir, staleMs: 30_000, nowMs, log: { warn: (m) => warnings.push(m) } });
    const names = ['dead', 'empty', 'fresh-live', 'held', 'malformed', 'old-live'].map((n) => `${n}.jsonl.lock`);
    expect(result.locks.map((l) => path.basename(l.lockPath))).toEqual(names);
    const byName = Object.fromEntries(result.locks.map((l) => [path.basename(l.lockPath), l]));
    expect(byName['held.jsonl.lock']).toMatchObject({ lockPath: lockPathOf(held), pid: child.pid, pidAlive: true, stale: false, staleReasons: [], removed: false });
    expect(byName['held.jsonl.lock'].ageMs).toBeGreaterThanOrEqual(0);
    expect(byName['empty.jsonl.lock']).toMatchObject({ pid: null, pidAlive: false, createdAt: null, ageMs: null, stale: true, staleReasons: ['missing-pid', 'invalid-createdAt'], removed: true });
    expect(byName['malformed.jsonl.lock']).toMatchObject({ pid: null, stale: true, staleReasons: ['missing-pid', 'invalid-createdAt'], removed: true });
    expect(byName['dead.jsonl.lock']).toMatchObject({ pid: dead, pidAlive: false, ageMs: 120_000, stale: true, staleReasons: ['dead-pid', 'too-old'], removed: true });
    expect(byName['old-live.jsonl.lock']).toMatchObject({ pid: child.pid, pidAlive: true, ageMs: 120_000, stale: true, staleReasons: ['too-old'], removed: true });
    expect(byName['fresh-live.jsonl.lock']).toMatchObject({
      pid: child.pid,
      pidAlive: true,
      createdAt: new Date(nowMs - 1_000).toISOString(),
      ageMs: 1_000,
      stale: false,
      staleReasons: [],
      removed: false,
    });
    expect(result.cleaned.map((l) => path.basename(l.lockPath))).toEqual(['dead.jsonl.lock', 'empty.jsonl.lock', 'malformed.jsonl.lock', 'old-live.jsonl.lock']);
    expect(warnings).toEqual(result.cleaned.map((l) => `removed stale session lock: ${l.lockPath} (${l.staleReasons.join(', ')})`));
    expect(fs.readdirSync(sessionsDir).sort()).toEqual(['fresh-live.jsonl.lock', 'held.jsonl.lock', 'notes.txt.lock']);

    // The old failure: the sweep deleted the held file and a second process got the lock too. Not anymore.
    const second = await startChild();
    const blocked = await second.request({ cmd: 'acquire', sessionFile: held, timeoutMs: 100 });
    expect(blocked).toMatchObject({ ok: false, code: 'SESSION_WRITE_LOCK_TIMEOUT', ownerPid: child.pid });
    await child.request({ cmd: 'release' });
    expect((await second.request({ cmd: 'acquire', sessionFile: held, timeoutMs: 100 })).ok).toBe(true);
  });

  it('a fresh file naming a live local process is kept with no kernel lock on it, until it is older than staleMs (default 30 min)', async () => {
    const sessionsDir = path.join(dir, 'sessions');
    fs.mkdirSync(sessionsDir);
    const child = await startChild();
    const createdAt = new Date().toISOString();
    const legacy = path.join(sessionsDir, 'legacy.jsonl.lock');
    fs.writeFileSync(legacy, JSON.stringify({ pid: child.pid, createdAt }));
    // A holder record of this library, left by a holder that never released (same host, live pid).
    const recorded = path.join(sessionsDir, 'recorded.jsonl.lock');
    fs.writeFileSync(recorded, `${JSON.stringify({ pid: child.pid, hostname: os.hostname(), nonce: 'x-1', createdAt, acquiredAt: Date.parse(createdAt) })}\n`);

    for (const staleMs of [undefined, 0, -1, NaN, Infinity, '1']) {
      const kept = await cleanStaleLockFiles({ sessionsDir, staleMs: staleMs as number, nowMs: Date.parse(createdAt) + 30 * 60_000 });
      expect(kept.cleaned).toEqual([]);
      expect(kept.locks).toMatchObject([
        { lockPath: legacy, pid: child.pid, pidAlive: true, createdAt, stale: false, removed: false },
        { lockPath: recorded, pid: child.pid, pidAlive: true, createdAt, stale: false, removed: false },
      ]);
    }
    expect(fs.existsSync(legacy) && fs.existsSync(recorded)).toBe(true);

    const old = await cleanStaleLockFiles({ sessionsDir, nowMs: Date.parse(createdAt) + 30 * 60_000 + 1 });
    expect(old.cleaned).toMatchObject([
      { lockPath: legacy, staleReasons: ['too-old'], removed: true },
      { lockPath: recorded, staleReasons: ['too-old'], removed: true },
    ]);
    expect(fs.readdirSync(sessionsDir)).toEqual([]);
  });

  it('judges each file by what it holds when its turn comes: one an old gateway took since the sweep began is kept', async () => {
    const sessionsDir = path.join(dir, 'sessions');
    fs.mkdirSync(sessionsDir);
    const child = await startChild();
    const dead = await deadPid();
    const first = path.join(sessionsDir, 'a.jsonl.lock');
    const second = path.join(sessionsDir, 'b.jsonl.lock');
    for (const lockPath of [first, second]) fs.writeFileSync(lockPath, JSON.stringify({ pid: dead, createdAt: new Date().toISOString() }));
    const createdAt = new Date().toISOString();
    // The kernel state of both was read before the first removal is logged; then an old-module gateway takes the second.
    const warn = (message: string): void => {
      if (message.includes(first)) fs.writeFileSync(second, JSON.stringify({ pid: child.pid, createdAt }));
    };
    const result = await cleanStaleLockFiles({ sessionsDir, log: { warn } });
    expect(result.cleaned.map((l) => l.lockPath)).toEqual([first]);
    expect(result.locks[1]).toMatchObject({ lockPath: second, pid: child.pid, pidAlive: true, createdAt, stale: false, removed: false });
    expect(JSON.parse(fs.readFileSync(second, 'utf8'))).toEqual({ pid: child.pid, createdAt });
  });

  it('a record from another host is judged by its age only (its pid cannot be checked from here)', async () => {
    const sessionsDir = path.join(dir, 'sessions');
    fs.mkdirSync(sessionsDir);
    const lockPath = path.join(sessionsDir, 'remote.jsonl.lock');
    const acquiredAt = Date.now() - 60_000;
    fs.writeFileSync(lockPath, `${JSON.stringify({ pid: await deadPid(), hostname: `not-${os.hostname()}`, nonce: 'x-1', createdAt: new Date(acquiredAt).toISOString(), acquiredAt })}\n`);
    const young = await cleanStaleLockFiles({ sessionsDir, staleMs: 120_000 });
    expect(young.locks).toMatchObject([{ lockPath, pidAlive: false, stale: false, staleReasons: [], removed: false }]);
    const old = await cleanStaleLockFiles({ sessionsDir, staleMs: 30_000 });
    expect(old.locks).toMatchObject([{ lockPath, stale: true, staleReasons: ['too-old'], removed: true }]);
    expect(fs.existsSync(lockPath)).toBe(false);
  });

  it.runIf(process.platform === 'linux')('an old-format body whose live pid has another start time names a recycled pid: removed as recycled-pid', async () => {
    const sessionsDir = path.join(dir, 'sessions');
    fs.mkdirSync(sessionsDir);
    const child = await startChild();
    const starttime = processStartTime(child.pid);
    expect(starttime).not.toBeNull();
    const createdAt = new Date().toISOString();
    fs.writeFileSync(path.join(sessionsDir, 'recycled.jsonl.lock'), JSON.stringify({ pid: child.pid, createdAt, starttime: (starttime as number) + 1 }));
    fs.writeFileSync(path.join(sessionsDir, 'same.jsonl.lock'), JSON.stringify({ pid: child.pid, createdAt, starttime }));
    const result = await cleanStaleLockFiles({ sessionsDir });
    expect(result.locks).toMatchObject([
      { lockPath: path.join(sessionsDir, 'recycled.jsonl.lock'), pid: child.pid, pidAlive: true, stale: true, staleReasons: ['recycled-pid'], removed: true },
      { lockPath: path.join(sessionsDir, 'same.jsonl.lock'), pid: child.pid, pidAlive: true, stale: false, staleReasons: [], removed: false },
    ]);
    expect(fs.readdirSync(sessionsDir)).toEqual(['same.jsonl.lock']);
  });

  it('removeStale: false only reports; a lock this very process holds is not stale; a SIGKILLed holder\'s leftovers are', async () => {
    const sessionsDir = path.join(dir, 'sessions');
    const mine = await acquireSessionWriteLock({ sessionFile: path.join(sessionsDir, 'mine.jsonl') });
    const child = await startChild();
    const killed = path.join(sessionsDir, 'killed.jsonl');
    expect((await child.request({ cmd: 'acquire', sessionFile: killed, timeoutMs: 100 })).ok).toBe(true);
    await child.kill();

    // Age makes no held lock stale.
    const report = await cleanStaleLockFiles({ sessionsDir, removeStale: false, staleMs: 1, nowMs: Date.now() + 3_600_000 });
    expect(report.cleaned).toEqual([]);
    expect(report.locks).toMatchObject([
      { lockPath: lockPathOf(killed), pid: child.pid, pidAlive: false, stale: true, staleReasons: ['dead-pid', 'too-old'], removed: false },
      { lockPath: mine.lockPath, pid: process.pid, pidAlive: true, stale: false, staleReasons: [], removed: false },
    ]);
    expect(fs.existsSync(lockPathOf(killed))).toBe(true);

    const swept = await cleanStaleLockFiles({ sessionsDir, staleMs: 1, nowMs: Date.now() + 3_600_000 });
    expect(swept.cleaned).toMatchObject([{ lockPath: lockPathOf(killed), staleReasons: ['dead-pid', 'too-old'] }]);
    expect(fs.existsSync(lockPathOf(killed))).toBe(false);
    expect(fs.existsSync(mine.lockPath as string)).toBe(true);
    expect(mine.held).toBe(true);
    await mine.release();
  });

  it('a missing folder reports nothing; entries that are not regular files are reported, never touched', async () => {
    expect(await cleanStaleLockFiles({ sessionsDir: path.join(dir, 'nope') })).toEqual({ locks: [], cleaned: [] });
    const sessionsDir = path.join(dir, 'sessions');
    fs.mkdirSync(path.join(sessionsDir, 'folder.jsonl.lock'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'elsewhere'), 'keep');
    fs.symlinkSync(path.join(dir, 'elsewhere'), path.join(sessionsDir, 'link.jsonl.lock'));
    const warnings: string[] = [];
    const result = await cleanStaleLockFiles({ sessionsDir, log: { warn: (m) => warnings.push(m) } });
    expect(result.cleaned).toEqual([]);
    expect(result.locks).toMatchObject([
      { lockPath: path.join(sessionsDir, 'folder.jsonl.lock'), stale: false, removed: false },
      { lockPath: path.join(sessionsDir, 'link.jsonl.lock'), stale: false, removed: false },
    ]);
    expect(warnings).toHaveLength(2);
    expect(fs.lstatSync(path.join(sessionsDir, 'link.jsonl.lock')).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(path.join(dir, 'elsewhere'), 'utf8')).toBe('keep');
  });

  it('sweeping in a loop while two processes increment a counter under the lock loses no update', { timeout: 120_000 }, async () => {
    const sessionsDir = path.join(dir, 'sessions');
    fs.mkdirSync(sessionsDir);
    const sessionFile = path.join(sessionsDir, 'counter.jsonl');
    const counter = path.join(dir, 'counter');
    fs.writeFileSync(counter, '0');
    const iterations = 150;
    const runs = [1, 2].map(
      () =>
        new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
          const proc = spawn(process.execPath, [path.join(fixtures, 'swl-counter.cjs'), sessionFile, counter, String(iterations)], { stdio: ['ignore', 'ignore', 'pipe'] });
          children.push(proc);
          let stderr = '';
          proc.stderr.on('data', (d) => (stderr += d));
          proc.on('error', reject);
          proc.on('close', (code) => resolve({ code, stderr }));
        }),
    );
    let done = false;
    const all = Promise.all(runs).finally(() => (done = true));
    let sweeps = 0;
    while (!done) {
      await cleanStaleLockFiles({ sessionsDir });
      sweeps++;
      await new Promise((r) => setImmediate(r));
    }
    for (const run of await all) expect(run.code, run.stderr).toBe(0);
    expect(Number(fs.readFileSync(counter, 'utf8'))).toBe(2 * iterations);
    expect(sweeps).toBeGreaterThan(0);
    // Each holder removed the lock file at its release; the sweeper took whatever it found free.
    expect(fs.readdirSync(sessionsDir)).toEqual([]);
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
    expect(cjs.stdout.trim().split(',')).toEqual([
      'SESSION_WRITE_LOCK_TIMEOUT',
      'SessionWriteLockTimeoutError',
      '__testing',
      'acquireSessionWriteLock',
      'cleanStaleLockFiles',
      'drainSessionWriteLockStateForTest',
      'isSessionWriteLockTimeoutError',
      'releaseAllSessionWriteLocks',
      'resetSessionWriteLockStateForTest',
      'resolveSessionLockMaxHoldFromTimeout',
    ]);
  });
});
