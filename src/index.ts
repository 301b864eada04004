export { acquire, tryAcquire, tryAcquireSync, withLock, heldLocks, releaseAll } from './api';
export type { HeldLockInfo } from './api';
export { SessionLock } from './session-lock';
export type { AcquireOptions } from './options';
export { LockTimeoutError, LockAbortedError, LockDeadlockError, LockUnsupportedError } from './errors';
export type { HolderInfo } from './errors';
export type { HolderRecord } from './record';
export { inspect, listLocks } from './inspect';
export type { LockStatus, LockHolder, LockWaiter, LockState, LockMode, InspectOptions, ListLocksOptions } from './inspect';
