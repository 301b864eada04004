import { invalidArgType, invalidArgValue } from '../core/errors';
import { captureCallSite } from '../core/hold';
import { acquireLock, type HeldLockInfo, heldLocksOf, type LockFamily, releaseAllOf, runLocked, tryLock } from '../core/locks';
import { LOCK_OPTION_KEYS, type LockOptions, optionsObject, type ResolvedLockOptions, resolveLockOptions } from '../core/options';
import { PostgresBackend, type PostgresHandle } from './backend';
import { queryLocks, statusOfKey } from './inspect';
import type { PostgresLocksOptions } from './options';
import type { PostgresLockStatus } from './status';
import { advisoryKey } from './keys';
import { loadPg } from './load-pg';
import { PostgresLock } from './lock';
import { ConnectionPool } from './pool';
import { resolveSettings } from './settings';

/** Options of acquire/tryAcquire/withLock: the file API's, less lockPath, record and fileMode. */
export type PostgresAcquireOptions = LockOptions;

const KNOWN_KEYS = new Set<string>(LOCK_OPTION_KEYS);

function validateKey(key: unknown): string {
  if (typeof key !== 'string') throw invalidArgType('key', 'of type string', key);
  if (key.length === 0) throw invalidArgValue('key', key, 'must be a non-empty string');
  if (key.includes('\0')) throw invalidArgValue('key', key, 'must be a string without null bytes');
  return key;
}

/**
 * The locks of one namespace on one PostgreSQL database. Made by createPostgresLocks();
 * its doc says what is guaranteed and when a lock is released. Platform-specific
 * behavior: none on the client (see createPostgresLocks for server versions).
 */
export interface PostgresLocks {
  readonly namespace: string;
  /** Waits up to timeoutMs (default 10 000) in this process's FIFO, then blocked on the server; LockTimeoutError names the holder. */
  acquire(key: string, options?: PostgresAcquireOptions): Promise<PostgresLock>;
  /** One attempt (one round trip), never waits, whatever timeoutMs says: a lock, or null. */
  tryAcquire(key: string, options?: PostgresAcquireOptions): Promise<PostgresLock | null>;
  /** Runs fn holding the lock, released when fn settles; nested acquires of the key inside re-enter. */
  withLock<T>(key: string, fn: (lock: PostgresLock) => T | Promise<T>, options?: PostgresAcquireOptions): Promise<T>;
  /** Holders and waiters of one key, from pg_locks + pg_stat_activity (+ diagnostics rows). Never takes the lock. */
  inspect(key: string): Promise<PostgresLockStatus>;
  /** Every held or awaited key of this namespace. */
  listLocks(): Promise<PostgresLockStatus[]>;
  /** This process's holds of this lock set, with where each was acquired. */
  heldLocks(): HeldLockInfo[];
  /** Fails pending acquires (LockAbortedError) and releases every hold; resolves once the server has let go. */
  releaseAll(): Promise<number>;
  /** releaseAll(), then closes every connection; later calls reject. */
  close(): Promise<void>;
}

class PostgresLockSet implements PostgresLocks {
  readonly namespace: string;
  private readonly pool: ConnectionPool;
  private readonly backend: PostgresBackend;
  /** This set in the core: its own group, so heldLocks() and releaseAll() see only its locks. */
  private readonly family: LockFamily<PostgresHandle>;
  private closed = false;

  constructor(options: PostgresLocksOptions | undefined) {
    const settings = resolveSettings(options);
    loadPg();
    this.namespace = settings.namespace;
    this.pool = new ConnectionPool(settings);
    this.backend = new PostgresBackend(this.pool);
    this.family = { group: this, backend: this.backend, lockClass: PostgresLock };
  }

  private resolve(key: unknown, options: unknown): { registryKey: string; options: ResolvedLockOptions } {
    const target = validateKey(key);
    const o = optionsObject(options, KNOWN_KEYS);
    const lockKey = advisoryKey(this.namespace, target);
    const resolved: ResolvedLockOptions = resolveLockOptions(o, target, `postgres:${this.namespace}/${target}`);
    if (this.closed) throw new Error(`this PostgreSQL lock set (namespace ${this.namespace}) was closed`);
    return { registryKey: this.backend.registryKey(lockKey), options: resolved };
  }

  acquire(key: string, options?: PostgresAcquireOptions): Promise<PostgresLock> {
    try {
      const r = this.resolve(key, options);
      return acquireLock(this.family, r.registryKey, r.options, captureCallSite(this.acquire)) as Promise<PostgresLock>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  tryAcquire(key: string, options?: PostgresAcquireOptions): Promise<PostgresLock | null> {
    try {
      const r = this.resolve(key, options);
      return tryLock(this.family, r.registryKey, r.options, captureCallSite(this.tryAcquire)) as Promise<PostgresLock | null>;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  async withLock<T>(key: string, fn: (lock: PostgresLock) => T | Promise<T>, options?: PostgresAcquireOptions): Promise<T> {
    if (typeof fn !== 'function') throw invalidArgType('fn', 'of type function', fn);
    const r = this.resolve(key, options);
    const acquired = acquireLock(this.family, r.registryKey, r.options, captureCallSite(this.withLock));
    return runLocked(r.registryKey, acquired, fn as (lock: unknown) => T | Promise<T>);
  }

  async inspect(key: string): Promise<PostgresLockStatus> {
    const target = validateKey(key);
    const lockKey = advisoryKey(this.namespace, target);
    const statuses = await this.query(lockKey, null);
    return statusOfKey(statuses, lockKey, target, this.namespace);
  }

  listLocks(): Promise<PostgresLockStatus[]> {
    return this.query(null, this.namespace);
  }

  /** Within the lease: connecting, then one round trip (a silent server gets its session closed). */
  private async query(lockKey: bigint | null, namespace: string | null): Promise<PostgresLockStatus[]> {
    if (this.closed) throw new Error(`this PostgreSQL lock set (namespace ${this.namespace}) was closed`);
    const { settings } = this.pool;
    const connection = await this.pool.forStatement(settings.leaseMs);
    return queryLocks(connection, this.pool.sql, lockKey, namespace, settings.hostname, settings.leaseMs);
  }

  heldLocks(): HeldLockInfo[] {
    return heldLocksOf(this.family);
  }

  releaseAll(): Promise<number> {
    return releaseAllOf(this.family);
  }

  async close(): Promise<void> {
    this.closed = true;
    await releaseAllOf(this.family);
    await this.pool.close();
  }
}

/**
 * A set of PostgreSQL advisory locks: one namespace on one database, on at most
 * `maxConnections` sessions of its own (default 10) shared by all its holds (never a shared
 * pg.Pool, never a transaction-mode pooler, which it refuses with LockServerError 0A000:
 * advisory locks belong to a session).
 *
 * Guaranteed: while a PostgresLock reads `held` true (and its `signal` has not aborted), no
 * other session of that database holds the key in a conflicting mode (advisory locks;
 * clients that lock the same bigint keys outside this library are not distinguished),
 * except in the one window no client can close: a backend the server terminates has its
 * locks freed before its client can know. Waits block on the server (no polling) while the
 * cap leaves them a session, and are otherwise woken by the releaser's notification (or
 * retry within a second); FIFO within this process. `lock.token` strictly increases per key.
 * Every call is bounded: acquire by its budget, tryAcquire by a short bound, release,
 * withLock and releaseAll by the lease. Server and connection failures are LockServerError.
 *
 * Not guaranteed: that a live holder keeps the lock. A network cut, a server restart or
 * failover, pg_terminate_backend or a stalled event loop end the session or its lease;
 * `held` then reads false and `signal` aborts with LockLostError: on the connection's
 * error at once, and on any read once the lease (half of `connectionLossMs`) has passed
 * since the last answered heartbeat was sent. The lease ends before the server can free
 * the lock of a silent holder (see the README for the margin). Use `lock.token` to fence
 * writes to storage that can check it.
 *
 * Released by: release() (one round trip, which also wakes waits elsewhere),
 * releaseSync()/dispose (the unlock is sent, not awaited), withLock's end, releaseAll(),
 * close(), garbage collection (with a warning), and by the server when the session ends for
 * any reason (the process dies, the host dies and TCP gives up, the network is cut); losing
 * a session loses every lock on it.
 *
 * Platform-specific behavior: none on the client; server settings that need PostgreSQL 14
 * (idle_session_timeout, client_connection_check_interval) or 12 (tcp_user_timeout) are
 * skipped on older servers, where a stopped holder keeps its lock until TCP gives up.
 *
 * `pg` is loaded here; without it this throws ERR_SESSION_FLOCK_PG_MISSING.
 */
export function createPostgresLocks(options?: PostgresLocksOptions): PostgresLocks {
  return new PostgresLockSet(options);
}

/**
 * For `status --postgres`: every session-flock lock of the database, or one namespace's.
 * `schema` false: there is no diagnostics schema (or this role cannot use it), and the
 * statuses are every advisory lock of the database, from pg_locks alone.
 */
export async function listPostgresLocks(options: PostgresLocksOptions, namespace: string | null): Promise<{ statuses: PostgresLockStatus[]; schema: boolean }> {
  loadPg();
  const pool = new ConnectionPool(resolveSettings({ ...options, poolSize: 0, maxConnections: 1 }), true);
  try {
    const { settings } = pool;
    const connection = await pool.forStatement(settings.leaseMs);
    const statuses = await queryLocks(connection, pool.sql, null, namespace, settings.hostname, settings.leaseMs);
    return { statuses, schema: pool.sql.withSchema };
  } finally {
    await pool.close();
  }
}
