import { BUSY, GRANTED, type GrantedLock, type LockBackend, type LockRequest, type WaitReport } from '../core/backend';
import { type HolderInfo, LockLostError } from '../core/errors';
import type { ResolvedLockOptions } from '../core/options';
import { type AdvisoryAttempt, type AdvisoryGrant, AdvisoryLocks, type AdvisoryRequest } from './advisory';
import { holderInfo, queryLocks, statusOfKey } from './inspect';
import type { ConnectionPool } from './pool';

/** The core's handle for one PostgreSQL hold or wait: the request, its attempt in flight, its grant. */
export interface PostgresHandle {
  readonly request: AdvisoryRequest;
  attempt: AdvisoryAttempt | null;
  grant: AdvisoryGrant | null;
}

let lockSets = 0;

/**
 * The PostgreSQL backend of one lock set, for the core (see core/backend.ts).
 * Every attempt is a round trip, so there is no trySync: a wait with no budget
 * is one pg_try_advisory_lock. The FIFO and re-entrancy stay in the core, so
 * the server sees at most one request per key from this process.
 */
export class PostgresBackend implements LockBackend<PostgresHandle, ResolvedLockOptions> {
  readonly adoptableWaits = false;
  readonly advisory: AdvisoryLocks;
  private readonly prefix: string;

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
    waiter.handle = handle;
    const attempt = this.advisory.attempt(handle.request, remainingMs);
    handle.attempt = attempt;
    attempt.done.then(
      (grant) => {
        handle.attempt = null;
        handle.grant = grant;
        report.waitSettled(handle, grant === null ? BUSY : GRANTED, grant?.token);
      },
      (error: NodeJS.ErrnoException) => {
        handle.attempt = null;
        // Name the lock: pg's own errors ("Connection terminated unexpectedly") do not.
        const named = new Error(`acquiring ${waiter.options.name}: ${error.message}`, { cause: error }) as NodeJS.ErrnoException;
        if (error.code !== undefined) named.code = error.code;
        report.waitSettled(handle, named);
      },
    );
  }

  cancelWait(handle: PostgresHandle): void {
    handle.attempt?.cancel();
  }

  granted(hold: GrantedLock<PostgresHandle>): void {
    const grant = hold.handle.grant!;
    grant.connection.setKeepsProcessAlive(false);
    grant.connection.watch((error) =>
      hold.lose(new LockLostError(hold.options.name, hold.options.target, `the connection that holds it failed: ${error.message}`, error)),
    );
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

  async describeHolder(registryKey: string, options: ResolvedLockOptions): Promise<HolderInfo | null> {
    const lockKey = this.lockKeyOf(registryKey);
    const connection = await this.pool.take();
    try {
      const statuses = await queryLocks(connection, this.pool.sql.locks, lockKey, null, this.pool.settings.hostname);
      this.pool.give(connection);
      return holderInfo(statusOfKey(statuses, lockKey, options.target, this.pool.settings.namespace));
    } catch (error) {
      this.pool.discard(connection);
      throw error;
    }
  }
}
