// The options of createPostgresLocks() (no pg types: the public declarations must not need @types/pg).

/**
 * Where to connect (pg's ClientConfig fields, passed to pg.Client as given)
 * plus this library's own settings. Not accepted: query_timeout and
 * statement_timeout (the acquire budget is the only timeout; pg's
 * query_timeout leaves the server waiting and a later grant leaks).
 */
export interface PostgresLocksOptions {
  /** postgres://user:password@host:port/database?... (or the separate fields below; PG* environment variables apply as in pg). */
  connectionString?: string;
  host?: string;
  port?: number;
  user?: string;
  password?: string | (() => string | Promise<string>);
  database?: string;
  /** As pg's `ssl`: true, or tls.connect options. */
  ssl?: boolean | Record<string, unknown>;
  /** Default `session-flock <hostname> <pid>` (status and inspect read the holder's host and pid from it when no diagnostics row does). */
  application_name?: string;
  /** Bound of one connection attempt; default connectionLossMs. */
  connectionTimeoutMillis?: number;
  /** Startup options, as pg's `options` ("-c name=value ..."). */
  options?: string;
  /** Keys are hashed within it; default 'session-flock'. */
  namespace?: string;
  /** Schema of the diagnostics table and the fencing sequence, created if missing; default 'session_flock'. */
  schema?: string;
  /**
   * The bound, in ms, for a lost holder to be noticed; default 10 000 (2000 to 3 600 000).
   * The server frees the lock of a holder whose host died, whose network is cut or whose
   * process is stopped within about this long (idle_session_timeout and tcp_user_timeout
   * are set to it, TCP keepalives to a quarter of it). A holder's lease is half of it: its
   * `held` reads false and its `signal` aborts once more than that has passed since the
   * last answered heartbeat of its connection was sent (heartbeats every sixth).
   */
  connectionLossMs?: number;
  /** Connections without holds kept warm for the next wait; default 2 (at most maxConnections). */
  poolSize?: number;
  /**
   * The most server connections this lock set ever opens, whatever the number of holds and
   * waits (a hard cap; default 10, 1 to 1000). Holds share connections; up to
   * maxConnections - 1 waits block on the server at once, the rest are woken by the
   * releaser's notification (or retry within 1 s).
   */
  maxConnections?: number;
}
