import type { Hold } from '../core/hold';
import { holdOf, SessionLock } from '../core/session-lock';
import type { PostgresBackend, PostgresHandle } from './backend';

function verified(lock: SessionLock): Hold<PostgresHandle> {
  const hold = holdOf(lock) as Hold<PostgresHandle>;
  (hold.entry.backend as unknown as PostgresBackend).verify(hold);
  return hold;
}

/**
 * A held PostgreSQL advisory lock (target = the key). Same release rules as
 * SessionLock; in addition it can be lost while held, which `held` and `signal` report.
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
   * False once released, and once the lock may be lost. Checked on every read, synchronously:
   * a hold is a lease that ends when more than `leaseMs` (half of connectionLossMs) has
   * passed since the last answered heartbeat of its connection was sent, even if the event
   * loop was blocked and no timer could run.
   */
  override get held(): boolean {
    verified(this);
    return super.held;
  }

  /**
   * Aborts with LockLostError (code ELOCKLOST) as soon as the lock may be lost:
   * the connection errors or closes, the server terminates the session, or the lease
   * runs out (checked by a timer, and again on every read of this property, so a holder
   * whose loop stalled reads it aborted on resume). Stop writing when it fires; `held`
   * is false from then on.
   */
  get signal(): AbortSignal {
    return verified(this).signal;
  }
}
