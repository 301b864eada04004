import { setImmediate } from 'node:timers';
import { BUSY, GRANTED, type LockBackend, type LockRequest, RETRY, type WaitOutcome, type WaitReport } from './backend';
import { type HolderAnswer, LockTimeoutError } from './errors';
import { type CallSite, Hold, type HoldEntry } from './hold';
import { channels, debug } from './observe';
import type { ResolvedLockOptions } from './options';
import { registry } from './registry';
import { type LockClass, type SessionLock, watchForLeak } from './session-lock';

/** The backend of an entry, as the core drives it (every backend's options extend the core's). */
export type CoreBackend<H> = LockBackend<H, ResolvedLockOptions>;

/**
 * What one public API brings to the core with each call: its backend, its lock class, and
 * the group its entries belong to for heldLocks()/releaseAll(). The group is equal across
 * copies of this package that share the registry ('file'), or one PostgreSQL lock set.
 */
export interface LockFamily<H = unknown> {
  readonly group: unknown;
  readonly backend: CoreBackend<H>;
  readonly lockClass: LockClass;
}

/** The registry's entries, as this module fills them. */
export const entries = registry.entries as Map<string, LockEntry>;

/**
 * Entries found unused, dropped from the registry on the next turn if still unused then:
 * dropping one at once would cost a lock that is taken again and again (one session
 * file, locked per append) a new entry, and two rehashes of the registry, per acquire.
 */
let unusedEntries: LockEntry[] = [];

function forgetUnusedEntries(): void {
  const entries = unusedEntries;
  unusedEntries = [];
  for (const entry of entries) entry.forgetNowIfUnused();
}

/**
 * Grants whose bookkeeping waits until the acquirer's continuation, and every microtask it
 * queued, has run: the acquire event, the long-hold watch, the backend's post-grant work,
 * the leak watch, and clearing the waiter's timer and abort listener. None of it is needed
 * before the acquirer's code runs (a settled waiter's timer or abort finds it settled and
 * does nothing), and on an event loop that just woke up it costs more than the rest of the
 * handoff. Flat as (waiter, hold, lock) triples. It runs at the backend's afterGrant() (see
 * LockBackend.callsAfterGrant), else in the check phase of this turn of the event loop.
 */
let grantsToFinish: unknown[] = [];
let finishScheduled = false;

function finishGrantsThisTurn(): void {
  finishScheduled = false;
  finishGrants();
}

function finishGrants(): void {
  const grants = grantsToFinish;
  if (grants.length === 0) return;
  grantsToFinish = [];
  for (let i = 0; i < grants.length; i += 3) {
    (grants[i + 1] as Hold).granted();
    watchForLeak(grants[i + 2] as SessionLock);
    (grants[i] as Waiter).settle();
  }
}

/** A request as the core hands it to its backend. */
export type Attempt<H> = LockRequest<H, ResolvedLockOptions>;

/** An acquire that is queued or waiting on its backend. */
export class Waiter<H = unknown> implements Attempt<H> {
  /** The backend's handle this waiter tries and waits with; null until the backend sets it. */
  handle: H | null = null;
  grantedAt?: number = undefined;
  grantData?: unknown = undefined;
  settled = false;
  /** One attempt only (tryAcquire on a backend without trySync): BUSY resolves null instead of failing. */
  tryOnly = false;
  /** Its request found the lock held elsewhere an instant ago (attemptNow): its first turn at the head waits at once. */
  triedNow = false;
  readonly enqueuedAt = Date.now();
  /** While a backend wait runs for this waiter: the hold and lock its grant will hand over (see prepare()). */
  preparedHold: Hold<H> | null = null;
  preparedLock: SessionLock | null = null;
  private cleanups: (() => void)[] = [];

  constructor(
    readonly key: string,
    readonly options: ResolvedLockOptions,
    readonly site: CallSite,
    /** Resolves the acquire (null: a tryOnly attempt found it held). */
    private readonly onGrant: (lock: SessionLock | null) => void,
    private readonly onFail: (error: Error) => void,
    /** The class of the lock this waiter's acquirer gets: its own API's. */
    private readonly lockClass: LockClass,
  ) {}

  onSettle(cleanup: () => void): void {
    this.cleanups.push(cleanup);
  }

  /**
   * A view of `hold` for this waiter's acquirer, made before the grant (see
   * LockEntry.prepare()). Always of this waiter's own class: another copy of this package
   * that shares the registry may be the one that grants it.
   */
  lockFor(hold: Hold<H>): SessionLock {
    return new this.lockClass(hold as Hold, false);
  }

  /**
   * Hands the acquirer a view of the live `hold`: `prepared` (from lockFor()), or a new one.
   * `backendCallsAfter`: the backend calls afterGrant() once the acquirer has resumed.
   */
  grant(hold: Hold<H>, prepared?: SessionLock, backendCallsAfter = false): void {
    this.settled = true;
    let lock: SessionLock;
    if (prepared === undefined) lock = this.lockFor(hold);
    else {
      lock = prepared;
      // Made when the wait started (LockEntry.prepare()), so it takes the grant's time now.
      (lock as { acquiredAt: number }).acquiredAt = hold.acquiredAt;
    }
    this.onGrant(lock);
    grantsToFinish.push(this, hold, lock);
    if (backendCallsAfter || finishScheduled) return;
    finishScheduled = true;
    // Ref'd: the waiter's timer keeps the loop alive until then anyway.
    setImmediate(finishGrantsThisTurn);
  }

  /** A tryOnly attempt that found the lock held. */
  grantNothing(): void {
    this.settle();
    this.onGrant(null);
  }

  fail(error: Error): void {
    this.settle();
    this.onFail(error);
  }

  /** Settles now and fails once `error` is known (a backend's holder description may be async). */
  failLater(error: Promise<Error>): void {
    this.settle();
    void error.then(this.onFail);
  }

  /** @internal Runs the cleanups (timer, abort listener) once. */
  settle(): void {
    this.settled = true;
    for (const cleanup of this.cleanups) cleanup();
    this.cleanups = [];
  }
}

/**
 * Everything this process does with one lock: its holds, its FIFO of waiters, and at
 * most one backend wait (one addon thread, one waiting connection) at a time.
 */
export class LockEntry<H = unknown> implements HoldEntry<H>, WaitReport<H, ResolvedLockOptions> {
  readonly holds = new Set<Hold<H>>();
  readonly queue: Waiter<H>[] = [];
  /** The head waiter while its handle has a backend wait in flight. */
  private backendWaiter: Waiter<H> | null = null;
  /** A given-up backend wait that has not reported back yet. */
  private draining: H | null = null;
  /** While releaseAll() runs: nothing is granted and no wait starts. */
  suspended = false;
  /** In unusedEntries, to be forgotten on the next turn (see forgetIfUnused()). */
  private forgetQueued = false;

  readonly backend: CoreBackend<H>;

  private constructor(
    /** The API whose request made this entry: its backend drives it. */
    readonly family: LockFamily<H>,
    /** Identity of the lock in the registry (the backend chooses it). */
    readonly key: string,
    /** The lock as messages name it. */
    readonly name: string,
    readonly target: string,
  ) {
    this.backend = family.backend;
  }

  static for<H>(family: LockFamily<H>, key: string, name: string, target: string): LockEntry<H> {
    let entry = entries.get(key) as LockEntry<H> | undefined;
    if (entry === undefined || (entry.lingering() && (entry.name !== name || entry.target !== target || entry.backend !== family.backend))) {
      // An unused entry waiting to be forgotten stands for nothing: it may even be of a
      // file since deleted, whose inode (and so key) a new file reuses. It is replaced
      // unless it names this very request's lock (then it is as good as a new one).
      entry = new LockEntry(family, key, name, target);
      entries.set(key, entry as LockEntry);
    }
    return entry;
  }

  /**
   * Whether a new request of this mode may go straight to the backend. A given-up wait
   * that is still draining does not count: it holds nothing this process wants, and its
   * late grant is released when it lands (a shared request is granted through a new
   * handle meanwhile, if the backend says so).
   */
  free(shared: boolean): boolean {
    if (this.queue.length > 0 || this.backendWaiter !== null || this.suspended) return false;
    return this.compatible(shared);
  }

  private compatible(shared: boolean): boolean {
    if (!shared) return this.holds.size === 0;
    for (const hold of this.holds) if (!hold.shared) return false;
    return true;
  }

  /**
   * One synchronous attempt without queueing (tryAcquireSync): a Hold, or null when anyone
   * holds it. `opened` (see acquireLock) is used for the attempt or given back.
   */
  tryNow(options: ResolvedLockOptions, site: CallSite, opened: H | null = null): Hold<H> | null {
    if (!this.free(options.shared)) {
      if (opened !== null) this.backend.releaseHandle(opened);
      return null;
    }
    const attempt: Attempt<H> = { key: this.key, handle: opened, options };
    try {
      return this.attemptNow(attempt, site);
    } finally {
      this.closeHandle(attempt);
      this.forgetIfUnused();
    }
  }

  /**
   * The first attempt of a request that may go straight to the backend (free(), and the
   * backend has trySync): a live Hold when the backend grants it now, with no waiter made;
   * otherwise null, and `attempt.handle` stays open for a wait. Throws the backend's error
   * with the handle closed.
   */
  attemptNow(attempt: Attempt<H>, site: CallSite): Hold<H> | null {
    let granted: boolean;
    try {
      granted = (this.backend.trySync as NonNullable<CoreBackend<H>['trySync']>)(attempt);
    } catch (error) {
      // The backend closes the handle before it throws; making sure costs nothing.
      this.closeHandle(attempt);
      this.forgetIfUnused();
      throw error;
    }
    if (!granted) return null;
    const hold = new Hold(this, this.takeHandle(attempt), attempt.options, site).begin(null, attempt.grantData, attempt.grantedAt);
    hold.granted();
    return hold;
  }

  /**
   * Queues `waiter`. A waiter that may go straight to the backend tries with `opened`
   * (see acquireLock); one that queues behind others gives it back, to open its own when
   * it reaches the head, rather than keep a descriptor open while it waits its turn.
   */
  enqueue(waiter: Waiter<H>, opened: H | null = null): void {
    if (opened !== null) {
      if (this.free(waiter.options.shared)) waiter.handle = opened;
      else this.backend.releaseHandle(opened);
    }
    if (waiter.handle === null) waiter.triedNow = false;
    this.queue.push(waiter);
    this.pump();
  }

  /** Grants what can be granted, in FIFO order, and starts the backend wait for the head. */
  pump(): void {
    const { backend } = this;
    if (this.suspended) return;
    while (this.queue.length > 0 && this.backendWaiter === null) {
      const head = this.queue[0];
      if (!this.compatible(head.options.shared)) return;
      if (backend.trySync !== undefined && !head.triedNow) {
        let granted: boolean;
        try {
          granted = backend.trySync(head);
        } catch (error) {
          this.remove(head);
          this.closeHandle(head);
          head.fail(error as Error);
          continue;
        }
        if (granted) {
          this.remove(head);
          head.grant(new Hold(this, this.takeHandle(head), head.options, head.site).begin(head.enqueuedAt, head.grantData, head.grantedAt));
          continue;
        }
      }
      // Its next turn tries again: the wait below, or the pump after the drained wait reports.
      head.triedNow = false;
      // One backend wait at a time per lock: the next starts once the drained one reports.
      if (this.draining !== null) return;
      if (this.startWait(head)) return;
    }
    this.forgetIfUnused();
  }

  /**
   * Removes a waiter that gave up (abort, releaseAll: `error`; timeout: no error, the
   * LockTimeoutError is built here). If its handle was in a backend wait, the next
   * waiter of the same mode adopts that wait where the backend allows; otherwise the
   * wait is cancelled, and a grant that arrives after this point is released at once.
   */
  giveUp(waiter: Waiter<H>, error?: Error): void {
    if (waiter.settled) return;
    this.remove(waiter);
    if (this.backendWaiter === waiter) {
      this.backendWaiter = null;
      const handle = this.takeHandle(waiter);
      const next = this.queue[0];
      if (
        this.backend.adoptableWaits &&
        next !== undefined &&
        next.handle === null &&
        next.options.shared === waiter.options.shared &&
        this.compatible(next.options.shared)
      ) {
        next.handle = handle;
        this.backendWaiter = next;
        this.prepare(next);
      } else {
        this.draining = handle;
        this.backend.cancelWait(handle);
      }
    } else {
      this.closeHandle(waiter);
    }
    if (error === undefined) this.failWithTimeout(waiter);
    else waiter.fail(error);
    this.pump();
  }

  /** Who holds this lock: this process's own hold, or else what the backend can tell. */
  holder(options: ResolvedLockOptions): HolderAnswer | Promise<HolderAnswer> {
    for (const hold of this.holds) return hold.describe();
    return this.backend.describeHolder(this.key, options);
  }

  private failWithTimeout(waiter: Waiter<H>): void {
    const { name, target, timeoutMs } = waiter.options;
    const holder = this.holder(waiter.options);
    if (!(holder instanceof Promise)) {
      waiter.fail(new LockTimeoutError(name, target, timeoutMs, holder));
      return;
    }
    waiter.failLater(
      holder.then(
        (known) => new LockTimeoutError(name, target, timeoutMs, known),
        () => new LockTimeoutError(name, target, timeoutMs, null),
      ),
    );
  }

  /** Returns true when a backend wait is now in flight for `waiter`. */
  private startWait(waiter: Waiter<H>): boolean {
    const { options } = waiter;
    // A tryOnly attempt never waits, whatever its timeoutMs (the backend's contract: 0 = one try).
    const remainingMs = waiter.tryOnly ? 0 : Math.max(0, options.timeoutMs - (Date.now() - waiter.enqueuedAt));
    try {
      this.backend.startWait(waiter, remainingMs, this);
    } catch (error) {
      this.remove(waiter);
      waiter.handle = null;
      waiter.fail(error as Error);
      return false;
    }
    this.backendWaiter = waiter;
    this.prepare(waiter);
    if (channels.contended.hasSubscribers) {
      channels.contended.publish({ target: this.target, lockPath: this.name, mode: options.shared ? 'shared' : 'exclusive', owner: options.owner });
    }
    debug('waiting for %s', this.name);
    return true;
  }

  /**
   * Makes the hold and lock of a waiter whose backend wait has started, so that its grant
   * (on an event loop that just woke up) only stamps and registers them and resolves.
   */
  private prepare(waiter: Waiter<H>): void {
    const hold = new Hold(this, waiter.handle as H, waiter.options, waiter.site);
    waiter.preparedHold = hold;
    waiter.preparedLock = waiter.lockFor(hold);
  }

  requestOf(handle: H): Waiter<H> | null {
    const waiter = this.backendWaiter;
    return waiter !== null && waiter.handle === handle ? waiter : null;
  }

  /** The acquirer of the grant reported last has resumed (see LockBackend.callsAfterGrant). */
  afterGrant(): void {
    finishGrants();
  }

  /** Where a backend reports the end of a wait that startWait() began (see backend.ts). */
  waitSettled(handle: H, outcome: WaitOutcome, grantData?: unknown, grantedAt?: number): void {
    const waiter = this.backendWaiter;
    if (waiter !== null && waiter.handle === handle) {
      this.backendWaiter = null;
      const { preparedHold, preparedLock } = waiter;
      waiter.preparedHold = waiter.preparedLock = null;
      if (outcome === GRANTED) {
        this.remove(waiter);
        // Every path that makes a waiter the backend waiter prepares it.
        const hold = (preparedHold as Hold<H>).begin(waiter.enqueuedAt, grantData, grantedAt);
        waiter.handle = null;
        waiter.grant(hold, preparedLock ?? undefined, this.backend.callsAfterGrant);
        // The common handoff: nobody else waits here, and the entry is in use. Every step
        // saved counts on an event loop that just woke up.
        if (this.queue.length === 0) return;
      } else if (outcome === RETRY) {
        // The backend let go of a grant that protects nothing; the waiter stays at the head and starts over.
        waiter.handle = null;
        debug('%s was replaced while waiting; reopening', this.name);
      } else {
        this.remove(waiter);
        waiter.handle = null;
        if (outcome === BUSY) {
          if (waiter.tryOnly) waiter.grantNothing();
          else this.failWithTimeout(waiter);
        } else waiter.fail(outcome);
      }
    } else if (this.draining === handle) {
      this.draining = null;
      if (outcome === GRANTED) this.backend.releaseHandle(handle);
    } else if (outcome === GRANTED) {
      this.backend.releaseHandle(handle);
    }
    this.pump();
  }

  remove(waiter: Waiter<H>): void {
    if (this.queue[0] === waiter) {
      this.queue.shift();
      return;
    }
    const index = this.queue.indexOf(waiter);
    if (index >= 0) this.queue.splice(index, 1);
  }

  private takeHandle(attempt: Attempt<H>): H {
    const handle = attempt.handle as H;
    attempt.handle = null;
    return handle;
  }

  private closeHandle(attempt: Attempt<H>): void {
    if (attempt.handle !== null) this.backend.releaseHandle(attempt.handle);
    attempt.handle = null;
  }

  /**
   * Drops this entry from the registry on the next turn, if nothing holds, waits or drains
   * on it then. Until then it stands for the lock as a new entry would: free, and empty.
   */
  forgetIfUnused(): void {
    if (this.forgetQueued || !this.unused()) return;
    this.forgetQueued = true;
    // Unref'd: forgetting is only memory, and must not keep a process alive.
    if (unusedEntries.push(this) === 1) setImmediate(forgetUnusedEntries).unref();
  }

  /** @internal For forgetUnusedEntries(). */
  forgetNowIfUnused(): void {
    this.forgetQueued = false;
    if (this.unused() && entries.get(this.key) === this) entries.delete(this.key);
  }

  /** Unused, and waiting for forgetUnusedEntries(). */
  lingering(): boolean {
    return this.forgetQueued && this.unused();
  }

  private unused(): boolean {
    return this.holds.size === 0 && this.queue.length === 0 && this.backendWaiter === null && this.draining === null;
  }

  /** Diagnostics: how many acquires of this process are queued on this lock. */
  get waiters(): number {
    return this.queue.length;
  }
}
