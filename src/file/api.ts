import { invalidArgType } from '../core/errors';
import { captureCallSite } from '../core/hold';
import {
  acquireLock,
  type HeldLockInfo,
  heldLocksOf,
  joinHeldLock,
  type LockFamily,
  releaseAllOf,
  runLocked,
  tryLockSync,
} from '../core/locks';
import { holdOf, SessionLock } from '../core/session-lock';
import { fileBackend, inheritableDescriptor } from './backend';
import { binding, isHandle, type NativeHandle } from './binding';
import { existingLockKey, lockKeyOf } from './lock-key';
import { type AcquireOptions, type ResolvedOptions, resolveOptions } from './options';

/** The file API in the core: its group is one name, so that copies of this package that share the registry list each other's holds. */
const fileLocks: LockFamily<NativeHandle> = { group: 'file', backend: fileBackend, lockClass: SessionLock };

/**
 * The lock file of a request, opened (and created if missing): its descriptor tells the
 * lock's key, and the first attempt locks it. null when the signal already aborted (then
 * nothing touches the file), or when it cannot be opened: the key then comes from the
 * path, so that re-entry and this process's own holds are still decided first, and the
 * attempt reports the error if it comes to one (as it would have without this open).
 */
function openFor(options: ResolvedOptions): NativeHandle | null {
  if (options.signal?.aborted) return null;
  const opened = binding.open(options.lockPath, options.fileMode, true);
  return isHandle(opened) ? opened : null;
}

function keyOf(opened: NativeHandle | null, options: ResolvedOptions): string {
  if (opened !== null) return lockKeyOf(opened, options.lockPath);
  if (options.signal?.aborted) return options.lockPath;
  return existingLockKey(options.lockPath) ?? options.lockPath;
}

export type { HeldLockInfo };

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
  try {
    const resolved = resolveOptions(target, options);
    const site = captureCallSite(acquire);
    const opened = openFor(resolved);
    return acquireLock(fileLocks, keyOf(opened, resolved), resolved, site, opened);
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
  const site = captureCallSite(tryAcquireSync);
  const opened = openFor(resolved);
  return tryLockSync(fileLocks, keyOf(opened, resolved), resolved, site, opened);
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
  const site = captureCallSite(withLock);
  const opened = openFor(resolved);
  const key = keyOf(opened, resolved);
  return runLocked(key, acquireLock(fileLocks, key, resolved, site, opened), fn);
}

/** The locks this process holds now, with where each was acquired. */
export function heldLocks(): HeldLockInfo[] {
  return heldLocksOf(fileLocks);
}

/**
 * Closes every lock descriptor this process holds and fails every pending
 * acquire with LockAbortedError. For in-process restarts (same pid): after
 * it, old SessionLocks are dead and their release() does nothing. Resolves
 * to the number of held locks closed.
 */
export function releaseAll(): Promise<number> {
  return releaseAllOf(fileLocks);
}

/**
 * @internal Process-wide re-entry, for the session-write-lock adapter: a new
 * view of this process's exclusive hold on `lockPath` (counted like a nested
 * acquire inside withLock), or null when this process holds none.
 */
export function joinHeld(lockPath: string): SessionLock | null {
  const key = existingLockKey(lockPath);
  return key === null ? null : joinHeldLock(fileLocks, key);
}

/** @internal for the CLI's `run`: the lock's descriptor, made inheritable by children or not. */
export function holdFor(lock: SessionLock): { inheritableDescriptor(inheritable?: boolean): number } {
  const hold = holdOf(lock);
  return { inheritableDescriptor: (inheritable = true) => inheritableDescriptor(hold, inheritable) };
}
