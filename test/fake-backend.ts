// A backend that keeps its locks in memory, for driving the core on its own: the test
// plays the lock server and decides when a wait ends. It is also the worked example of
// docs/development.md, "Writing a backend".
import { GRANTED, type GrantedLock, type LockBackend, type LockRequest, type WaitOutcome, type WaitReport } from '../src/core/backend';
import type { HolderInfo } from '../src/core/errors';
import type { ResolvedLockOptions } from '../src/core/options';

/** One request's hold on, or wait for, one key. */
export interface FakeHandle {
  readonly id: number;
  readonly key: string;
  readonly shared: boolean;
  closed: boolean;
}

/** A wait startWait() began, until the test settles it. */
export interface FakeWait {
  readonly handle: FakeHandle;
  readonly remainingMs: number;
  readonly report: WaitReport<FakeHandle>;
  /** cancelWait() was called: the core has given up on it (it may still be granted). */
  cancelled: boolean;
}

/** What release() was told. */
export interface FakeRelease {
  readonly id: number;
  readonly data: unknown;
  readonly lastInProcess: boolean;
}

export class FakeBackend implements LockBackend<FakeHandle, ResolvedLockOptions> {
  readonly adoptableWaits: boolean;
  readonly callsAfterGrant: boolean;
  trySync?: (request: LockRequest<FakeHandle, ResolvedLockOptions>) => boolean;
  /** Waits in flight, oldest first. */
  readonly waits: FakeWait[] = [];
  readonly releases: FakeRelease[] = [];
  /** Handles closed by releaseHandle() (late grants, attempts that lost). */
  readonly discarded: FakeHandle[] = [];
  /** The most waits that were ever in flight at once. */
  mostWaits = 0;
  /** The holders of each key, this process's and the other processes' (holdElsewhere). */
  private readonly holders = new Map<string, FakeHandle[]>();
  private lastId = 0;

  /** With callsAfterGrant: the reports of grants whose afterGrant() the test has not called yet (resumed()). */
  private readonly grantsToResume: WaitReport<FakeHandle>[] = [];

  constructor({ adoptableWaits = true, trySync = true, callsAfterGrant = false } = {}) {
    this.adoptableWaits = adoptableWaits;
    this.callsAfterGrant = callsAfterGrant;
    // A backend whose every attempt is a round trip has no trySync (PostgreSQL).
    if (trySync) this.trySync = (request) => this.tryNow(request);
  }

  private tryNow(request: LockRequest<FakeHandle, ResolvedLockOptions>): boolean {
    const handle = this.handleOf(request);
    if (!this.free(handle.key, handle.shared)) return false;
    this.take(handle);
    request.grantedAt = Date.now();
    request.grantData = `grant ${handle.id}`;
    return true;
  }

  startWait(request: LockRequest<FakeHandle, ResolvedLockOptions>, remainingMs: number, report: WaitReport<FakeHandle>): void {
    const handle = this.handleOf(request);
    this.waits.push({ handle, remainingMs, report, cancelled: false });
    this.mostWaits = Math.max(this.mostWaits, this.waits.length);
  }

  cancelWait(handle: FakeHandle): void {
    // Best effort, as a real server's: the wait stays until the test settles it.
    const wait = this.waits.find((w) => w.handle === handle);
    if (wait !== undefined) wait.cancelled = true;
  }

  release(lock: GrantedLock<FakeHandle, ResolvedLockOptions>, lastInProcess: boolean): void {
    this.drop(lock.handle);
    this.releases.push({ id: lock.handle.id, data: lock.data, lastInProcess });
  }

  releaseHandle(handle: FakeHandle): void {
    this.drop(handle);
    this.discarded.push(handle);
  }

  describeHolder(key: string): HolderInfo | null {
    const [holder] = this.holders.get(key) ?? [];
    if (holder === undefined) return null;
    return { pid: 4242, hostname: 'elsewhere', owner: `holder ${holder.id}`, process: null, mode: holder.shared ? 'shared' : 'exclusive', acquiredAt: null, heldForMs: null, sameProcess: false };
  }

  // What the test does as the lock server.

  /** Another process takes `key`. */
  holdElsewhere(key: string, shared = false): FakeHandle {
    const handle = { id: ++this.lastId, key, shared, closed: false };
    this.take(handle);
    return handle;
  }

  /** Another process lets go of what holdElsewhere() took. */
  letGo(handle: FakeHandle): void {
    this.drop(handle);
  }

  /** Ends the oldest wait (or `wait`) with `outcome`; GRANTED takes the lock for it. */
  settle(outcome: WaitOutcome, wait: FakeWait | undefined = this.waits[0]): void {
    if (wait === undefined) throw new Error('no wait in flight');
    this.waits.splice(this.waits.indexOf(wait), 1);
    if (outcome === GRANTED) {
      this.take(wait.handle);
      wait.report.waitSettled(wait.handle, GRANTED, `grant ${wait.handle.id}`, Date.now());
      if (this.callsAfterGrant) this.grantsToResume.push(wait.report);
    } else {
      // A wait that ends without a grant closes its handle (the contract).
      wait.handle.closed = true;
      wait.report.waitSettled(wait.handle, outcome);
    }
  }

  /** With callsAfterGrant: says, as the file backend's addon does, that the acquirers of the grants so far have resumed. */
  resumed(): void {
    for (const report of this.grantsToResume.splice(0)) report.afterGrant();
  }

  /** Whether anyone, here or elsewhere, holds `key`. */
  held(key: string): boolean {
    return (this.holders.get(key)?.length ?? 0) > 0;
  }

  private handleOf(request: LockRequest<FakeHandle, ResolvedLockOptions>): FakeHandle {
    request.handle ??= { id: ++this.lastId, key: request.key, shared: request.options.shared, closed: false };
    return request.handle;
  }

  private free(key: string, shared: boolean): boolean {
    const holders = this.holders.get(key) ?? [];
    return holders.every((h) => shared && h.shared);
  }

  private take(handle: FakeHandle): void {
    if (!this.free(handle.key, handle.shared)) throw new Error(`fake: ${handle.id} granted over a conflicting holder`);
    this.holders.set(handle.key, [...(this.holders.get(handle.key) ?? []), handle]);
  }

  private drop(handle: FakeHandle): void {
    if (handle.closed) throw new Error(`fake: handle ${handle.id} let go twice`);
    handle.closed = true;
    this.holders.set(handle.key, (this.holders.get(handle.key) ?? []).filter((h) => h !== handle));
  }
}
