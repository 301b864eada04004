import type { GrantedLock, LockBackend } from './backend';
import type { HolderInfo } from './errors';
import { hostName } from './host';
import { channels, debug } from './observe';
import type { ResolvedLockOptions } from './options';

/** setTimeout's ceiling (~24.8 days). */
export const MAX_TIMER_MS = 0x7fffffff;

/** What a hold needs of the core's entry for its lock (LockEntry is one). */
export interface HoldEntry<H> {
  readonly backend: LockBackend<H, ResolvedLockOptions>;
  /** The lock as messages name it. */
  readonly name: string;
  readonly target: string;
  /** The live holds of this process on the lock. */
  readonly holds: Set<Hold<H>>;
  /** Acquires of this process queued on the lock. */
  readonly waiters: number;
  /** Grants what may now be granted, after a hold let go. */
  pump(): void;
}

/** Where an acquire was called from; V8 formats the stack only if someone reads it. */
export interface CallSite {
  stack?: string;
}

/**
 * Frames kept of each call site: enough to name the caller and a few callers above it,
 * while every frame is an object each hold keeps alive (and the collector traces) until
 * it is released. A lower Error.stackTraceLimit set by the application is respected.
 */
const SITE_FRAMES = 6;

export function captureCallSite(caller: (...args: never[]) => unknown): CallSite {
  const site: CallSite = {};
  const limit = Error.stackTraceLimit;
  if (!(limit <= SITE_FRAMES)) Error.stackTraceLimit = SITE_FRAMES;
  Error.captureStackTrace(site, caller);
  Error.stackTraceLimit = limit;
  return site;
}

export function formatCallSite(site: CallSite): string {
  return (site.stack ?? '').split('\n').slice(1).join('\n');
}

/**
 * One lock held through one backend handle. SessionLock objects are views of it
 * (several when re-entered); the handle is let go when the last view lets go, when
 * releaseAll() runs, when a leaked view is collected, or when the backend reports
 * the lock lost.
 */
export class Hold<H = unknown> implements GrantedLock<H, ResolvedLockOptions> {
  /** Epoch ms of the grant (set by begin()). */
  acquiredAt = 0;
  /** Live SessionLock views (re-entrancy count). */
  views = 1;
  released = false;
  /** Settles when the backend has let go (a PostgreSQL unlock); undefined when it did at once. */
  releasing: Promise<void> | undefined = undefined;
  private lost: Error | null = null;
  private controller: AbortController | null = null;
  private longHoldTimer: NodeJS.Timeout | undefined;
  /** How long the acquire waited, for the acquire event. */
  private waitedMs = 0;
  /** The acquire event is out (and the long-hold watch started, unless released by then). */
  private announced = false;

  /** The backend's data for this grant (its grantData): whether the file backend wrote its record, a PostgreSQL fencing token. */
  data: unknown = undefined;

  /**
   * A hold that is not live until begin(): a waiter's is made when its backend wait starts,
   * so that the grant, on an event loop that just woke up, only stamps and registers it.
   */
  constructor(
    readonly entry: HoldEntry<H>,
    readonly handle: H,
    readonly options: ResolvedLockOptions,
    readonly site: CallSite,
  ) {}

  /**
   * Makes the hold live at its grant: only what the acquirer may look at once it resumes.
   * Every step on a just-woken event loop touches cold memory, so the rest waits for
   * announce(). `waitingSince`: epoch ms the acquire started waiting, or null for one
   * that never waited; `grantedAt`: epoch ms of the grant where the backend knows it. A
   * backend's clock may read a little behind ours (a coarse one): a grant is never
   * stamped before its request.
   */
  begin(waitingSince: number | null, data?: unknown, grantedAt?: number): this {
    const now = grantedAt ?? Date.now();
    this.acquiredAt = waitingSince === null ? now : Math.max(now, waitingSince);
    this.waitedMs = waitingSince === null ? 0 : this.acquiredAt - waitingSince;
    if (data !== undefined) this.data = data;
    this.entry.holds.add(this);
    return this;
  }

  /**
   * The acquire event, the debug line and the long-hold watch: once, when the acquirer
   * has resumed (granted()), or at the release if that comes first, so that the acquire
   * event always precedes the release event.
   */
  private announce(): void {
    if (this.announced) return;
    this.announced = true;
    const { options } = this;
    if (!this.released && options.maxHoldMs !== Infinity) this.watchLongHold(options.maxHoldMs);
    if (channels.acquire.hasSubscribers) {
      channels.acquire.publish({ target: options.target, lockPath: options.name, mode: this.mode, owner: options.owner, waitedMs: this.waitedMs });
    }
    if (debug.enabled) debug('acquired %s (%s) after %dms', options.name, this.mode, this.waitedMs);
  }

  get shared(): boolean {
    return this.options.shared;
  }

  get mode(): 'shared' | 'exclusive' {
    return this.options.shared ? 'shared' : 'exclusive';
  }

  get heldForMs(): number {
    return Date.now() - this.acquiredAt;
  }

  /** Aborts with the backend's LockLostError if the lock may be lost; made on first use. */
  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.lost !== null) this.controller.abort(this.lost);
    }
    return this.controller.signal;
  }

  /** Once the acquirer has resumed: announce(), then the backend's diagnostics (skipped if released by then). */
  granted(): void {
    this.announce();
    if (!this.released) this.entry.backend.granted?.(this);
  }

  describe(): HolderInfo {
    return {
      pid: process.pid,
      hostname: hostName(),
      owner: this.options.owner,
      process: process.title,
      mode: this.mode,
      acquiredAt: this.acquiredAt,
      heldForMs: this.heldForMs,
      sameProcess: true,
      acquiredStack: formatCallSite(this.site),
    };
  }

  /** Drops one view; the last one releases the lock. */
  unref(): void {
    if (--this.views <= 0) this.release();
  }

  /** Lets the backend go of the lock (and its handle). Idempotent. */
  release(): boolean {
    if (this.released) return false;
    this.released = true;
    this.announce();
    clearTimeout(this.longHoldTimer);
    const { entry } = this;
    const pending = entry.backend.release(this, entry.waiters === 0 && entry.holds.size <= 1);
    if (pending !== undefined) this.releasing = pending;
    entry.holds.delete(this);
    if (channels.release.hasSubscribers) {
      channels.release.publish({ target: this.options.target, lockPath: this.options.name, mode: this.mode, owner: this.options.owner, heldMs: this.heldForMs });
    }
    if (debug.enabled) debug('released %s after %dms', this.options.name, this.heldForMs);
    entry.pump();
    return true;
  }

  /**
   * For a backend: the lock may be gone while this process still holds the hold (a
   * PostgreSQL connection error). Releases the hold and aborts `signal` with `error`.
   */
  lose(error: Error): void {
    if (this.released) return;
    this.lost = error;
    debug('lost %s: %s', this.options.name, error.message);
    this.release();
    this.controller?.abort(error);
  }

  private watchLongHold(delayMs: number): void {
    this.longHoldTimer = setTimeout(() => this.reportLongHold(), Math.min(delayMs, MAX_TIMER_MS));
    this.longHoldTimer.unref();
  }

  private reportLongHold(): void {
    if (this.released) return;
    const heldForMs = this.heldForMs;
    // A timer may fire a millisecond early against Date.now() (and a long limit takes
    // several timers): the report never comes before the limit.
    if (heldForMs < this.options.maxHoldMs) {
      this.watchLongHold(this.options.maxHoldMs - heldForMs);
      return;
    }
    const report = {
      target: this.options.target,
      lockPath: this.options.name,
      mode: this.mode,
      owner: this.options.owner,
      heldForMs,
      maxHoldMs: this.options.maxHoldMs,
      acquiredAt: formatCallSite(this.site),
    };
    channels.longHold.publish(report);
    process.emitWarning(
      `session-flock: ${this.options.name} has been held for ${report.heldForMs}ms, over maxHoldMs ${report.maxHoldMs}; ` +
        `it is not taken away. Acquired at:\n${report.acquiredAt}`,
      { type: 'SessionFlockLongHoldWarning', code: 'SESSION_FLOCK_LONG_HOLD' },
    );
  }
}
