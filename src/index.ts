export { acquire, tryAcquire, tryAcquireSync, withLock, heldLocks, releaseAll } from './file/api';
export type { HeldLockInfo } from './file/api';
export { SessionLock } from './core/session-lock';
export type { AcquireOptions } from './file/options';
export { LockTimeoutError, LockAbortedError, LockDeadlockError, LockUnsupportedError, LockLostError } from './core/errors';
export type { HolderInfo } from './core/errors';
export type { HolderRecord } from './file/record';
export { inspect, listLocks } from './file/inspect';
export type { LockStatus, LockHolder, LockWaiter, LockState, LockMode, InspectOptions, ListLocksOptions } from './file/inspect';
