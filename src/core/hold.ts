import type { NativeHandle } from '../file/binding';
import type { LockEntry } from './lock-entry';
import { channels, debug } from './observe';
import type { ResolvedOptions } from './options';
import { makeRecord, newNonce, recordPathFor, removeRecord, writeRecord } from '../file/record';
import { registry } from './registry';

/** Where an acquire was called from; V8 formats the stack only if someone reads it. */
export interface CallSite {
  stack?: string;
}

export function captureCallSite(caller: (...args: never[]) => unknown): CallSite {
  const site: CallSite = {};
  Error.captureStackTrace(site, caller);
  return site;
}

export function formatCallSite(site: CallSite): string {
  return (site.stack ?? '').split('\n').slice(1).join('\n');
}

/**
 * One kernel lock held through one descriptor. SessionLock objects are views
 * of it (several when re-entered); the descriptor is closed when the last view
 * lets go, when releaseAll() runs, or when a leaked view is collected.
 */
export class Hold {
  readonly acquiredAt = Date.now();
  /** Identifies this hold's record; only made when there is one. */
  readonly nonce: string | null;
  /** Live SessionLock views (re-entrancy count). */
  views = 1;
  released = false;
  private readonly longHoldTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly entry: LockEntry,
    private readonly handle: NativeHandle,
    readonly options: ResolvedOptions,
    readonly site: CallSite,
    waitedMs: number,
    recordNow = true,
  ) {
    entry.holds.add(this);
    this.nonce = options.record ? newNonce() : null;
    if (recordNow) this.writeRecord();
    if (options.maxHoldMs !== Infinity) {
      this.longHoldTimer = setTimeout(() => this.reportLongHold(), Math.min(options.maxHoldMs, 0x7fffffff));
      this.longHoldTimer.unref();
    }
    if (channels.acquire.hasSubscribers) {
      channels.acquire.publish({ target: entry.target, lockPath: entry.lockPath, mode: this.mode, owner: options.owner, waitedMs });
    }
    if (debug.enabled) debug('acquired %s (%s) after %dms', entry.lockPath, this.mode, waitedMs);
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

  private recordWritten = false;

  /** Writes the holder record once, while held (diagnostics only; failures are logged). */
  writeRecord(): void {
    if (this.nonce === null || this.recordWritten || this.released) return;
    this.recordWritten = true;
    const { entry, options } = this;
    writeRecord(recordPathFor(entry.lockPath), makeRecord(options.owner, options.shared, this.acquiredAt, this.nonce), options.fileMode);
  }

  /** Drops one view; the last one releases the kernel lock. */
  unref(): void {
    if (--this.views <= 0) this.release();
  }

  /** Removes the record while still holding, then closes the descriptor. Idempotent. */
  release(): boolean {
    if (this.released) return false;
    this.released = true;
    clearTimeout(this.longHoldTimer);
    const { entry } = this;
    if (this.recordWritten) removeRecord(recordPathFor(entry.lockPath), this.nonce as string, this.options.shared);
    const code = registry.binding.close(this.handle);
    if (code !== 0) debug('closing %s reported %s', entry.lockPath, registry.binding.errorName(code) ?? code);
    entry.holds.delete(this);
    if (channels.release.hasSubscribers) {
      channels.release.publish({ target: entry.target, lockPath: entry.lockPath, mode: this.mode, owner: this.options.owner, heldMs: this.heldForMs });
    }
    if (debug.enabled) debug('released %s after %dms', entry.lockPath, this.heldForMs);
    entry.pump();
    return true;
  }

  /** For `session-flock run`: the OS descriptor, made inheritable by children or not. */
  inheritableDescriptor(inheritable = true): number {
    return registry.binding.setInheritable(this.handle, inheritable);
  }

  private reportLongHold(): void {
    if (this.released) return;
    const report = {
      target: this.entry.target,
      lockPath: this.entry.lockPath,
      mode: this.mode,
      owner: this.options.owner,
      heldForMs: this.heldForMs,
      maxHoldMs: this.options.maxHoldMs,
      acquiredAt: formatCallSite(this.site),
    };
    channels.longHold.publish(report);
    process.emitWarning(
      `session-flock: ${this.entry.lockPath} has been held for ${report.heldForMs}ms, over maxHoldMs ${report.maxHoldMs}; ` +
        `it is not taken away. Acquired at:\n${report.acquiredAt}`,
      { type: 'SessionFlockLongHoldWarning', code: 'SESSION_FLOCK_LONG_HOLD' },
    );
  }
}
