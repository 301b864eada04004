/**
 * Every statement the PostgreSQL backend sends. Each lock operation is one
 * round trip: the lock, the fencing token and the diagnostics row travel in
 * one statement.
 *
 * Fencing token: nextval() of one sequence (CACHE 1), called in the statement
 * that takes the lock, after the lock (the materialized CTE runs first). Every
 * grant of a key happens after the previous holder's nextval() (which ran while
 * it held the lock), so tokens strictly increase per key across all hosts
 * (they increase globally, so they are not dense per key). A sequence needs no
 * row lock and WAL-logs 32 values ahead, so the grant does not wait for a
 * commit flush, and after a server crash it resumes past every value it handed
 * out. Shared holders get tokens too, each unique, in grant order.
 *
 * The diagnostics table is UNLOGGED (no WAL, emptied by a crash): diagnostics only,
 * joined with pg_locks for every reading, never read to decide anything.
 *
 * Without the schema (a role without CREATE on the database, and nobody created it), the
 * token is txid_current() taken the same way: transaction ids also strictly increase
 * across the cluster (each grant's transaction commits before the unlock that lets the
 * next one in), at the price of a commit record per grant; holders are then listed from
 * pg_locks and pg_stat_activity alone.
 *
 * The lock statements return pg_backend_pid(): a session that answers from another backend
 * than it connected to is behind a transaction-mode pooler, and is refused.
 *
 * Every unlock sends pg_notify(WAKE_CHANNEL, key) in the same statement: the wake-up of
 * waits that are not blocked on the server (see advisory.ts).
 */

/** The channel of the releasers' wake-ups (payload: the lock key, decimal). */
export const WAKE_CHANNEL = 'session_flock_unlocked';


export interface Statements {
  /** Whether these statements use the schema (diagnostics rows, the token sequence). */
  withSchema: boolean;
  setup: string;
  exists: string;
  sweep: string;
  session: string;
  listen: string;
  /** $1 key; with the schema, $2..$8 the diagnostics row and $9 whether to keep the row when not granted. */
  try: { shared: string; exclusive: string };
  /** $1 key, $2 lock_timeout. */
  wait: { shared: string; exclusive: string };
  /** $1 key. */
  release: { shared: string; exclusive: string };
  /** $1 key: drops the calling server session's row of a wait that ended without a grant. */
  forget: string | null;
  locks: string;
}

const cache = new Map<string, Statements>();

export function statements(schema: string, withSchema = true): Statements {
  const cacheKey = `${schema}:${withSchema}`;
  let s = cache.get(cacheKey);
  if (s !== undefined) return s;
  const holders = `"${schema}".holders`;
  const token = `'"${schema}".fencing_token'`;
  const row = `(lock_key, backend_pid, namespace, key, mode, owner, hostname, pid, process, granted, since)`;
  const upsert = `ON CONFLICT (lock_key, backend_pid) DO UPDATE SET namespace = EXCLUDED.namespace, key = EXCLUDED.key, mode = EXCLUDED.mode,
      owner = EXCLUDED.owner, hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, process = EXCLUDED.process,
      granted = EXCLUDED.granted, since = EXCLUDED.since`;
  const notify = `pg_notify('${WAKE_CHANNEL}', $1::bigint::text)`;
  // A failed try keeps its row only before a blocking wait on the same session (status names the waiter from it).
  const tryLock = (fn: string): string =>
    withSchema
      ? `WITH l AS MATERIALIZED (SELECT ${fn}($1::bigint) AS granted),
    d AS (INSERT INTO ${holders} ${row}
      SELECT $1::bigint, pg_backend_pid(), $2, $3, $4, $5, $6, $7, $8, l.granted, clock_timestamp() FROM l WHERE l.granted OR $9::boolean ${upsert})
    SELECT l.granted, CASE WHEN l.granted THEN nextval(${token}) END AS token, pg_backend_pid() AS backend_pid FROM l`
      : `WITH l AS MATERIALIZED (SELECT ${fn}($1::bigint) AS granted)
    SELECT l.granted, CASE WHEN l.granted THEN txid_current() END AS token, pg_backend_pid() AS backend_pid FROM l`;
  const waitLock = (fn: string): string =>
    withSchema
      ? `WITH t AS MATERIALIZED (SELECT set_config('lock_timeout', $2, false)),
    l AS MATERIALIZED (SELECT ${fn}($1::bigint) FROM t),
    n AS MATERIALIZED (SELECT nextval(${token}) AS token FROM l),
    d AS (UPDATE ${holders} SET granted = true, since = clock_timestamp()
      WHERE lock_key = $1::bigint AND backend_pid = pg_backend_pid() AND EXISTS (SELECT 1 FROM n))
    SELECT token, pg_backend_pid() AS backend_pid FROM n`
      : `WITH t AS MATERIALIZED (SELECT set_config('lock_timeout', $2, false)),
    l AS MATERIALIZED (SELECT ${fn}($1::bigint) FROM t)
    SELECT txid_current() AS token, pg_backend_pid() AS backend_pid FROM l`;
  const release = (fn: string): string =>
    withSchema
      ? `WITH d AS (DELETE FROM ${holders} WHERE lock_key = $1::bigint AND backend_pid = pg_backend_pid())
    SELECT ${fn}($1::bigint) AS released, ${notify}`
      : `SELECT ${fn}($1::bigint) AS released, ${notify}`;
  const locksFrom = `l AS (
        SELECT ((classid::bigint << 32) | objid::bigint) AS lock_key, pid AS backend_pid, mode, granted
        FROM pg_locks
        WHERE locktype = 'advisory' AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`;
  const activity = `host(a.client_addr) AS client_addr, a.client_port, a.application_name,
        (extract(epoch FROM a.backend_start) * 1000)::float8 AS backend_start`;
  s = {
    withSchema,
    // One transaction, serialized by a transaction-level advisory lock, because
    // concurrent CREATE ... IF NOT EXISTS can still fail on the catalog's unique index.
    setup: `BEGIN;
      SELECT pg_advisory_xact_lock(-6073446322447437349);
      CREATE SCHEMA IF NOT EXISTS "${schema}";
      CREATE SEQUENCE IF NOT EXISTS "${schema}".fencing_token AS bigint CACHE 1;
      CREATE UNLOGGED TABLE IF NOT EXISTS ${holders} (
        lock_key bigint NOT NULL,
        backend_pid integer NOT NULL,
        namespace text NOT NULL,
        key text NOT NULL,
        mode text NOT NULL,
        owner text,
        hostname text,
        pid integer,
        process text,
        granted boolean NOT NULL,
        since timestamptz NOT NULL,
        PRIMARY KEY (lock_key, backend_pid)
      );
      COMMIT`,
    // Usable, not just present: a schema another role created without granting it to us counts as missing.
    exists: `SELECT CASE
        WHEN NOT coalesce((SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = '${schema}'), false) THEN false
        WHEN to_regclass('"${schema}".holders') IS NULL OR to_regclass('"${schema}".fencing_token') IS NULL THEN false
        ELSE has_table_privilege('"${schema}".holders', 'INSERT, UPDATE, DELETE, SELECT') AND has_sequence_privilege('"${schema}".fencing_token', 'USAGE')
      END AS ready`,
    // Drops rows of dead backends; run when a connection opens.
    sweep: `DELETE FROM ${holders} h WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = h.backend_pid)`,
    // Server-side loss detection for the connection's server session; guarded by version so older servers still connect.
    session: `SELECT pg_backend_pid() AS backend_pid, current_setting('server_version_num')::int AS version,
      set_config('statement_timeout', '0', false), set_config('lock_timeout', '0', false),
      set_config('tcp_keepalives_idle', $1, false), set_config('tcp_keepalives_interval', $1, false),
      set_config('tcp_keepalives_count', '3', false),
      CASE WHEN current_setting('server_version_num')::int >= 120000 THEN set_config('tcp_user_timeout', $2, false) END,
      CASE WHEN current_setting('server_version_num')::int >= 140000 THEN set_config('idle_session_timeout', $2, false) END,
      CASE WHEN current_setting('server_version_num')::int >= 140000 THEN set_config('client_connection_check_interval', $3, false) END`,
    listen: `LISTEN ${WAKE_CHANNEL}`,
    try: { exclusive: tryLock('pg_try_advisory_lock'), shared: tryLock('pg_try_advisory_lock_shared') },
    wait: { exclusive: waitLock('pg_advisory_lock'), shared: waitLock('pg_advisory_lock_shared') },
    release: { exclusive: release('pg_advisory_unlock'), shared: release('pg_advisory_unlock_shared') },
    forget: withSchema ? `DELETE FROM ${holders} WHERE lock_key = $1::bigint AND backend_pid = pg_backend_pid()` : null,
    // Holders and waiters: pg_locks is the truth, pg_stat_activity says who the
    // connection is, the diagnostics row adds the key's text, owner, host and pid.
    // $1: one lock key or null; $2: one namespace or null (every namespace).
    locks: withSchema
      ? `WITH ${locksFrom},
      keys AS (
        SELECT DISTINCT l.lock_key FROM l JOIN ${holders} h ON h.lock_key = l.lock_key AND h.backend_pid = l.backend_pid
        WHERE ($2::text IS NULL OR h.namespace = $2::text) AND ($1::bigint IS NULL OR l.lock_key = $1::bigint)
        UNION SELECT $1::bigint WHERE $1::bigint IS NOT NULL)
      SELECT l.lock_key::text AS lock_key, l.backend_pid, l.mode, l.granted, ${activity},
        h.namespace, h.key, h.owner, h.hostname, h.pid, h.process, h.mode AS requested_mode,
        (extract(epoch FROM h.since) * 1000)::float8 AS since,
        (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now
      FROM l JOIN keys USING (lock_key)
      LEFT JOIN pg_stat_activity a ON a.pid = l.backend_pid
      LEFT JOIN ${holders} h ON h.lock_key = l.lock_key AND h.backend_pid = l.backend_pid
      ORDER BY l.lock_key, l.granted DESC, h.since`
      : // No rows to name keys or namespaces: every advisory lock of the database ($2 cannot filter).
        `WITH ${locksFrom}
      SELECT l.lock_key::text AS lock_key, l.backend_pid, l.mode, l.granted, ${activity},
        NULL::text AS namespace, NULL::text AS key, NULL::text AS owner, NULL::text AS hostname, NULL::int AS pid, NULL::text AS process,
        NULL::text AS requested_mode,
        (extract(epoch FROM CASE WHEN l.granted THEN a.state_change ELSE a.query_start END) * 1000)::float8 AS since,
        (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now
      FROM l LEFT JOIN pg_stat_activity a ON a.pid = l.backend_pid
      WHERE ($1::bigint IS NULL OR l.lock_key = $1::bigint) AND ($2::text IS NULL OR $2::text IS NOT NULL)
      ORDER BY l.lock_key, l.granted DESC, a.query_start`,
  };
  cache.set(cacheKey, s);
  return s;
}
