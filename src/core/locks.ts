import type { LockBackend } from './backend';
import { LockAbortedError, LockDeadlockError, LockTimeoutError } from './errors';
import { type CallSite, formatCallSite, type Hold } from './hold';
import { type Attempt, LockEntry, Waiter } from './lock-entry';
import type { ResolvedLockOptions } from './options';
import { registry } from './registry';
import { holdOf, type SessionLock } from './session-lock';

/** setTimeout's ceiling (~24.8 days). */
const MAX_TIMER_MS = 0x7fffffff;

function ignore(): void {}

// The operations of the public APIs, over any backend: the file API (src/file/api.ts)
// and the PostgreSQL one call these with their backend, the key of the lock and
// their resolved options.

/**
 * Inside withLock(p), a nested acquire of p re-enters the enclosing hold
 * (or refuses at once where waiting could only deadlock).
 */
function reenter<H>(entry: LockEntry<H>, key: string, options: ResolvedLockOptions): SessionLock | null {
  const hold = registry.context.getStore()?.get(key) as Hold<H> | undefined;
  if (hold === undefined || hold.released) return null;
  if (!options.reentrant) {
    throw new LockDeadlockError(options.lockPath, options.target, 'this async context already holds it inside withLock() and reentrant is false');
  }
  if (hold.shared && !options.shared) {
    throw new LockDeadlockError(options.lockPath, options.target, 'an exclusive lock was requested inside withLock() that holds it shared');
  }
  hold.views++;
  return new entry.backend.lockClass(hold);
}

/**
 * `opened` (see acquireLock) if `entry` may use it, else null. Another copy of this package
 * in the process shares the registry and drives its entries through its own addon, so only
 * an entry of this very backend may use a handle this backend opened: for any other, the
 * handle is closed here and the entry's own backend opens one.
 */
function handleFor<H>(backend: LockBackend<H>, entry: LockEntry<H>, opened: H | null): H | null {
  if (opened === null || entry.backend === backend) return opened;
  backend.releaseHandle(entry, opened);
  return null;
}

/** Closes a handle the request did not use, and forgets the entry if only this request made it. */
function giveBack<H>(backend: LockBackend<H>, entry: LockEntry<H>, opened: H | null): void {
  if (opened !== null) backend.releaseHandle(entry, opened);
  if (entry instanceof LockEntry) entry.forgetIfUnused();
}

function abortedAlready(options: ResolvedLockOptions): LockAbortedError {
  return new LockAbortedError(options.lockPath, options.target, 'the signal was already aborted', (options.signal as AbortSignal).reason);
}

/**
 * acquire(): waits in this process's FIFO, then on the backend, within one budget.
 * `opened` is a handle the backend already opened for this request (the file backend
 * opens the lock file to learn its key): the first attempt uses it, or it is given back.
 */
export function acquireLock<H>(backend: LockBackend<H>, key: string, options: ResolvedLockOptions, site: CallSite, opened: H | null = null): Promise<SessionLock> {
  return waitForLock(backend, key, options, site, false, opened) as Promise<SessionLock>;
}

/**
 * tryAcquire(): one attempt that never queues behind this process's waiters. Sync for a
 * backend with trySync; otherwise one backend wait with no budget.
 */
export function tryLock<H>(backend: LockBackend<H>, key: string, options: ResolvedLockOptions, site: CallSite): Promise<SessionLock | null> {
  if (backend.trySync !== undefined) {
    try {
      return Promise.resolve(tryLockSync(backend, key, options, site));
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return waitForLock(backend, key, options, site, true, null);
}

/** tryAcquireSync(), for a backend with trySync; `opened` as for acquireLock(). */
export function tryLockSync<H>(backend: LockBackend<H>, key: string, options: ResolvedLockOptions, site: CallSite, opened: H | null = null): SessionLock | null {
  const entry = LockEntry.for(backend, key, options.lockPath, options.target);
  opened = handleFor(backend, entry, opened);
  let reentered: SessionLock | null;
  try {
    if (options.signal?.aborted) throw abortedAlready(options);
    reentered = reenter(entry, key, options);
  } catch (error) {
    giveBack(backend, entry, opened);
    throw error;
  }
  if (reentered !== null) {
    giveBack(backend, entry, opened);
    return reentered;
  }
  const hold = entry.tryNow(options, site, opened);
  return hold === null ? null : new backend.lockClass(hold);
}

function timedOutNow<H>(entry: LockEntry<H>, options: ResolvedLockOptions): Promise<never> {
  const holder = entry.holder();
  return holder instanceof Promise
    ? holder.then(
        (known) => Promise.reject(new LockTimeoutError(options.lockPath, options.target, options.timeoutMs, known)),
        () => Promise.reject(new LockTimeoutError(options.lockPath, options.target, options.timeoutMs, null)),
      )
    : Promise.reject(new LockTimeoutError(options.lockPath, options.target, options.timeoutMs, holder));
}

function waitForLock<H>(backend: LockBackend<H>, key: string, options: ResolvedLockOptions, site: CallSite, tryOnly: boolean, opened: H | null): Promise<SessionLock | null> {
  const entry = LockEntry.for(backend, key, options.lockPath, options.target);
  opened = handleFor(backend, entry, opened);
  let reentered: SessionLock | null;
  try {
    reentered = reenter(entry, key, options);
  } catch (error) {
    giveBack(backend, entry, opened);
    return Promise.reject(error);
  }
  if (reentered !== null) {
    giveBack(backend, entry, opened);
    return Promise.resolve(reentered);
  }
  const { signal } = options;
  if (signal?.aborted) {
    giveBack(backend, entry, opened);
    return Promise.reject(abortedAlready(options));
  }
  const once = tryOnly || options.timeoutMs === 0;
  if (once && backend.trySync !== undefined) {
    // One attempt: never queue, never start a backend wait.
    const hold = entry.tryNow(options, site, opened);
    return hold !== null ? Promise.resolve(new backend.lockClass(hold)) : timedOutNow(entry, options);
  }
  if (once && !entry.free(options.shared)) {
    // Held or awaited in this process: one attempt could only queue behind it.
    giveBack(backend, entry, opened);
    return tryOnly ? Promise.resolve(null) : timedOutNow(entry, options);
  }
  // (An entry of an older copy of this package, sharing the registry, has no attemptNow().)
  let triedNow = false;
  if (!once && backend.trySync !== undefined && typeof entry.attemptNow === 'function' && entry.free(options.shared)) {
    // Nobody in this process holds or awaits it: try before making a waiter, so that an
    // uncontended acquire costs no waiter, timer or deferred grant. Held elsewhere, the
    // handle goes on to the waiter.
    const attempt: Attempt<H> = { handle: opened, options };
    let hold: Hold<H> | null;
    try {
      hold = entry.attemptNow(attempt, site);
    } catch (error) {
      return Promise.reject(error);
    }
    if (hold !== null) return Promise.resolve(new backend.lockClass(hold));
    opened = attempt.handle;
    triedNow = true;
  }
  return new Promise<SessionLock | null>((resolve, reject) => {
    const waiter = new Waiter<H>(options, site, resolve, reject, backend.lockClass);
    waiter.tryOnly = tryOnly;
    // Trying again before the backend wait would only repeat the attempt that just failed.
    waiter.triedNow = triedNow;
    entry.enqueue(waiter, opened);
    if (waiter.settled || once) return;
    // A pending acquire keeps the process alive, as pending I/O does: the timer
    // does it (an idle one for an unlimited wait). The addon's wait thread never
    // does by itself, so a wait that was given up and still sits in the kernel
    // cannot hold a process open.
    if (options.timeoutMs <= MAX_TIMER_MS) {
      const timer = setTimeout(() => entry.giveUp(waiter), options.timeoutMs);
      waiter.onSettle(() => clearTimeout(timer));
    } else if (options.timeoutMs === Infinity) {
      const timer = setInterval(ignore, MAX_TIMER_MS);
      waiter.onSettle(() => clearInterval(timer));
    } else {
      // Past setTimeout's ceiling a single timer would fire at once (Node clamps it to
      // 1 ms): a chain of timers spends the budget instead.
      let left = options.timeoutMs;
      let timer: NodeJS.Timeout;
      const next = (): void => {
        const step = Math.min(left, MAX_TIMER_MS);
        left -= step;
        timer = setTimeout(left > 0 ? next : () => entry.giveUp(waiter), step);
      };
      next();
      waiter.onSettle(() => clearTimeout(timer));
    }
    if (signal !== undefined) {
      const onAbort = (): void => entry.giveUp(waiter, new LockAbortedError(options.lockPath, options.target, 'the signal was aborted', signal.reason));
      signal.addEventListener('abort', onAbort, { once: true });
      waiter.onSettle(() => signal.removeEventListener('abort', onAbort));
    }
  });
}

/**
 * withLock(): runs `fn` while holding the lock that `acquired` resolves to, with the hold
 * in the async context (so nested acquires of `key` re-enter), and releases it when `fn`
 * settles.
 */
export async function runLocked<T>(key: string, acquired: Promise<SessionLock>, fn: (lock: SessionLock) => T | Promise<T>): Promise<T> {
  const lock = await acquired;
  try {
    const context = new Map(registry.context.getStore());
    context.set(key, holdOf(lock));
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

function entriesOf(family: unknown): LockEntry[] {
  const result: LockEntry[] = [];
  for (const entry of registry.entries.values()) if (entry.backend.family === family) result.push(entry);
  return result;
}

/** The holds of this process on the locks of one backend family. */
export function heldLocksOf(family: unknown): HeldLockInfo[] {
  const result: HeldLockInfo[] = [];
  for (const entry of entriesOf(family)) {
    for (const hold of entry.holds) {
      result.push({
        target: hold.options.target,
        lockPath: hold.options.lockPath,
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
 * releaseAll() of one backend family: every acquire pending when it starts rejects with
 * LockAbortedError, nothing is granted while it runs, and every hold that existed when it
 * was called is released. Resolves, once the backend has let go of them, to their number.
 */
export function releaseAllOf(family: unknown): Promise<number> {
  const entries = entriesOf(family);
  const holds: Hold[] = [];
  for (const entry of entries) {
    // Giving up a waiter would otherwise let the next one through, and then close it.
    entry.suspended = true;
    for (const hold of entry.holds) holds.push(hold);
  }
  const pending: Promise<void>[] = [];
  try {
    for (const entry of entries) {
      for (const waiter of [...entry.queue]) {
        entry.giveUp(waiter, new LockAbortedError(waiter.options.lockPath, waiter.options.target, 'releaseAll() was called'));
      }
    }
    for (const hold of holds) {
      hold.release();
      if (hold.releasing !== undefined) pending.push(hold.releasing);
    }
  } finally {
    for (const entry of entries) {
      entry.suspended = false;
      entry.pump();
    }
  }
  return pending.length === 0 ? Promise.resolve(holds.length) : Promise.all(pending).then(() => holds.length);
}

/**
 * Process-wide re-entry, for the session-write-lock adapter: a new view of this process's
 * exclusive hold of `key` (counted like a nested acquire inside withLock), or null when
 * this process holds none.
 */
export function joinHeldLock(key: string): SessionLock | null {
  const entry = registry.entries.get(key);
  for (const hold of entry?.holds ?? []) {
    if (hold.released || hold.shared) continue;
    hold.views++;
    return new entry!.backend.lockClass(hold as Hold);
  }
  return null;
}
