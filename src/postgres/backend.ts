import { BUSY, GRANTED, type GrantedLock, type LockBackend, type LockRequest, type WaitReport } from '../core/backend';
import { type HolderAnswer, HolderUnknown, LockLostError } from '../core/errors';
import type { Hold } from '../core/hold';
import type { ResolvedLockOptions } from '../core/options';
import { type AdvisoryAttempt, type AdvisoryGrant, AdvisoryLocks, type AdvisoryRequest } from './advisory';
import { holderInfo, queryLocks, statusOfKey } from './inspect';
import type { ConnectionPool } from './pool';
import { LockServerError } from './server-error';

/** The core's handle for one PostgreSQL hold or wait: the request, its attempt in flight, its grant. */
export interface PostgresHandle {
  readonly request: AdvisoryRequest;
  attempt: AdvisoryAttempt | null;
  grant: AdvisoryGrant | null;
}

let lockSets = 0;

/**
 * The holder lookup behind a timeout error runs after the budget is spent: a short bound of
 * its own, after which the error says the server did not answer.
 */
const HOLDER_LOOKUP_MS = 500;

/**
 * The PostgreSQL backend of one lock set, for the core (see core/backend.ts).
 * Every attempt is a round trip, so there is no trySync: a wait with no budget
 * is one pg_try_advisory_lock. The FIFO and re-entrancy stay in the core, so
 * the server sees at most one request per key from this process.
 */
export class PostgresBackend implements LockBackend<PostgresHandle, ResolvedLockOptions> {
  readonly adoptableWaits = false;
  readonly callsAfterGrant = false;
  readonly advisory: AdvisoryLocks;
  private readonly prefix: string;
  /** The last server failure the latest wait on a key outlived, for its timeout error; a new wait forgets it. */
  private readonly failures = new Map<bigint, LockServerError>();

  constructor(readonly pool: ConnectionPool) {
    this.advisory = new AdvisoryLocks(pool);
    this.prefix = `postgres#${++lockSets}:`;
  }

  /** The core's registry key of a lock of this set: its own entries, whatever other sets hold. */
  registryKey(lockKey: bigint): string {
    return `${this.prefix}${lockKey}`;
  }

  private lockKeyOf(registryKey: string): bigint {
    return BigInt(registryKey.slice(this.prefix.length));
  }

  private requestOf(waiter: LockRequest<PostgresHandle>): AdvisoryRequest {
    const { shared, owner, target } = waiter.options;
    return { lockKey: this.lockKeyOf(waiter.key), namespace: this.pool.settings.namespace, key: target, shared, owner };
  }

  startWait(waiter: LockRequest<PostgresHandle>, remainingMs: number, report: WaitReport<PostgresHandle>): void {
    const handle: PostgresHandle = { request: this.requestOf(waiter), attempt: null, grant: null };
    const { lockKey } = handle.request;
    this.failures.delete(lockKey);
    waiter.handle = handle;
    const attempt = this.advisory.attempt(handle.request, remainingMs);
    handle.attempt = attempt;
    attempt.done.then(
      (grant) => {
        handle.attempt = null;
        handle.grant = grant;
        if (attempt.lastFailure !== null && grant === null) this.failures.set(lockKey, attempt.lastFailure);
        report.waitSettled(handle, grant === null ? BUSY : GRANTED, grant?.token);
      },
      (error: LockServerError) => {
        handle.attempt = null;
        // Name the lock: pg's own errors ("Connection terminated unexpectedly") do not.
        report.waitSettled(handle, new LockServerError(error.code, `acquiring ${waiter.options.name}: ${error.message}`, error.cause ?? error));
      },
    );
  }

  cancelWait(handle: PostgresHandle): void {
    // The timeout error (built right after) names the failure the wait was outliving.
    const failure = handle.attempt?.lastFailure;
    if (failure) this.failures.set(handle.request.lockKey, failure);
    handle.attempt?.cancel();
  }

  granted(hold: GrantedLock<PostgresHandle>): void {
    const grant = hold.handle.grant;
    if (grant === null) return;
    const lose = (error: Error): void =>
      hold.lose(new LockLostError(hold.options.name, hold.options.target, `the connection that holds it failed: ${error.message}`, error));
    if (grant.lostWith !== null) lose(grant.lostWith);
    else grant.onLost = lose;
  }

  /**
   * Synchronous, on every read of a lock's `held` and `signal`: a hold whose session broke,
   * or whose lease ran out (no answer to a statement sent within the lease), is lost now.
   */
  verify(hold: Hold<PostgresHandle>): void {
    if (hold.released) return;
    const grant = hold.handle.grant;
    if (grant === null) return;
    grant.connection.checkLease();
    if (grant.lostWith !== null && grant.onLost === null) this.granted(hold);
  }

  release(hold: GrantedLock<PostgresHandle>): Promise<void> {
    const grant = hold.handle.grant!;
    hold.handle.grant = null;
    return this.advisory.release(grant);
  }

  releaseHandle(handle: PostgresHandle): void {
    const grant = handle.grant;
    handle.grant = null;
    if (grant !== null) void this.advisory.release(grant);
  }

  /** Within HOLDER_LOOKUP_MS, whatever the server does; "the server did not answer" past it. */
  async describeHolder(registryKey: string, options: ResolvedLockOptions): Promise<HolderAnswer> {
    const lockKey = this.lockKeyOf(registryKey);
    const failure = this.failures.get(lockKey);
    if (failure !== undefined) {
      this.failures.delete(lockKey);
      return new HolderUnknown(`the server could not be reached while waiting: ${failure.message}`);
    }
    const { settings } = this.pool;
    let timer: NodeJS.Timeout | undefined;
    const silent = new Promise<HolderAnswer>((resolve) => {
      timer = setTimeout(() => resolve(new HolderUnknown('the server did not answer')), HOLDER_LOOKUP_MS);
    });
    const lookup = (async (): Promise<HolderAnswer> => {
      const connection = this.pool.anyAnswering() ?? (await this.pool.forStatement(HOLDER_LOOKUP_MS));
      const statuses = await queryLocks(connection, this.pool.sql, lockKey, null, settings.hostname, Infinity);
      return holderInfo(statusOfKey(statuses, lockKey, options.target, settings.namespace));
    })().catch((error: Error) => new HolderUnknown(`the server could not be asked: ${error.message}`));
    try {
      return await Promise.race([lookup, silent]);
    } finally {
      clearTimeout(timer);
    }
  }
}
