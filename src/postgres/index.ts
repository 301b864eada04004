// session-flock/postgres: the same session locks on PostgreSQL advisory locks, across hosts.
export { createPostgresLocks } from './locks';
export type { PostgresLocks, PostgresAcquireOptions } from './locks';
export { PostgresLock } from './lock';
export type { PostgresLocksOptions } from './options';
export type { PostgresLockStatus, PostgresLockStatus as LockStatus, PostgresLockSession, PostgresLockMode } from './status';
export type { HeldLockInfo } from '../core/locks';
export { SessionLock } from '../core/session-lock';
export { LockTimeoutError, LockAbortedError, LockDeadlockError, LockLostError } from '../core/errors';
export type { HolderInfo } from '../core/errors';
export { LockServerError } from './server-error';
