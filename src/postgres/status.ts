// What inspect(), listLocks() and `status --postgres` report (types only, no pg types: the
// public declarations must not need @types/pg).

export type PostgresLockMode = 'shared' | 'exclusive';

/** One session holding or awaiting an advisory lock, as the server sees it plus its diagnostics row. */
export interface PostgresLockSession {
  /** The server process of the session (pg_locks.pid): what pg_terminate_backend takes. */
  backendPid: number;
  mode: PostgresLockMode;
  /** The client's pid and host name: its own report (diagnostics row, else application_name); null when unknown. */
  pid: number | null;
  hostname: string | null;
  owner: string | null;
  process: string | null;
  /** `address:port` of the client as the server sees it; 'local' for a Unix socket; null when hidden from this role. */
  clientAddress: string | null;
  /** Epoch ms the lock was granted (holders) or the wait began (waiters), from the diagnostics row. */
  since: number | null;
  /** How long it has been held or awaited, by the server's clock. */
  ageMs: number | null;
  /** Epoch ms the session connected. */
  connectedAt: number | null;
  /** The session belongs to this process (same host name and pid). */
  sameProcess: boolean;
}

export interface PostgresLockStatus {
  /** The key's text (from a diagnostics row, or the key inspect() was given); null when no row names it. */
  key: string | null;
  namespace: string | null;
  /** The advisory-lock key (signed bigint, decimal) that pg_locks shows. */
  lockKey: string;
  state: 'free' | 'held';
  mode: PostgresLockMode | null;
  holders: PostgresLockSession[];
  waiters: PostgresLockSession[];
  /** The first holder's owner label. */
  owner: string | null;
  acquiredAt: number | null;
  heldForMs: number | null;
  /** Human-readable observations (a holder without a diagnostics row, ...). */
  notes: string[];
}
