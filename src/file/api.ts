import * as os from 'node:os';
import {
  type HolderInfo,
  invalidArgType,
  LockAbortedError,
  LockDeadlockError,
  LockTimeoutError,
} from '../core/errors';
import { type CallSite, captureCallSite, formatCallSite, type Hold } from '../core/hold';
import { LockEntry, Waiter } from '../core/lock-entry';
import { type AcquireOptions, type ResolvedOptions, resolveOptions } from '../core/options';
import { readRecord, recordPathFor } from './record';
import { registry } from '../core/registry';
import { holdOf, SessionLock, watchForLeak } from '../core/session-lock';

const hostname = os.hostname();
/** setTimeout's ceiling (~24.8 days); a longer budget waits without a timer. */
const MAX_TIMER_MS = 0x7fffffff;

/** Who holds `entry`'s lock, from this process's own holds or else the holder record. */
function currentHolder(entry: LockEntry): HolderInfo | null {
  for (const hold of entry.holds) {
    return {
      pid: process.pid,
      hostname,
      owner: hold.options.owner,
      process: process.title,
      mode: hold.mode,
      acquiredAt: hold.acquiredAt,
      heldForMs: hold.heldForMs,
      sameProcess: true,
      acquiredStack: formatCallSite(hold.site),
    };
  }
  const record = readRecord(recordPathFor(entry.lockPath));
  if (record === null) return null;
  const acquiredAt = typeof record.acquiredAt === 'number' ? record.acquiredAt : null;
  const names = [record.process?.argv0, record.process?.title].filter((n, i, all) => typeof n === 'string' && n && all.indexOf(n) === i);
  return {
    pid: record.pid,
    hostname: typeof record.hostname === 'string' ? record.hostname : null,
    owner: typeof record.owner === 'string' ? record.owner : null,
    process: names.length > 0 ? names.join(' ') : null,
    mode: record.mode === 'shared' || record.mode === 'exclusive' ? record.mode : null,
    acquiredAt,
    heldForMs: acquiredAt === null ? null : Date.now() - acquiredAt,
    sameProcess: record.pid === process.pid && record.hostname === hostname,
  };
}

function timeoutError(entry: LockEntry, options: ResolvedOptions): LockTimeoutError {
  return new LockTimeoutError(entry.lockPath, entry.target, options.timeoutMs, currentHolder(entry));
}

/**
 * Inside withLock(p), a nested acquire of p re-enters the enclosing hold
 * (or refuses at once where waiting could only deadlock).
 */
function reenter(options: ResolvedOptions): SessionLock | null {
  const hold = registry.context.getStore()?.get(options.lockPath);
  if (hold === undefined || hold.released) return null;
  if (!options.reentrant) {
    throw new LockDeadlockError(options.lockPath, options.target, 'this async context already holds it inside withLock() and reentrant is false');
  }
  if (hold.shared && !options.shared) {
    throw new LockDeadlockError(options.lockPath, options.target, 'an exclusive lock was requested inside withLock() that holds it shared');
  }
  hold.views++;
  return new SessionLock(hold);
}

function acquireResolved(options: ResolvedOptions, site: CallSite): Promise<SessionLock> {
  const reentered = reenter(options);
  if (reentered !== null) return Promise.resolve(reentered);
  const { signal } = options;
  if (signal?.aborted) {
    return Promise.reject(new LockAbortedError(options.lockPath, options.target, 'the signal was already aborted', signal.reason));
  }
  const entry = LockEntry.for(options.lockPath, options.target);
  if (options.timeoutMs === 0) {
    // One attempt: never queue, never start a kernel wait.
    const hold = entry.tryNow(options, site);
    return hold !== null ? Promise.resolve(new SessionLock(hold)) : Promise.reject(timeoutError(entry, options));
  }
  return new Promise<SessionLock>((resolve, reject) => {
    const waiter = new Waiter(
      options,
      site,
      (hold) => {
        const lock = new SessionLock(hold, false);
        resolve(lock);
        return () => watchForLeak(lock);
      },
      reject,
    );
    entry.enqueue(waiter);
    if (waiter.settled) return;
    // A pending acquire keeps the process alive, as pending I/O does: the timer
    // does it (an idle one for an unlimited wait). The addon's wait thread never
    // does by itself, so a wait that was given up and still sits in the kernel
    // cannot hold a process open.
    const timer =
      options.timeoutMs <= MAX_TIMER_MS
        ? setTimeout(() => entry.giveUp(waiter, timeoutError(entry, options)), options.timeoutMs)
        : setInterval(() => undefined, MAX_TIMER_MS);
    waiter.onSettle(() => clearTimeout(timer));
    if (signal !== undefined) {
      const onAbort = (): void => entry.giveUp(waiter, new LockAbortedError(options.lockPath, options.target, 'the signal was aborted', signal.reason));
      signal.addEventListener('abort', onAbort, { once: true });
      waiter.onSettle(() => signal.removeEventListener('abort', onAbort));
    }
  });
}

/**
 * Acquires the kernel lock on `${target}.lock` (or `options.lockPath`),
 * waiting up to `timeoutMs` (default 10 s).
 *
 * Guarantees: when the promise resolves, this process holds the lock through
 * its own descriptor of the file that the lock path names at that moment;
 * no other process holds a conflicting lock on it (flock semantics); waiters
 * in this process are served in FIFO order. The wait runs on an addon-owned
 * thread, never on libuv's threadpool.
 *
 * Not guaranteed: anything about processes that do not lock (locks are
 * advisory on POSIX), fairness between processes (the kernel decides).
 *
 * Released by: release()/releaseSync()/dispose, the end of withLock(),
 * releaseAll(), garbage collection of the SessionLock (with a warning), and
 * by the kernel when the process exits or dies for any reason.
 *
 * Platform-specific behavior: flock(2) on Linux and macOS (whole file);
 * LockFileEx on one byte range far past any data on Windows. This may change.
 */
export function acquire(target: string, options?: AcquireOptions): Promise<SessionLock> {
  let resolved: ResolvedOptions;
  try {
    resolved = resolveOptions(target, options);
    return acquireResolved(resolved, captureCallSite(acquire));
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * One attempt that never waits: a SessionLock, or null when another holder
 * (another process, or an earlier holder or waiter in this process) has it.
 * Filesystem errors still throw. Same release rules as acquire().
 */
export function tryAcquireSync(target: string, options?: AcquireOptions): SessionLock | null {
  const resolved = resolveOptions(target, options);
  if (resolved.signal?.aborted) {
    throw new LockAbortedError(resolved.lockPath, resolved.target, 'the signal was already aborted', resolved.signal.reason);
  }
  const reentered = reenter(resolved);
  if (reentered !== null) return reentered;
  const hold = LockEntry.for(resolved.lockPath, resolved.target).tryNow(resolved, captureCallSite(tryAcquireSync));
  return hold === null ? null : new SessionLock(hold);
}

/** Promise form of tryAcquireSync(): one attempt, never waits. */
export function tryAcquire(target: string, options?: AcquireOptions): Promise<SessionLock | null> {
  try {
    return Promise.resolve(tryAcquireSync(target, options));
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Runs `fn` while holding the lock, and releases it when `fn` settles
 * (returns, throws or rejects). Inside `fn` (and everything it awaits), a
 * nested acquire of the same lock re-enters instead of waiting for itself.
 */
export async function withLock<T>(
  target: string,
  fn: (lock: SessionLock) => T | Promise<T>,
  options?: AcquireOptions,
): Promise<T> {
  if (typeof fn !== 'function') throw invalidArgType('fn', 'of type function', fn);
  const resolved = resolveOptions(target, options);
  const lock = await acquireResolved(resolved, captureCallSite(withLock));
  try {
    const hold = holdOf(lock);
    const enclosing = registry.context.getStore();
    const context = new Map(enclosing);
    context.set(hold.entry.lockPath, hold);
    return await registry.context.run(context, () => fn(lock));
  } finally {
    lock.releaseSync();
  }
}

export interface HeldLockInfo {
  target: string;
  lockPath: string;
  mode: 'shared' | 'exclusive';
  owner: string | null;
  acquiredAt: number;
  heldForMs: number;
  /** Live SessionLock views of this hold (re-entrancy count). */
  count: number;
  /** Acquires in this process queued behind it. */
  waiters: number;
  /** Where it was acquired (captured at every acquire; formatted on demand). */
  stack: string;
}

/** The locks this process holds now, with where each was acquired. */
export function heldLocks(): HeldLockInfo[] {
  const result: HeldLockInfo[] = [];
  for (const entry of registry.entries.values()) {
    for (const hold of entry.holds) {
      result.push({
        target: entry.target,
        lockPath: entry.lockPath,
        mode: hold.mode,
        owner: hold.options.owner,
        acquiredAt: hold.acquiredAt,
        heldForMs: hold.heldForMs,
        count: hold.views,
        waiters: entry.waiters,
        stack: formatCallSite(hold.site),
      });
    }
  }
  return result;
}

/**
 * Closes every lock descriptor this process holds and fails every pending
 * acquire with LockAbortedError. For in-process restarts (same pid): after
 * it, old SessionLocks are dead and their release() does nothing. Resolves
 * to the number of held locks closed.
 */
export function releaseAll(): Promise<number> {
  let closed = 0;
  for (const entry of [...registry.entries.values()]) {
    for (const waiter of [...entry.queue]) {
      entry.giveUp(waiter, new LockAbortedError(entry.lockPath, entry.target, 'releaseAll() was called'));
    }
    for (const hold of [...entry.holds]) if (hold.release()) closed++;
  }
  return Promise.resolve(closed);
}

/**
 * @internal Process-wide re-entry, for the session-write-lock adapter: a new
 * view of this process's exclusive hold on `lockPath` (counted like a nested
 * acquire inside withLock), or null when this process holds none.
 */
export function joinHeld(lockPath: string): SessionLock | null {
  const entry = registry.entries.get(lockPath);
  for (const hold of entry?.holds ?? []) {
    if (hold.released || hold.shared) continue;
    hold.views++;
    return new SessionLock(hold);
  }
  return null;
}

/** @internal for the CLI's `run`: the hold behind a lock. */
export function holdFor(lock: SessionLock): Hold {
  return holdOf(lock);
}
