/**
 * The one error class for a failure of the PostgreSQL server or of the connection to it
 * (refused, too many clients, authentication, a missing database, a server that stopped
 * answering, a restart). Exported from both entry points, so `instanceof` works across
 * them. `code` is the SQLSTATE (e.g. '53300') or the errno (e.g. 'ECONNREFUSED'); `cause`
 * is pg's (or Node's) own error; the message says what to change.
 */
export class LockServerError extends Error {
  override readonly name = 'LockServerError';
  constructor(
    readonly code: string,
    message: string,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
  }
}

/** What to change, by SQLSTATE or errno; a default for the rest. */
function advice(code: string, maxConnections: number): string {
  switch (code) {
    case '53300':
      return `the server has no connection slot left: raise max_connections on the server, or lower maxConnections of createPostgresLocks (now ${maxConnections}, per lock set and process)`;
    case '28P01':
    case '28000':
      return 'check the user and password of the connection settings, and pg_hba.conf on the server';
    case '3D000':
      return 'the database does not exist: create it, or fix the database of the connection settings';
    case '42501':
      return 'the role lacks a privilege it needs: see "Across hosts" in the README for the grants';
    case '57P01':
    case '57P02':
    case '57P03':
      return 'the server is shutting down or starting up: wait for it, or check its log';
    case 'ECONNREFUSED':
      return 'nothing listens at that address: check that the server runs, and the host and port';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve: fix the host of the connection settings';
    case 'ETIMEDOUT':
      return 'the server did not answer in time: check the network path and the server (stopped, overloaded, or not PostgreSQL)';
    default:
      return 'check the server and the connection settings';
  }
}

/** A pg or socket error as a LockServerError; one already typed passes through. */
export function serverError(error: unknown, doing: string, maxConnections: number): LockServerError {
  if (error instanceof LockServerError) return error;
  const e = error as NodeJS.ErrnoException & { errors?: Error[] };
  // A refused connection to localhost is an AggregateError (IPv6 and IPv4) with an empty message.
  const why = e?.message || e?.errors?.map((x) => x.message).join('; ') || String(error);
  const code = typeof e?.code === 'string' ? e.code : 'ECONNRESET';
  return new LockServerError(code, `${doing}: ${why} (${code}); ${advice(code, maxConnections)}`, error);
}

/** A statement or connection attempt that got no answer within `ms`. */
export function silentServer(doing: string, ms: number, maxConnections: number): LockServerError {
  return new LockServerError('ETIMEDOUT', `${doing}: the PostgreSQL server did not answer within ${ms}ms; ${advice('ETIMEDOUT', maxConnections)}`);
}

/** Code of the refusal of a transaction- or statement-mode pooler (SQLSTATE feature_not_supported). */
export const POOLER_CODE = '0A000';

/** Two statements of one session answered by different backends, or two sessions by one. */
export function poolerRefused(where: string, backendPid: number): LockServerError {
  return new LockServerError(
    POOLER_CODE,
    `the PostgreSQL sessions at ${where} are not sessions: backend ${backendPid} answered for two of them, so a transaction- or statement-mode pooler (such as pgbouncer with pool_mode = transaction) is in between, ` +
      'and advisory locks belong to a server session; connect to PostgreSQL directly, or through a session-mode pool',
  );
}

/** Failures a wait outlives: it reconnects and waits again within its budget. */
export function isTransient(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  // pg's and the socket's errors reach here typed (serverError gives a code to those without); no code is ours (a closed lock set).
  if (typeof code !== 'string') return false;
  return /^(57P0[123]|08...|53300|53000|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ECONNABORTED|EAI_AGAIN)$/.test(code);
}
