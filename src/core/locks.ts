import type { AsyncLocalStorage } from 'node:async_hooks';
import { LockAbortedError, LockDeadlockError, LockTimeoutError } from './errors';
import { type CallSite, formatCallSite, type Hold, MAX_TIMER_MS } from './hold';
import { type Attempt, entries, type LockFamily, LockEntry, Waiter } from './lock-entry';
import type { ResolvedLockOptions } from './options';
import { registry } from './registry';
import { holdOf, type SessionLock } from './session-lock';

export type { LockFamily };

/** The locks held by the enclosing withLock() calls of the current async context, by key. */
const context = registry.context as AsyncLocalStorage<ReadonlyMap<string, Hold>>;

function ignore(): void {}

// The operations of the public APIs, over any backend: the file API (src/file/api.ts)
// and the PostgreSQL one call these with their family (backend and lock class), the key
// of the lock and their resolved options.

/**
 * Inside withLock(p), a nested acquire of p re-enters the enclosing hold
 * (or refuses at once where waiting could only deadlock).
 */
function reenter<H>(family: LockFamily<H>, key: string, options: ResolvedLockOptions): SessionLock | null {
  const hold = context.getStore()?.get(key);
  if (hold === undefined || hold.released) return null;
  if (!options.reentrant) {
    throw new LockDeadlockError(options.name, options.target, 'this async context already holds it inside withLock() and reentrant is false');
  }
  if (hold.shared && !options.shared) {
    throw new LockDeadlockError(options.name, options.target, 'an exclusive lock was requested inside withLock() that holds it shared');
  }
  hold.views++;
  return new family.lockClass(hold);
}

/**
 * `opened` (see acquireLock) if `entry` may use it, else null. Another copy of this package
 * in the process shares the registry and drives its entries through its own addon, so only
 * an entry of this very backend may use a handle this backend opened: for any other, the
 * handle is closed here and the entry's own backend opens one.
 */
function handleFor<H>(family: LockFamily<H>, entry: LockEntry<H>, opened: H | null): H | null {
  if (opened === null || entry.backend === family.backend) return opened;
  family.backend.releaseHandle(opened);
  return null;
}

/** Closes a handle the request did not use, and forgets the entry if only this request made it. */
function giveBack<H>(family: LockFamily<H>, entry: LockEntry<H>, opened: H | null): void {
  if (opened !== null) family.backend.releaseHandle(opened);
  entry.forgetIfUnused();
}

function abortedAlready(options: ResolvedLockOptions): LockAbortedError {
  return new LockAbortedError(options.name, options.target, 'the signal was already aborted', (options.signal as AbortSignal).reason);
}

/**
 * acquire(): waits in this process's FIFO, then on the backend, within one budget.
 * `opened` is a handle the backend already opened for this request (the file backend
 * opens the lock file to learn its key): the first attempt uses it, or it is given back.
 */
export function acquireLock<H>(family: LockFamily<H>, key: string, options: ResolvedLockOptions, site: CallSite, opened: H | null = null): Promise<SessionLock> {
  return waitForLock(family, key, options, site, false, opened) as Promise<SessionLock>;
}

/**
 * tryAcquire(): one attempt that never queues behind this process's waiters. Sync for a
 * backend with trySync; otherwise one backend wait with no budget.
 */
export function tryLock<H>(family: LockFamily<H>, key: string, options: ResolvedLockOptions, site: CallSite): Promise<SessionLock | null> {
  if (family.backend.trySync !== undefined) {
    try {
      return Promise.resolve(tryLockSync(family, key, options, site));
    } catch (error) {
      return Promise.reject(error);
    }
  }
  return waitForLock(family, key, options, site, true, null);
}

/** tryAcquireSync(), for a backend with trySync; `opened` as for acquireLock(). */
export function tryLockSync<H>(family: LockFamily<H>, key: string, options: ResolvedLockOptions, site: CallSite, opened: H | null = null): SessionLock | null {
  const entry = LockEntry.for(family, key, options.name, options.target);
  opened = handleFor(family, entry, opened);
  let reentered: SessionLock | null;
  try {
    if (options.signal?.aborted) throw abortedAlready(options);
    reentered = reenter(family, key, options);
  } catch (error) {
    giveBack(family, entry, opened);
    throw error;
  }
  if (reentered !== null) {
    giveBack(family, entry, opened);
    return reentered;
  }
  const hold = entry.tryNow(options, site, opened);
  return hold === null ? null : new family.lockClass(hold as Hold);
}

function timedOutNow<H>(entry: LockEntry<H>, options: ResolvedLockOptions): Promise<never> {
  const holder = entry.holder(options);
  return holder instanceof Promise
    ? holder.then(
        (known) => Promise.reject(new LockTimeoutError(options.name, options.target, options.timeoutMs, known)),
        () => Promise.reject(new LockTimeoutError(options.name, options.target, options.timeoutMs, null)),
      )
    : Promise.reject(new LockTimeoutError(options.name, options.target, options.timeoutMs, holder));
}

function waitForLock<H>(family: LockFamily<H>, key: string, options: ResolvedLockOptions, site: CallSite, tryOnly: boolean, opened: H | null): Promise<SessionLock | null> {
  const { backend } = family;
  const entry = LockEntry.for(family, key, options.name, options.target);
  opened = handleFor(family, entry, opened);
  let reentered: SessionLock | null;
  try {
    reentered = reenter(family, key, options);
  } catch (error) {
    giveBack(family, entry, opened);
    return Promise.reject(error);
  }
  if (reentered !== null) {
    giveBack(family, entry, opened);
    return Promise.resolve(reentered);
  }
  const { signal } = options;
  if (signal?.aborted) {
    giveBack(family, entry, opened);
    return Promise.reject(abortedAlready(options));
  }
  const once = tryOnly || options.timeoutMs === 0;
  if (once && backend.trySync !== undefined) {
    // One attempt: never queue, never start a backend wait.
    const hold = entry.tryNow(options, site, opened);
    return hold !== null ? Promise.resolve(new family.lockClass(hold as Hold)) : timedOutNow(entry, options);
  }
  if (once && !entry.free(options.shared)) {
    // Held or awaited in this process: one attempt could only queue behind it.
    giveBack(family, entry, opened);
    return tryOnly ? Promise.resolve(null) : timedOutNow(entry, options);
  }
  let triedNow = false;
  if (!once && backend.trySync !== undefined && entry.free(options.shared)) {
    // Nobody in this process holds or awaits it: try before making a waiter, so that an
    // uncontended acquire costs no waiter, timer or deferred grant. Held elsewhere, the
    // handle goes on to the waiter.
    const attempt: Attempt<H> = { key, handle: opened, options };
    let hold: Hold<H> | null;
    try {
      hold = entry.attemptNow(attempt, site);
    } catch (error) {
      return Promise.reject(error);
    }
    if (hold !== null) return Promise.resolve(new family.lockClass(hold as Hold));
    opened = attempt.handle;
    triedNow = true;
  }
  return new Promise<SessionLock | null>((resolve, reject) => {
    const waiter = new Waiter<H>(key, options, site, resolve, reject, family.lockClass);
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
      const onAbort = (): void => entry.giveUp(waiter, new LockAbortedError(options.name, options.target, 'the signal was aborted', signal.reason));
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
    const held = new Map(context.getStore());
    held.set(key, holdOf(lock));
    return await context.run(held, () => fn(lock));
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

function entriesOf(family: LockFamily): LockEntry[] {
  const result: LockEntry[] = [];
  for (const entry of entries.values()) if (entry.family.group === family.group) result.push(entry);
  return result;
}

/** The holds of this process on the locks of one family (of every copy of this package that shares its group). */
export function heldLocksOf(family: LockFamily): HeldLockInfo[] {
  const result: HeldLockInfo[] = [];
  for (const entry of entriesOf(family)) {
    for (const hold of entry.holds) {
      result.push(heldLockInfo(entry, hold));
    }
  }
  return result;
}

function heldLockInfo(entry: LockEntry, hold: Hold): HeldLockInfo {
  return {
    target: hold.options.target,
    lockPath: hold.options.name,
    mode: hold.mode,
    owner: hold.options.owner,
    acquiredAt: hold.acquiredAt,
    heldForMs: hold.heldForMs,
    count: hold.views,
    waiters: entry.waiters,
    stack: formatCallSite(hold.site),
  };
}

/** This process's first live hold of the lock `key`, whatever API took it; null when it holds none. */
export function heldLockOf(key: string): HeldLockInfo | null {
  const entry = entries.get(key);
  if (entry === undefined) return null;
  for (const hold of entry.holds) if (!hold.released) return heldLockInfo(entry, hold);
  return null;
}

/**
 * releaseAll() of one backend family: every acquire pending when it starts rejects with
 * LockAbortedError, nothing is granted while it runs, and every hold that existed when it
 * was called is released. Resolves, once the backend has let go of them, to their number.
 */
export function releaseAllOf(family: LockFamily): Promise<number> {
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
        entry.giveUp(waiter, new LockAbortedError(waiter.options.name, waiter.options.target, 'releaseAll() was called'));
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
export function joinHeldLock(family: LockFamily, key: string): SessionLock | null {
  const entry = entries.get(key);
  for (const hold of entry?.holds ?? []) {
    if (hold.released || hold.shared) continue;
    hold.views++;
    return new family.lockClass(hold);
  }
  return null;
}
