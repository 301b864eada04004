import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Process-wide (per isolate) state, on globalThis under a Symbol.for key so that two
 * copies of this package in one process share one queue per lock and one re-entrancy
 * context instead of deadlocking on each other's descriptors. Each entry carries its
 * backend, so a copy drives another copy's entries through that copy's addon. Typed here
 * as plain values: lock-entry.ts and locks.ts, which fill them, give them their types.
 */
export interface Registry {
  readonly version: 2;
  /**
   * One entry per lock, by the backend's key. An unused entry may stay until the next turn
   * (LockEntry.forgetIfUnused()); LockEntry.for() replaces one that names the key by
   * another path, target or backend (a deleted file's inode reused, a hard link). Every
   * copy that shares this version of the registry does both.
   */
  readonly entries: Map<string, unknown>;
  /** The locks held by the enclosing withLock() calls of the current async context, by key. */
  readonly context: AsyncLocalStorage<ReadonlyMap<string, unknown>>;
}

const KEY = Symbol.for('session-flock.registry.v2');
const global = globalThis as { [KEY]?: Registry };

export const registry: Registry = (global[KEY] ??= {
  version: 2,
  entries: new Map(),
  context: new AsyncLocalStorage(),
});
