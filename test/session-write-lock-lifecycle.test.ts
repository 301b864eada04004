// What ends a hold of the session-write-lock adapter besides its handle, as the OpenClaw
// module it replaces did: the in-process watchdog (a hold older than its maxHoldMs), the
// exit listener and the termination-signal listeners. Real locks, real files, real child
// processes (test/fixtures/swl-lifecycle.cjs) that really exit and really get signals.
import { type ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { acquire as coreAcquire, heldLocks, tryAcquireSync } from '../dist/cjs/index.js';
import {
  __testing,
  acquireSessionWriteLock,
  drainSessionWriteLockStateForTest,
  releaseAllSessionWriteLocks,
  resetSessionWriteLockStateForTest,
} from '../dist/cjs/adapters/session-write-lock.js';

const lifecycleFixture = path.join(__dirname, 'fixtures', 'swl-lifecycle.cjs');
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGABRT'] as const;

let dir: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'swl-life-')));
});

afterEach(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await drainSessionWriteLockStateForTest();
  await releaseAllSessionWriteLocks();
  for (const proc of children.splice(0)) if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Whether a hold left its lock file behind: a release removes it; a holder killed outright does not. */
const leftBehind = (lockPath: string): boolean => fs.existsSync(lockPath);

/** Whether another descriptor could lock lockPath right now (nobody, this process included, holds it); leaves no file. */
function lockable(lockPath: string): boolean {
  const probe = tryAcquireSync(lockPath.slice(0, -'.lock'.length), { lockPath, record: false, reentrant: false, removeLockFile: true });
  probe?.releaseSync();
  return probe !== null;
}

interface Lifecycle {
  proc: ChildProcess;
  /** The next JSON line the child prints. */
  next(): Promise<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startLifecycle(config: { sessions: string[]; nested?: boolean; listenTo?: string | null; end: 'wait' | 'exit' | 'return' }): Lifecycle {
  const proc = spawn(process.execPath, [lifecycleFixture, JSON.stringify({ nested: false, listenTo: null, ...config })], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(proc);
  const lines: string[] = [];
  const readers: ((line: string) => void)[] = [];
  let buffered = '';
  proc.stdout!.setEncoding('utf8');
  proc.stdout!.on('data', (chunk: string) => {
    buffered += chunk;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const reader = readers.shift();
      if (reader !== undefined) reader(line);
      else lines.push(line);
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return {
    proc,
    exited,
    next() {
      const line = lines.shift();
      if (line !== undefined) return Promise.resolve(JSON.parse(line));
      return new Promise((resolve, reject) => {
        readers.push((l) => resolve(JSON.parse(l)));
        exited.then(({ code, signal }) => reject(new Error(`the child ended (${code ?? signal}) before printing a line`)));
      });
    },
  };
}

function listenerCounts(): Record<string, number> {
  return Object.fromEntries(['exit', ...SIGNALS].map((name) => [name, process.listenerCount(name)]));
}

describe('watchdog: a hold this process took that outlived its maxHoldMs is let go', () => {
  it('runLockWatchdogCheck lets it go with the old line on stderr and counts it; the old handles go inert; another process acquires', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const lockPath = `${sessionFile}.lock`;
    const stderr: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr.push(String(chunk));
      return true;
    });
    const a = await acquireSessionWriteLock({ sessionFile, maxHoldMs: 1 });
    const nested = await acquireSessionWriteLock({ sessionFile });
    const acquiredAt = heldLocks()[0].acquiredAt;
    const nowMs = acquiredAt + 1_000;

    expect(await __testing.runLockWatchdogCheck(nowMs)).toBe(1);
    expect(stderr).toEqual([`[session-write-lock] releasing lock held for 1000ms (max=1ms): ${lockPath}\n`]);
    // The count of the re-entered hold does not keep it: both handles are inert.
    expect(a.held).toBe(false);
    expect(nested.held).toBe(false);
    expect(heldLocks()).toHaveLength(0);
    expect(leftBehind(lockPath)).toBe(false);
    expect(await __testing.runLockWatchdogCheck(nowMs)).toBe(0);

    const other = startLifecycle({ sessions: [sessionFile], end: 'wait' });
    expect(await other.next()).toMatchObject({ ready: true });
    expect(lockable(lockPath)).toBe(false);
    // A late release of an old handle cannot free the new holder's lock.
    await a.release();
    await nested.release();
    expect(lockable(lockPath)).toBe(false);
    other.proc.kill('SIGKILL');
    await other.exited;
    const b = await acquireSessionWriteLock({ sessionFile, timeoutMs: 5_000 });
    await a.release();
    expect(b.held).toBe(true);
    await b.release();
  });

  it('a hold is let go only once it is older than maxHoldMs; the default is 5 min, with the duration rule', async () => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const sessionFile = path.join(dir, 'a.jsonl');
    for (const maxHoldMs of [undefined, 0, -5, NaN, Infinity, '60000']) {
      const lock = await acquireSessionWriteLock({ sessionFile, maxHoldMs: maxHoldMs as number });
      const { acquiredAt } = heldLocks()[0];
      expect(await __testing.runLockWatchdogCheck(acquiredAt + 5 * 60_000)).toBe(0);
      expect(lock.held).toBe(true);
      expect(await __testing.runLockWatchdogCheck(acquiredAt + 5 * 60_000 + 1)).toBe(1);
      expect(lock.held).toBe(false);
    }
    const short = await acquireSessionWriteLock({ sessionFile, maxHoldMs: 2_000 });
    const { acquiredAt } = heldLocks()[0];
    expect(await __testing.runLockWatchdogCheck(acquiredAt + 2_000)).toBe(0);
    expect(await __testing.runLockWatchdogCheck(acquiredAt + 2_001)).toBe(1);
    expect(short.held).toBe(false);
    expect(lockable(`${sessionFile}.lock`)).toBe(true);
  });

  it('never touches a lock this module did not take: the core API\'s own holds and another process\'s locks', async () => {
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    const mine = path.join(dir, 'mine.jsonl');
    const core = path.join(dir, 'core.jsonl');
    const theirs = path.join(dir, 'theirs.jsonl');
    const other = startLifecycle({ sessions: [theirs], end: 'wait' });
    expect(await other.next()).toMatchObject({ ready: true });
    const coreLock = await coreAcquire(core);
    // A handle joined onto the core's hold is not a hold this module took.
    const joined = await acquireSessionWriteLock({ sessionFile: core, maxHoldMs: 1 });
    const lock = await acquireSessionWriteLock({ sessionFile: mine, maxHoldMs: 1 });

    expect(await __testing.runLockWatchdogCheck(Date.now() + 60_000)).toBe(1);
    expect(lock.held).toBe(false);
    expect(coreLock.held).toBe(true);
    expect(joined.held).toBe(true);
    expect(lockable(`${theirs}.lock`)).toBe(false);
    await joined.release();
    await coreLock.release();
  });

  it('checks once a minute from the first acquire, and stops once nothing this module took is held', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    const stderr: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr.push(String(chunk));
      return true;
    });
    const sessionFile = path.join(dir, 'a.jsonl');
    const lockPath = `${sessionFile}.lock`;
    const startedAt = Date.now();
    const lock = await acquireSessionWriteLock({ sessionFile, maxHoldMs: 90_000 });
    const { acquiredAt } = heldLocks()[0];
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(60_000);
    expect(lock.held).toBe(true);
    expect(lockable(lockPath)).toBe(false);
    vi.advanceTimersByTime(59_999);
    expect(lock.held).toBe(true);
    vi.advanceTimersByTime(1);
    expect(lock.held).toBe(false);
    expect(stderr).toEqual([`[session-write-lock] releasing lock held for ${startedAt + 120_000 - acquiredAt}ms (max=90000ms): ${lockPath}\n`]);
    expect(lockable(lockPath)).toBe(true);
    expect(vi.getTimerCount()).toBe(0);

    // An ordinary last release stops it too; the next acquire starts it again.
    const again = await acquireSessionWriteLock({ sessionFile });
    expect(vi.getTimerCount()).toBe(1);
    await again.release();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('exit and termination signals', () => {
  it('the first acquire adds one exit listener and one per cleanup signal; none accumulate across resets', async () => {
    expect(__testing.cleanupSignals).toEqual([...SIGNALS]);
    const baseline = listenerCounts();
    const sessionFile = path.join(dir, 'a.jsonl');
    for (let i = 0; i < 3; i++) {
      const first = await acquireSessionWriteLock({ sessionFile });
      const nested = await acquireSessionWriteLock({ sessionFile });
      const second = await acquireSessionWriteLock({ sessionFile: path.join(dir, 'b.jsonl') });
      expect(listenerCounts()).toEqual(Object.fromEntries(Object.entries(baseline).map(([name, n]) => [name, n + 1])));
      await nested.release();
      await first.release();
      await second.release();
      resetSessionWriteLockStateForTest();
      expect(listenerCounts()).toEqual(baseline);
    }
    await acquireSessionWriteLock({ sessionFile });
    await drainSessionWriteLockStateForTest();
    expect(listenerCounts()).toEqual(baseline);
  });

  it('releaseAllLocksSync (what the exit listener runs) releases every hold this module took, re-entered ones included', async () => {
    const a = path.join(dir, 'a.jsonl');
    const b = path.join(dir, 'b.jsonl');
    const first = await acquireSessionWriteLock({ sessionFile: a });
    const nested = await acquireSessionWriteLock({ sessionFile: a });
    const other = await acquireSessionWriteLock({ sessionFile: b });
    __testing.releaseAllLocksSync();
    expect([first.held, nested.held, other.held]).toEqual([false, false, false]);
    expect(heldLocks()).toHaveLength(0);
    expect([leftBehind(`${a}.lock`), leftBehind(`${b}.lock`)]).toEqual([false, false]);
    expect([lockable(`${a}.lock`), lockable(`${b}.lock`)]).toEqual([true, true]);
    await first.release();
  });

  it.each([
    ['process.exit()', 'exit' as const, 3],
    ['the event loop running empty', 'return' as const, 0],
  ])('at exit by %s, the holds are released before the process is gone', async (_name, end, code) => {
    const sessions = [path.join(dir, 'a.jsonl'), path.join(dir, 'b.jsonl')];
    const child = startLifecycle({ sessions, nested: true, end });
    expect(await child.next()).toMatchObject({ ready: true });
    expect(await child.exited).toEqual({ code, signal: null });
    for (const session of sessions) expect(leftBehind(`${session}.lock`)).toBe(false);
  });

  it('a holder killed outright (SIGKILL: no listener runs) leaves its lock file behind, naming it, freed by the kernel', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const child = startLifecycle({ sessions: [sessionFile], end: 'wait' });
    const ready = await child.next();
    expect(ready).toMatchObject({ ready: true });
    child.proc.kill('SIGKILL');
    expect(await child.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(leftBehind(`${sessionFile}.lock`)).toBe(true);
    expect(JSON.parse(fs.readFileSync(`${sessionFile}.lock`, 'utf8'))).toMatchObject({ pid: ready.pid });
    expect(lockable(`${sessionFile}.lock`)).toBe(true);
  });

  it.each(SIGNALS)('on %s with no other listener: the holds are released, then the signal is raised again and ends the process', async (signal) => {
    const sessions = [path.join(dir, 'a.jsonl'), path.join(dir, 'b.jsonl')];
    const child = startLifecycle({ sessions, nested: true, end: 'wait' });
    expect(await child.next()).toMatchObject({ ready: true });
    child.proc.kill(signal);
    expect(await child.exited).toEqual({ code: null, signal });
    for (const session of sessions) expect(leftBehind(`${session}.lock`)).toBe(false);
  });

  it('on SIGINT with another listener: the holds are released, the signal is not raised again, and both listeners stay', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const lockPath = `${sessionFile}.lock`;
    const child = startLifecycle({ sessions: [sessionFile], nested: true, listenTo: 'SIGINT', end: 'wait' });
    expect(await child.next()).toMatchObject({ ready: true });
    child.proc.kill('SIGINT');
    // The adapter's listener ran first (it was added first): the application's sees the holds gone.
    expect(await child.next()).toEqual({ signal: 'SIGINT', listeners: 2, held: [false, false] });
    expect(leftBehind(lockPath)).toBe(false);
    expect(lockable(lockPath)).toBe(true);
    // Still alive and still listening: a second SIGINT reaches the application again.
    child.proc.kill('SIGINT');
    expect(await child.next()).toEqual({ signal: 'SIGINT', listeners: 2, held: [false, false] });
    expect(child.proc.exitCode).toBeNull();
    child.proc.kill('SIGTERM');
    expect(await child.exited).toEqual({ code: null, signal: 'SIGTERM' });
  });

  it('handleTerminationSignal with another listener present removes no listener and raises nothing', async () => {
    const sessionFile = path.join(dir, 'a.jsonl');
    const lock = await acquireSessionWriteLock({ sessionFile });
    const other = (): void => {};
    process.on('SIGTERM', other);
    const before = process.listeners('SIGTERM');
    try {
      // Two listeners (the adapter's and this one): a raise would end this test process.
      __testing.handleTerminationSignal('SIGTERM');
      expect(lock.held).toBe(false);
      expect(process.listeners('SIGTERM')).toEqual(before);
    } finally {
      process.off('SIGTERM', other);
    }
  });
});
