import type { Hold } from '../core/hold';
import { holdOf, SessionLock } from '../core/session-lock';
import type { PostgresHandle } from './backend';

/**
 * A held PostgreSQL advisory lock (target = the key). Same release rules as
 * SessionLock; in addition it can be lost while held, which `signal` reports.
 */
export class PostgresLock extends SessionLock {
  /**
   * Fencing token: strictly increases per key across all hosts and processes
   * (taken in the same statement as the lock). Hand it to storage that can
   * refuse a write carrying a lower token than one it has seen. A re-entered
   * lock has its outer lock's token.
   */
  get token(): bigint {
    return (holdOf(this) as Hold<PostgresHandle>).data as bigint;
  }

  /**
   * Aborts with LockLostError (code ELOCKLOST) as soon as the lock may be lost:
   * the connection errors or closes, the server terminates the session, or a
   * heartbeat gets no answer in time. Stop writing when it fires; `held` is
   * false from then on.
   */
  get signal(): AbortSignal {
    return holdOf(this).signal;
  }
}
