import type { LockConnection } from './connection';
import type { ConnectionPool } from './pool';
import { isTransient, type LockServerError, poolerRefused } from './server-error';

/** What a request sends along: the lock, its mode, and the diagnostics row. */
export interface AdvisoryRequest {
  readonly lockKey: bigint;
  readonly namespace: string;
  readonly key: string;
  readonly shared: boolean;
  readonly owner: string | null;
}

/** A granted advisory lock: the session that holds it (shared with other holds) and its fencing token. */
export interface AdvisoryGrant {
  readonly connection: LockConnection;
  readonly token: bigint;
  readonly request: AdvisoryRequest;
  /** Why the session broke, if it did before the hold took the report over. */
  lostWith: Error | null;
  /** Told once if the session breaks while this is held. */
  onLost: ((error: Error) => void) | null;
}

/** An attempt in flight: tries, blocking waits and wake-ups until a grant or the end of the budget. */
export interface AdvisoryAttempt {
  /** The grant, or null when the lock stayed taken (a try, the budget, a cancel). */
  readonly done: Promise<AdvisoryGrant | null>;
  /** The last server or connection failure the attempt outlived (for the timeout error). */
  readonly lastFailure: LockServerError | null;
  /** Gives up: a cancel request for a blocking wait. The attempt may still end in a grant (the race), which the caller releases. */
  cancel(): void;
}

/** lock_not_available: lock_timeout expired. */
const LOCK_NOT_AVAILABLE = '55P03';
/** out_of_shared_memory: the lock table is full (max_locks_per_transaction); raised before any grant. */
const OUT_OF_SHARED_MEMORY = '53200';
/** query_canceled: our cancel request arrived. */
const QUERY_CANCELED = '57014';
/** lock_timeout's ceiling (an int of ms); a longer budget waits without it (the core's timer ends it). */
const MAX_LOCK_TIMEOUT_MS = 0x7fffffff;
/** The retry of a wait woken by notification: catches holders that died without unlocking. */
const WAKE_RETRY_MS = 1000;
/** Backoff after a failed connection, doubling up to WAKE_RETRY_MS. */
const FIRST_BACKOFF_MS = 50;

function sqlCode(error: unknown): string | undefined {
  return (error as { code?: string }).code;
}

/**
 * The advisory-lock operations of one lock set. A wait blocks in pg_advisory_lock on a
 * session of its own when the pool has one to spare (the server wakes it at the unlock, or
 * when a killed holder's session ends), and otherwise tries again at each unlock
 * notification for its key, at a freed wait slot, and at least every second. A failure of
 * the server or the connection during a wait is outlived: it reconnects with backoff and
 * waits again, within its budget.
 */
export class AdvisoryLocks {
  constructor(readonly pool: ConnectionPool) {}

  private tryValues(r: AdvisoryRequest, keepRow: boolean): unknown[] {
    const key = r.lockKey.toString();
    if (!this.pool.sql.withSchema) return [key];
    return [key, r.namespace, r.key, r.shared ? 'shared' : 'exclusive', r.owner, this.pool.settings.hostname, process.pid, process.title, keepRow];
  }

  private grant(connection: LockConnection, token: string, request: AdvisoryRequest): AdvisoryGrant {
    const grant: AdvisoryGrant = { connection, token: BigInt(token), request, lostWith: null, onLost: null };
    const added = connection.addHold(grant, (error) => {
      grant.lostWith = error;
      grant.onLost?.(error);
    });
    if (!added) grant.lostWith = connection.broken;
    return grant;
  }

  /** One pg_try_advisory_lock with the token and the diagnostics row: a grant, or null. */
  private async tryOn(connection: LockConnection, request: AdvisoryRequest, keepRow: boolean, boundMs: number): Promise<AdvisoryGrant | null> {
    const sql = request.shared ? this.pool.sql.try.shared : this.pool.sql.try.exclusive;
    let rows: unknown[];
    try {
      ({ rows } = await connection.query(sql, this.tryValues(request, keepRow), boundMs, 'trying an advisory lock'));
    } catch (error) {
      // An error after the lock was taken inside the statement leaves it held by the
      // session: closed, with whatever else it held (out of shared memory comes before).
      if (sqlCode(error) !== OUT_OF_SHARED_MEMORY) connection.destroy();
      throw error;
    }
    const row = rows[0] as { granted: boolean; token: string | null; backend_pid: number };
    this.checkBackend(connection, row.backend_pid);
    return row.granted ? this.grant(connection, row.token!, request) : null;
  }

  /**
   * A try, and with a budget (`budgetMs` > 0, Infinity for none) waits until a grant or
   * the budget's end. A try alone (budget 0) is bounded by settings.quickMs, connecting
   * included, and fails with a LockServerError when the server does not answer by then.
   */
  attempt(request: AdvisoryRequest, budgetMs: number): AdvisoryAttempt {
    const { pool } = this;
    const { settings } = pool;
    const deadline = Date.now() + budgetMs;
    let cancelled = false;
    let blocking: LockConnection | null = null;
    let wakeNow: (() => void) | null = null;
    let fallback: NodeJS.Timeout | null = null;
    const state = { lastFailure: null as LockServerError | null };
    const remaining = (): number => Math.max(1, deadline - Date.now());

    const once = async (): Promise<AdvisoryGrant | null> => {
      const connection = await pool.forStatement(settings.quickMs);
      return this.tryOn(connection, request, false, settings.quickMs);
    };

    const wait = async (): Promise<AdvisoryGrant | null> => {
      const lockKey = request.lockKey.toString();
      let notified = false;
      const unsubscribe = pool.onWake(lockKey, () => {
        notified = true;
        wakeNow?.();
      });
      let backoffMs = FIRST_BACKOFF_MS;
      try {
        // First a try on a session that already holds locks: uncontended holds pack onto few
        // sessions, which leaves the others free for blocking waits (the fast path).
        const packed = pool.holding();
        if (packed !== null) {
          try {
            const grant = await this.tryOn(packed, request, false, settings.leaseMs);
            if (grant !== null || cancelled) return grant;
          } catch (error) {
            // The loop below tries again on another session, or reports.
            state.lastFailure = pool.typed(error, 'trying an advisory lock');
          }
        }
        while (!cancelled && Date.now() < deadline) {
          try {
            const waitOn = await pool.forWait(Math.min(remaining(), settings.connectionLossMs));
            if (cancelled) {
              if (waitOn !== null) pool.endWait(waitOn);
              return null;
            }
            if (waitOn !== null) {
              const grant = await this.blockingWait(waitOn, request, remaining(), (c) => {
                if (cancelled) return false;
                blocking = c;
                return true;
              });
              blocking = null;
              if (grant !== null || cancelled) return grant;
              // lock_timeout: the budget is spent.
              if (Date.now() >= deadline - 1) return null;
              continue;
            }
            // No session to spare: a try at each wake-up of this key (listening first, so no unlock after the try goes unheard).
            await pool.listen(Math.min(remaining(), settings.connectionLossMs));
            notified = false;
            const connection = await pool.forStatement(Math.min(remaining(), settings.connectionLossMs));
            const grant = await this.tryOn(connection, request, false, settings.leaseMs);
            if (grant !== null || cancelled) return grant;
            backoffMs = FIRST_BACKOFF_MS;
            if (!notified) await this.sleep(Math.min(WAKE_RETRY_MS, remaining()), (wake) => (wakeNow = wake));
            wakeNow = null;
          } catch (error) {
            blocking = null;
            wakeNow = null;
            if (cancelled) return null;
            const typed = pool.typed(error, 'waiting for an advisory lock');
            if (!isTransient(error) || !pool.everConnected) throw typed;
            state.lastFailure = typed;
            // The budget ran out while the server was away: a timeout that names the cause, whichever timer fired first.
            if (Date.now() >= deadline) return null;
            await this.sleep(Math.min(backoffMs, remaining()), (wake) => (wakeNow = wake));
            wakeNow = null;
            backoffMs = Math.min(backoffMs * 2, WAKE_RETRY_MS);
          }
        }
        return null;
      } finally {
        unsubscribe();
      }
    };

    const done = (budgetMs === 0 ? once() : wait()).finally(() => {
      if (fallback !== null) clearTimeout(fallback);
    });
    return {
      done,
      get lastFailure() {
        return state.lastFailure;
      },
      cancel() {
        if (cancelled) return;
        cancelled = true;
        wakeNow?.();
        const connection: LockConnection | null = blocking;
        if (connection === null) return; // not blocked on the server: the attempt stops at its next step
        void connection.sendCancel(settings.quickMs);
        // A cancel that reaches the server before the statement starts is ignored, and a
        // silent server answers none: closing the session then ends the wait for sure.
        fallback = setTimeout(() => connection.destroy(), settings.quickMs);
        fallback.unref();
      },
    };
  }

  /**
   * On a session of its own: a try (its row names the waiter in status), then
   * pg_advisory_lock under lock_timeout = the budget, which the server wakes when the lock
   * is free (no polling). A grant after a wait longer than half the lease is confirmed by
   * one more round trip, so the lease of the new hold starts from an answer. Null at
   * lock_timeout or a cancel.
   */
  private async blockingWait(
    connection: LockConnection,
    request: AdvisoryRequest,
    budgetMs: number,
    /** Says the wait is starting; false when the attempt was cancelled by then. */
    blockingOn: (c: LockConnection) => boolean,
  ): Promise<AdvisoryGrant | null> {
    const { pool } = this;
    const { settings } = pool;
    let handedOver = false;
    try {
      const tried = await this.tryOnWaitSession(connection, request);
      if (tried !== null) {
        handedOver = true;
        return tried;
      }
      const timeout = budgetMs > MAX_LOCK_TIMEOUT_MS ? 0 : Math.max(1, Math.ceil(budgetMs));
      const sql = request.shared ? pool.sql.wait.shared : pool.sql.wait.exclusive;
      if (!blockingOn(connection)) {
        await this.forget(connection, request);
        return null;
      }
      let rows: { token: string }[];
      try {
        ({ rows } = (await connection.query(sql, [request.lockKey.toString(), `${timeout}ms`], Infinity, 'waiting for an advisory lock')) as { rows: { token: string }[] });
      } catch (error) {
        // lock_timeout ends the wait before any grant. Anything else (our cancel included)
        // may have come after the grant inside the statement, and a session-level advisory
        // lock outlives its statement's error: the session cannot be trusted and is closed.
        if (sqlCode(error) === LOCK_NOT_AVAILABLE && connection.broken === null && !connection.cancelled) {
          await this.forget(connection, request);
          return null;
        }
        connection.destroy();
        if (sqlCode(error) === QUERY_CANCELED || connection.cancelled) return null;
        throw error;
      }
      if (connection.cancelled) {
        // Granted as the cancel request flew: that request may still hit a later statement
        // on the same connection, and nobody wants this grant. Closing frees it.
        connection.destroy();
        return null;
      }
      if (connection.leaseExpired(Date.now() + settings.leaseMs / 2)) {
        await connection.query('SELECT 1', [], settings.leaseMs, 'confirming a granted advisory lock');
      }
      handedOver = true;
      this.checkBackend(connection, (rows[0] as unknown as { backend_pid: number }).backend_pid);
      return this.grant(connection, rows[0].token, request);
    } finally {
      connection.waiting = false;
      if (!handedOver) pool.endWait(connection);
    }
  }

  private async tryOnWaitSession(connection: LockConnection, request: AdvisoryRequest): Promise<AdvisoryGrant | null> {
    return this.tryOn(connection, request, true, this.pool.settings.leaseMs);
  }

  /** A statement answered by another backend than the session's: a transaction-mode pooler; the session is closed. */
  private checkBackend(connection: LockConnection, backendPid: number): void {
    if (backendPid === connection.backendPid) return;
    const error = poolerRefused(connection.address, connection.backendPid);
    connection.fail(error);
    connection.destroy();
    throw error;
  }

  /** Drops the connection's diagnostics row of a wait that ended without a grant. */
  private async forget(connection: LockConnection, request: AdvisoryRequest): Promise<void> {
    const sql = this.pool.sql.forget;
    if (sql !== null) await connection.query(sql, [request.lockKey.toString()], this.pool.settings.leaseMs, 'dropping a diagnostics row').catch(() => undefined);
  }

  /** Resolves after `ms`, or at once when `register`'s wake function is called. */
  private sleep(ms: number, register: (wake: () => void) => void): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      register(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Unlocks and drops the row in one round trip, with the wake-up for waits elsewhere, within
   * the lease: a server that does not answer gets the session destroyed (and frees the lock
   * itself), which also ends the other holds on that session.
   */
  async release(grant: AdvisoryGrant): Promise<void> {
    const { connection, request } = grant;
    grant.onLost = null;
    connection.removeHold(grant);
    if (connection.broken !== null) return;
    try {
      const sql = request.shared ? this.pool.sql.release.shared : this.pool.sql.release.exclusive;
      await connection.query(sql, [request.lockKey.toString()], this.pool.settings.leaseMs, 'releasing an advisory lock');
    } catch {
      // A broken session let go of everything on the server.
    }
    this.pool.settle(connection);
  }
}
