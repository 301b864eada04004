import { BUSY, GRANTED, type LockBackend } from '../core/backend';
import { type HolderInfo, LockLostError } from '../core/errors';
import type { Hold } from '../core/hold';
import type { LockEntry, Waiter } from '../core/lock-entry';
import type { SessionLock } from '../core/session-lock';
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
export class PostgresBackend implements LockBackend<PostgresHandle> {
  readonly adoptableWaits = false;
  readonly advisory: AdvisoryLocks;
  private readonly prefix: string;

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
        entry.waitSettled(handle, grant === null ? BUSY : GRANTED, grant?.token);
      },
      (error: NodeJS.ErrnoException) => {
        handle.attempt = null;
        // Name the lock: pg's own errors ("Connection terminated unexpectedly") do not.
        const named = new Error(`acquiring ${entry.lockPath}: ${error.message}`, { cause: error }) as NodeJS.ErrnoException;
        if (error.code !== undefined) named.code = error.code;
        entry.waitSettled(handle, named);
      },
    );
  }

  cancelWait(_entry: LockEntry<PostgresHandle>, handle: PostgresHandle): void {
    handle.attempt?.cancel();
  }

  granted(hold: Hold<PostgresHandle>): void {
    const grant = hold.handle.grant!;
    grant.connection.setKeepsProcessAlive(false);
    grant.connection.watch((error) =>
      hold.lose(new LockLostError(hold.entry.lockPath, hold.entry.target, `the connection that holds it failed: ${error.message}`, error)),
    );
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

  async describeHolder(entry: LockEntry<PostgresHandle>): Promise<HolderInfo | null> {
    const lockKey = this.lockKeyOf(entry);
    const connection = await this.pool.take();
    try {
      const statuses = await queryLocks(connection, this.pool.sql.locks, lockKey, null, this.pool.settings.hostname);
      this.pool.give(connection);
      return holderInfo(statusOfKey(statuses, lockKey, entry.target, this.pool.settings.namespace));
    } catch (error) {
      this.pool.discard(connection);
      throw error;
    }
  }
}
