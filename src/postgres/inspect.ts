import type { HolderInfo } from '../core/errors';
import type { LockConnection } from './connection';
import type { Statements } from './sql';
import type { PostgresLockSession, PostgresLockStatus } from './status';

/** The note of every status read without the diagnostics schema. */
export const NO_SCHEMA_NOTE =
  'no session-flock schema on this database (no CREATE): holders and waiters are listed from pg_locks alone, without key names, owners or client pids, and waits woken by notification are not shown';

interface LockRow {
  lock_key: string;
  backend_pid: number;
  mode: string;
  granted: boolean;
  client_addr: string | null;
  client_port: number | null;
  application_name: string | null;
  backend_start: number | null;
  namespace: string | null;
  key: string | null;
  owner: string | null;
  hostname: string | null;
  pid: number | null;
  process: string | null;
  since: number | null;
  now: number;
}

/** `session-flock <host> <pid>`, the application_name this library sets. */
function fromApplicationName(name: string | null): { hostname: string; pid: number } | null {
  const match = /^session-flock (.+) (\d+)$/.exec(name ?? '');
  return match === null ? null : { hostname: match[1], pid: Number(match[2]) };
}

function session(row: LockRow, hostname: string): PostgresLockSession {
  const named = row.pid !== null ? { hostname: row.hostname, pid: row.pid } : fromApplicationName(row.application_name);
  const pid = named?.pid ?? null;
  const host = named?.hostname ?? null;
  return {
    backendPid: row.backend_pid,
    mode: row.mode === 'ShareLock' ? 'shared' : 'exclusive',
    pid,
    hostname: host,
    owner: row.owner,
    process: row.process,
    clientAddress: row.client_addr === null ? (row.client_port === -1 ? 'local' : null) : `${row.client_addr}:${row.client_port}`,
    since: row.since,
    ageMs: row.since === null ? null : Math.max(0, row.now - row.since),
    connectedAt: row.backend_start,
    sameProcess: pid === process.pid && host === hostname,
  };
}

function emptyStatus(lockKey: string, key: string | null, namespace: string | null): PostgresLockStatus {
  return { key, namespace, lockKey, state: 'free', mode: null, holders: [], waiters: [], owner: null, acquiredAt: null, heldForMs: null, notes: [] };
}

/** Holders and waiters from pg_locks + pg_stat_activity (+ diagnostics rows), one status per key. */
export async function queryLocks(
  connection: LockConnection,
  sql: Statements,
  lockKey: bigint | null,
  namespace: string | null,
  hostname: string,
  boundMs: number,
): Promise<PostgresLockStatus[]> {
  const { rows } = await connection.query(sql.locks, [lockKey === null ? null : lockKey.toString(), namespace], boundMs, 'listing advisory locks');
  const byKey = new Map<string, PostgresLockStatus>();
  for (const row of rows as LockRow[]) {
    let status = byKey.get(row.lock_key);
    if (status === undefined) {
      status = emptyStatus(row.lock_key, null, null);
      byKey.set(row.lock_key, status);
    }
    if (status.key === null && row.key !== null) {
      status.key = row.key;
      status.namespace = row.namespace;
    }
    const s = session(row, hostname);
    if (!sql.withSchema) {
      if (status.notes.length === 0) status.notes.push(NO_SCHEMA_NOTE);
    } else if (row.key === null) {
      status.notes.push(`backend ${row.backend_pid} ${row.granted ? 'holds' : 'awaits'} it without a session-flock diagnostics row (another client, or a row not written yet)`);
    }
    if (row.granted) {
      status.holders.push(s);
      status.state = 'held';
      status.mode = s.mode;
    } else status.waiters.push(s);
  }
  for (const status of byKey.values()) {
    const first = status.holders[0];
    if (first !== undefined) {
      status.owner = first.owner;
      status.acquiredAt = first.since;
      status.heldForMs = first.ageMs;
    }
  }
  return [...byKey.values()];
}

export function statusOfKey(statuses: PostgresLockStatus[], lockKey: bigint, key: string, namespace: string): PostgresLockStatus {
  const status = statuses.find((s) => s.lockKey === lockKey.toString()) ?? emptyStatus(lockKey.toString(), key, namespace);
  status.key ??= key;
  status.namespace ??= namespace;
  return status;
}

/** The holder a LockTimeoutError names: the first holder the server reports. */
export function holderInfo(status: PostgresLockStatus | null): HolderInfo | null {
  const first = status?.holders[0];
  if (first === undefined) return null;
  return {
    pid: first.pid,
    hostname: first.hostname,
    owner: first.owner,
    process: [first.process, `backend ${first.backendPid}${first.clientAddress ? ` from ${first.clientAddress}` : ''}`].filter(Boolean).join(', '),
    mode: first.mode,
    acquiredAt: first.since,
    heldForMs: first.ageMs,
    sameProcess: first.sameProcess,
  };
}
