import { BUSY, GRANTED, type LockBackend } from '../core/backend';
import { type HolderAnswer, HolderUnknown, LockLostError } from '../core/errors';
import type { Hold } from '../core/hold';
import type { LockEntry, Waiter } from '../core/lock-entry';
import type { SessionLock } from '../core/session-lock';
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
export class PostgresBackend implements LockBackend<PostgresHandle> {
  readonly adoptableWaits = false;
  readonly advisory: AdvisoryLocks;
  private readonly prefix: string;
  /** The last server failure a wait of the entry outlived, for its timeout error. */
  private readonly failures = new WeakMap<LockEntry<PostgresHandle>, LockServerError>();

  constructor(
    readonly family: object,
    readonly pool: ConnectionPool,
    readonly lockClass: new (hold: Hold<PostgresHandle>, watch?: boolean) => SessionLock,
  ) {
    this.advisory = new AdvisoryLocks(pool);
    this.prefix = `postgres#${++lockSets}:`;
  }

  /** The core's registry key of a lock of this set: its own entries, whatever other sets hold. */
  registryKey(lockKey: bigint): string {
    return `${this.prefix}${lockKey}`;
  }

  private lockKeyOf(entry: LockEntry<PostgresHandle>): bigint {
    return BigInt(entry.key.slice(this.prefix.length));
  }

  private requestOf(entry: LockEntry<PostgresHandle>, waiter: Waiter<PostgresHandle>): AdvisoryRequest {
    const { shared, owner } = waiter.options;
    return { lockKey: this.lockKeyOf(entry), namespace: this.pool.settings.namespace, key: entry.target, shared, owner };
  }

  startWait(entry: LockEntry<PostgresHandle>, waiter: Waiter<PostgresHandle>, remainingMs: number): void {
    const handle: PostgresHandle = { request: this.requestOf(entry, waiter), attempt: null, grant: null };
    waiter.handle = handle;
    const attempt = this.advisory.attempt(handle.request, remainingMs);
    handle.attempt = attempt;
    attempt.done.then(
      (grant) => {
        handle.attempt = null;
        handle.grant = grant;
        if (attempt.lastFailure !== null && grant === null) this.failures.set(entry, attempt.lastFailure);
        entry.waitSettled(handle, grant === null ? BUSY : GRANTED, grant?.token);
      },
      (error: LockServerError) => {
        handle.attempt = null;
        // Name the lock: pg's own errors ("Connection terminated unexpectedly") do not.
        entry.waitSettled(handle, new LockServerError(error.code, `acquiring ${entry.lockPath}: ${error.message}`, error.cause ?? error));
      },
    );
  }

  cancelWait(entry: LockEntry<PostgresHandle>, handle: PostgresHandle): void {
    // The timeout error (built right after) names the failure the wait was outliving.
    const failure = handle.attempt?.lastFailure;
    if (failure) this.failures.set(entry, failure);
    handle.attempt?.cancel();
  }

  granted(hold: Hold<PostgresHandle>): void {
    const grant = hold.handle.grant;
    if (grant === null) return;
    const lose = (error: Error): void =>
      hold.lose(new LockLostError(hold.entry.lockPath, hold.entry.target, `the connection that holds it failed: ${error.message}`, error));
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

  release(hold: Hold<PostgresHandle>): Promise<void> {
    const grant = hold.handle.grant!;
    hold.handle.grant = null;
    return this.advisory.release(grant);
  }

  releaseHandle(_entry: LockEntry<PostgresHandle>, handle: PostgresHandle): void {
    const grant = handle.grant;
    handle.grant = null;
    if (grant !== null) void this.advisory.release(grant);
  }

  /** Within HOLDER_LOOKUP_MS, whatever the server does; "the server did not answer" past it. */
  async describeHolder(entry: LockEntry<PostgresHandle>): Promise<HolderAnswer> {
    const failure = this.failures.get(entry);
    if (failure !== undefined) {
      this.failures.delete(entry);
      return new HolderUnknown(`the server could not be reached while waiting: ${failure.message}`);
    }
    const lockKey = this.lockKeyOf(entry);
    const { settings } = this.pool;
    let timer: NodeJS.Timeout | undefined;
    const silent = new Promise<HolderAnswer>((resolve) => {
      timer = setTimeout(() => resolve(new HolderUnknown('the server did not answer')), HOLDER_LOOKUP_MS);
    });
    const lookup = (async (): Promise<HolderAnswer> => {
      const connection = this.pool.anyAnswering() ?? (await this.pool.forStatement(HOLDER_LOOKUP_MS));
      const statuses = await queryLocks(connection, this.pool.sql, lockKey, null, settings.hostname, Infinity);
      return holderInfo(statusOfKey(statuses, lockKey, entry.target, settings.namespace));
    })().catch((error: Error) => new HolderUnknown(`the server could not be asked: ${error.message}`));
    try {
      return await Promise.race([lookup, silent]);
    } finally {
      clearTimeout(timer);
    }
  }
}
