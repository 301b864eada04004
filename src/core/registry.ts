import { AsyncLocalStorage } from 'node:async_hooks';
import { binding, type RawBinding } from '../file/binding';
import type { LockEntry } from './lock-entry';
import type { Hold } from './hold';

/**
 * Process-wide (per isolate) state, on globalThis under a Symbol.for key so
 * that two copies of this package in one process share one queue per lock
 * file, one binding and one re-entrancy context instead of deadlocking on
 * each other's descriptors.
 */
export interface Registry {
  readonly version: 1;
  readonly binding: RawBinding;
  readonly entries: Map<string, LockEntry>;
  /** The locks held by the enclosing withLock() calls of the current async context. */
  readonly context: AsyncLocalStorage<ReadonlyMap<string, Hold>>;
}

const KEY = Symbol.for('session-flock.registry.v1');
const global = globalThis as { [KEY]?: Registry };

export const registry: Registry = (global[KEY] ??= {
  version: 1,
  binding,
  entries: new Map(),
  context: new AsyncLocalStorage(),
});
