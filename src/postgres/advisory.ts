import type { LockConnection } from './connection';
import type { ConnectionPool } from './pool';

/** What a request sends along: the lock, its mode, and the diagnostics row. */
export interface AdvisoryRequest {
  readonly lockKey: bigint;
  readonly namespace: string;
  readonly key: string;
  readonly shared: boolean;
  readonly owner: string | null;
}

/** A granted advisory lock: its own connection and its fencing token. */
export interface AdvisoryGrant {
  readonly connection: LockConnection;
  readonly token: bigint;
  readonly request: AdvisoryRequest;
}

/** An attempt in flight: a try, then (with a budget) a blocking wait. */
export interface AdvisoryAttempt {
  /** The grant, or null when the lock stayed taken (a try, lock_timeout, a cancel). */
  readonly done: Promise<AdvisoryGrant | null>;
  /** Gives up: a cancel request for a blocking wait. The attempt may still end in a grant (the race), which the caller releases. */
  cancel(): void;
}

/** lock_not_available: lock_timeout expired. */
const LOCK_NOT_AVAILABLE = '55P03';
/** query_canceled: our cancel request arrived. */
const QUERY_CANCELED = '57014';
/** lock_timeout's ceiling (an int of ms); a longer budget waits without it (the core's timer ends it). */
const MAX_LOCK_TIMEOUT_MS = 0x7fffffff;

function sqlCode(error: unknown): string | undefined {
  return (error as { code?: string }).code;
}

/**
 * The advisory-lock operations of one lock set, each on a dedicated connection.
 * Any failure that leaves it unknown whether the lock was taken closes the
 * connection, which makes the server drop whatever it held.
 */
export class AdvisoryLocks {
  constructor(readonly pool: ConnectionPool) {}

  private rowValues(r: AdvisoryRequest): unknown[] {
    return [r.lockKey.toString(), r.namespace, r.key, r.shared ? 'shared' : 'exclusive', r.owner, this.pool.settings.hostname, process.pid, process.title];
  }

  /**
   * One try (pg_try_advisory_lock with the fencing token and the diagnostics
   * row, one round trip); when it finds the lock taken and `budgetMs` > 0, a
   * blocking pg_advisory_lock under lock_timeout = the remaining budget, which
   * the server wakes when the lock is free (no polling).
   */
  attempt(request: AdvisoryRequest, budgetMs: number): AdvisoryAttempt {
    const { pool } = this;
    const startedAt = Date.now();
    let cancelled = false;
    let blocking: LockConnection | null = null;
    let fallback: NodeJS.Timeout | null = null;
    const done = (async (): Promise<AdvisoryGrant | null> => {
      const connection = await pool.take();
      let step: 'try' | 'wait' = 'try';
      try {
        const trySql = request.shared ? pool.sql.try.shared : pool.sql.try.exclusive;
        const tried = (await connection.query(trySql, this.rowValues(request))).rows[0] as { granted: boolean; token: string | null };
        if (tried.granted) return { connection, token: BigInt(tried.token!), request };
        const remainingMs = budgetMs - (Date.now() - startedAt);
        if (budgetMs === 0 || remainingMs <= 0 || cancelled) {
          this.forget(connection);
          return null;
        }
        step = 'wait';
        const timeout = remainingMs > MAX_LOCK_TIMEOUT_MS ? 0 : Math.max(1, Math.ceil(remainingMs));
        const waitSql = request.shared ? pool.sql.wait.shared : pool.sql.wait.exclusive;
        const pending = connection.query(waitSql, [request.lockKey.toString(), `${timeout}ms`]);
        blocking = connection;
        const { rows } = await pending;
        return { connection, token: BigInt((rows[0] as { token: string }).token), request };
      } catch (error) {
        const code = sqlCode(error);
        if (step === 'wait' && (code === LOCK_NOT_AVAILABLE || code === QUERY_CANCELED) && connection.broken === null) {
          this.forget(connection);
          return null;
        }
        pool.discard(connection);
        // A connection closed after cancel() took any late grant with it.
        if (cancelled) return null;
        throw error;
      } finally {
        blocking = null;
        if (fallback !== null) clearTimeout(fallback);
      }
    })();
    return {
      done,
      cancel() {
        if (cancelled) return;
        cancelled = true;
        const connection: LockConnection | null = blocking;
        if (connection === null) return; // before the wait: the attempt stops after its try
        void connection.sendCancel();
        // A cancel that reaches the server before the statement starts is ignored;
        // closing the connection then ends the wait for sure.
        fallback = setTimeout(() => connection.destroy(), pool.settings.heartbeatMs);
        fallback.unref();
      },
    };
  }

  /** After an attempt that was not granted: drop its row; then the connection goes back or is closed. */
  private forget(connection: LockConnection): void {
    connection.query(this.pool.sql.forget, []).then(
      () => this.pool.give(connection),
      () => this.pool.discard(connection),
    );
  }

  /** Unlocks and drops the row in one round trip; the connection goes back to the pool. */
  async release(grant: AdvisoryGrant): Promise<void> {
    const { connection, request } = grant;
    connection.unwatch();
    if (connection.broken !== null || connection.cancelled) {
      // Closing the session releases the lock on the server.
      this.pool.discard(connection);
      return;
    }
    // A release in flight keeps the process alive until the server has answered.
    connection.setKeepsProcessAlive(true);
    try {
      const sql = request.shared ? this.pool.sql.release.shared : this.pool.sql.release.exclusive;
      const { rows } = await connection.query(sql, [request.lockKey.toString()]);
      if ((rows[0] as { released: boolean }).released === true) {
        this.pool.give(connection);
        return;
      }
    } catch {
      // below
    }
    // Not released as expected: trust nothing on this session.
    this.pool.discard(connection);
  }
}
