import type { NativeHandle } from '../file/binding';
import { lockFailure } from '../file/failure';
import { type CallSite, Hold } from './hold';
import { channels, debug } from './observe';
import type { ResolvedOptions } from './options';
import { registry } from './registry';
import { deferMicrotask } from './defer';

/** How often an acquire reopens a lock file that was replaced under it before giving up. */
const MAX_REOPENS = 64;

/** An acquire that is queued or waiting for the kernel. */
export class Waiter {
  /** The descriptor this waiter tries and waits with; null until it reaches the head. */
  handle: NativeHandle | null = null;
  settled = false;
  readonly enqueuedAt = Date.now();
  private cleanups: (() => void)[] = [];

  constructor(
    readonly options: ResolvedOptions,
    readonly site: CallSite,
    /** Resolves the acquire; may return work to run once the acquirer has resumed. */
    private readonly onGrant: (hold: Hold) => (() => void) | void,
    private readonly onFail: (error: Error) => void,
  ) {}

  onSettle(cleanup: () => void): void {
    this.cleanups.push(cleanup);
  }

  grant(hold: Hold): void {
    this.settled = true;
    const later = this.onGrant(hold);
    // The holder record, the leak watch and clearing the timeout (and abort
    // listener) wait until the acquirer has resumed: on an event loop that just
    // woke up they cost more than the rest of the handoff. A hold released
    // before then writes no record.
    const cleanups = this.cleanups;
    this.cleanups = [];
    deferMicrotask(() => {
      hold.writeRecord();
      later?.();
      for (const cleanup of cleanups) cleanup();
    });
  }

  fail(error: Error): void {
    this.settle();
    this.onFail(error);
  }

  private settle(): void {
    this.settled = true;
    for (const cleanup of this.cleanups) cleanup();
    this.cleanups = [];
  }
}

/**
 * Everything this process does with one lock file: its holds, its FIFO of
 * waiters, and at most one kernel wait (one addon thread) at a time.
 */
export class LockEntry {
  readonly holds = new Set<Hold>();
  readonly queue: Waiter[] = [];
  /** The head waiter while its descriptor has a kernel wait in flight. */
  private kernelWaiter: Waiter | null = null;
  /** A given-up kernel wait whose thread has not reported back yet. */
  private draining: NativeHandle | null = null;

  private constructor(
    readonly lockPath: string,
    readonly target: string,
  ) {}

  static for(lockPath: string, target: string): LockEntry {
    let entry = registry.entries.get(lockPath);
    if (entry === undefined) {
      entry = new LockEntry(lockPath, target);
      registry.entries.set(lockPath, entry);
    }
    return entry;
  }

  /** Whether a new request of this mode may go straight to the kernel. */
  private free(shared: boolean): boolean {
    if (this.queue.length > 0 || this.kernelWaiter !== null || this.draining !== null) return false;
    return this.compatible(shared);
  }

  private compatible(shared: boolean): boolean {
    if (!shared) return this.holds.size === 0;
    for (const hold of this.holds) if (!hold.shared) return false;
    return true;
  }

  /** One attempt without queueing (tryAcquire): a Hold, or null when anyone holds it. */
  tryNow(options: ResolvedOptions, site: CallSite): Hold | null {
    if (!this.free(options.shared)) return null;
    let hold: Hold | null = null;
    const probe = new Waiter(options, site, () => undefined, () => undefined);
    try {
      if (this.attempt(probe)) hold = new Hold(this, this.takeHandle(probe), options, site, 0);
    } finally {
      this.closeHandle(probe);
      this.forgetIfUnused();
    }
    return hold;
  }

  enqueue(waiter: Waiter): void {
    this.queue.push(waiter);
    this.pump();
  }

  /** Grants what can be granted, in FIFO order, and starts the kernel wait for the head. */
  pump(): void {
    while (this.queue.length > 0 && this.kernelWaiter === null && this.draining === null) {
      const head = this.queue[0];
      if (!this.compatible(head.options.shared)) return;
      let granted: boolean;
      try {
        granted = this.attempt(head);
      } catch (error) {
        this.remove(head);
        this.closeHandle(head);
        head.fail(error as Error);
        continue;
      }
      if (granted) {
        this.remove(head);
        head.grant(new Hold(this, this.takeHandle(head), head.options, head.site, Date.now() - head.enqueuedAt, false));
        continue;
      }
      if (this.startKernelWait(head)) return;
    }
    this.forgetIfUnused();
  }

  /**
   * Removes a waiter that gave up (timeout, abort, releaseAll). If its
   * descriptor was in a kernel wait, the next waiter of the same mode adopts
   * that wait; otherwise the descriptor is closed, and the addon releases a
   * grant that arrives after this point at once.
   */
  giveUp(waiter: Waiter, error: Error): void {
    if (waiter.settled) return;
    this.remove(waiter);
    if (this.kernelWaiter === waiter) {
      this.kernelWaiter = null;
      const handle = this.takeHandle(waiter);
      const next = this.queue[0];
      if (next !== undefined && next.handle === null && next.options.shared === waiter.options.shared && this.compatible(next.options.shared)) {
        next.handle = handle;
        this.kernelWaiter = next;
      } else {
        this.draining = handle;
        registry.binding.close(handle);
      }
    } else {
      this.closeHandle(waiter);
    }
    waiter.fail(error);
    this.pump();
  }

  /** True when the waiter now holds the kernel lock through its descriptor, false when another descriptor holds it. */
  private attempt(waiter: Waiter): boolean {
    const { binding } = registry;
    const { lockPath } = this;
    for (let reopens = 0; ; reopens++) {
      if (waiter.handle === null) {
        const opened = binding.open(lockPath, waiter.options.fileMode, true);
        if (typeof opened === 'number') throw lockFailure(opened, 'open', lockPath);
        waiter.handle = opened;
      }
      const code = binding.tryLock(waiter.handle, waiter.options.shared);
      if (code === binding.WOULD_BLOCK) return false;
      if (code !== 0) throw lockFailure(code, 'flock', lockPath);
      if (this.stillNamed(waiter)) return true;
      if (reopens >= MAX_REOPENS) throw lockFailure(binding.REPLACED, 'open', lockPath);
    }
  }

  /**
   * After locking: does the path still name the locked file? If it was
   * unlinked or replaced, the lock protects nothing; close and reopen.
   */
  private stillNamed(waiter: Waiter): boolean {
    const code = registry.binding.sameFile(waiter.handle as NativeHandle, this.lockPath);
    if (code === 0) return true;
    this.closeHandle(waiter);
    if (code !== registry.binding.REPLACED) throw lockFailure(code, 'stat', this.lockPath);
    debug('%s was replaced while locking; reopening', this.lockPath);
    return false;
  }

  /** Returns true when a kernel wait is now in flight for `waiter`. */
  private startKernelWait(waiter: Waiter): boolean {
    const handle = waiter.handle as NativeHandle;
    const code = registry.binding.waitLock(handle, waiter.options.shared, this.lockPath, (result) => this.kernelWaitDone(handle, result));
    if (code !== 0) {
      this.remove(waiter);
      this.closeHandle(waiter);
      waiter.fail(lockFailure(code, 'flock', this.lockPath));
      return false;
    }
    this.kernelWaiter = waiter;
    if (channels.contended.hasSubscribers) {
      channels.contended.publish({ target: this.target, lockPath: this.lockPath, mode: waiter.options.shared ? 'shared' : 'exclusive', owner: waiter.options.owner });
    }
    debug('waiting for %s in the kernel', this.lockPath);
    return true;
  }

  private kernelWaitDone(handle: NativeHandle, code: number): void {
    const waiter = this.kernelWaiter;
    if (waiter !== null && waiter.handle === handle) {
      this.kernelWaiter = null;
      if (code === 0) {
        this.remove(waiter);
        waiter.grant(new Hold(this, this.takeHandle(waiter), waiter.options, waiter.site, Date.now() - waiter.enqueuedAt, false));
      } else {
        // Closing lets go of a grant on a replaced file; the waiter stays at the head and reopens.
        this.closeHandle(waiter);
        if (code === registry.binding.REPLACED) debug('%s was replaced while waiting; reopening', this.lockPath);
        else {
          this.remove(waiter);
          waiter.fail(lockFailure(code, 'flock', this.lockPath));
        }
      }
    } else if (this.draining === handle) {
      this.draining = null;
    }
    this.pump();
  }

  private remove(waiter: Waiter): void {
    if (this.queue[0] === waiter) {
      this.queue.shift();
      return;
    }
    const index = this.queue.indexOf(waiter);
    if (index >= 0) this.queue.splice(index, 1);
  }

  private takeHandle(waiter: Waiter): NativeHandle {
    const handle = waiter.handle as NativeHandle;
    waiter.handle = null;
    return handle;
  }

  private closeHandle(waiter: Waiter): void {
    if (waiter.handle !== null) registry.binding.close(waiter.handle);
    waiter.handle = null;
  }

  private forgetIfUnused(): void {
    if (this.holds.size === 0 && this.queue.length === 0 && this.kernelWaiter === null && this.draining === null) {
      if (registry.entries.get(this.lockPath) === this) registry.entries.delete(this.lockPath);
    }
  }

  /** Diagnostics: how many acquires of this process are queued on this lock. */
  get waiters(): number {
    return this.queue.length;
  }
}
