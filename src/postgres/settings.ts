import type { ClientConfig } from 'pg';
import type { PostgresLocksOptions } from './options';
import { invalidArgType, invalidArgValue, outOfRange } from '../core/errors';
import { hostName } from '../core/host';
import { optionsObject } from '../core/options';

export interface PostgresSettings {
  namespace: string;
  schema: string;
  client: ClientConfig;
  /** What the server is told: idle_session_timeout and tcp_user_timeout. */
  connectionLossMs: number;
  /** TCP keepalive idle time and probe interval the server is told (3 probes), in seconds. */
  keepaliveSeconds: number;
  /** The earliest the server can end a session the client went silent on (see leaseMs). */
  serverBoundMs: number;
  /**
   * How long a hold stays believed after the last answered statement on its connection was
   * sent: half of connectionLossMs, so shorter than serverBoundMs by `leaseMarginMs`.
   */
  leaseMs: number;
  leaseMarginMs: number;
  heartbeatMs: number;
  /** The bound of tryAcquire, timeoutMs 0 and a holder lookup: one connect and one round trip. */
  quickMs: number;
  poolSize: number;
  maxConnections: number;
  hostname: string;
}

const OWN_KEYS = new Set(['namespace', 'schema', 'connectionLossMs', 'poolSize', 'maxConnections']);
/** pg ClientConfig fields passed through; query_timeout and statement_timeout are refused with a reason below. */
const CLIENT_KEYS = ['connectionString', 'host', 'port', 'user', 'password', 'database', 'ssl', 'application_name', 'connectionTimeoutMillis', 'options'];
const KNOWN_KEYS = new Set([...OWN_KEYS, ...CLIENT_KEYS, 'query_timeout', 'statement_timeout']);

/** PostgreSQL's application_name limit (NAMEDATALEN - 1 bytes). */
function applicationName(hostname: string): string {
  const name = `session-flock ${hostname} ${process.pid}`;
  return Buffer.from(name).subarray(0, 63).toString('utf8').replace(/\uFFFD$/, '');
}

export function resolveSettings(options: PostgresLocksOptions | undefined): PostgresSettings {
  const o = optionsObject(options, KNOWN_KEYS);
  const namespace = o.namespace ?? 'session-flock';
  if (typeof namespace !== 'string') throw invalidArgType('options.namespace', 'of type string', namespace);
  if (namespace.length === 0) throw invalidArgValue('options.namespace', namespace, 'must be a non-empty string');
  const schema = o.schema ?? 'session_flock';
  if (typeof schema !== 'string') throw invalidArgType('options.schema', 'of type string', schema);
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw invalidArgValue('options.schema', schema, 'must be a lower-case SQL identifier');
  const connectionLossMs = o.connectionLossMs ?? 10_000;
  if (typeof connectionLossMs !== 'number') throw invalidArgType('options.connectionLossMs', 'of type number', connectionLossMs);
  if (!Number.isInteger(connectionLossMs) || connectionLossMs < 2000 || connectionLossMs > 3_600_000) {
    throw outOfRange('options.connectionLossMs', 'an integer from 2000 to 3600000', connectionLossMs);
  }
  const poolSize = o.poolSize ?? 2;
  if (typeof poolSize !== 'number') throw invalidArgType('options.poolSize', 'of type number', poolSize);
  if (!Number.isInteger(poolSize) || poolSize < 0 || poolSize > 100) throw outOfRange('options.poolSize', 'an integer from 0 to 100', poolSize);
  const maxConnections = o.maxConnections ?? 10;
  if (typeof maxConnections !== 'number') throw invalidArgType('options.maxConnections', 'of type number', maxConnections);
  if (!Number.isInteger(maxConnections) || maxConnections < 1 || maxConnections > 1000) {
    throw outOfRange('options.maxConnections', 'an integer from 1 to 1000', maxConnections);
  }
  if (o.query_timeout !== undefined || o.statement_timeout !== undefined) {
    // pg's query_timeout rejects the promise while the server keeps waiting and
    // later grants the lock to a connection nobody watches; statement_timeout
    // would end every wait. The acquire budget is the only timeout.
    throw invalidArgValue('options', o.query_timeout !== undefined ? 'query_timeout' : 'statement_timeout', 'cannot be set: use timeoutMs of acquire()');
  }
  const client: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(o)) if (!OWN_KEYS.has(key) && value !== undefined) client[key] = value;
  const hostname = hostName();
  client.application_name ??= applicationName(hostname);
  client.keepAlive = true;
  client.keepAliveInitialDelayMillis ??= Math.floor(connectionLossMs / 4);
  // A connection attempt to an unreachable server must not hang for the OS's SYN retries.
  client.connectionTimeoutMillis ??= connectionLossMs;
  // The lease arithmetic (README, "Across hosts"): the server ends a silent session after
  // idle_session_timeout or tcp_user_timeout (both connectionLossMs) or failed keepalives
  // (idle + 3 probes, 4 × keepaliveSeconds), all counted from its last exchange with the
  // client, which is never before the client sent the statement it answered. The lease runs
  // from that send, so it ends `leaseMarginMs` before the server can free the lock.
  const keepaliveSeconds = Math.max(1, Math.floor(connectionLossMs / 4000));
  const serverBoundMs = Math.min(connectionLossMs, 4000 * keepaliveSeconds);
  const leaseMs = Math.floor(connectionLossMs / 2);
  return {
    namespace,
    schema,
    client: client as ClientConfig,
    connectionLossMs,
    keepaliveSeconds,
    serverBoundMs,
    leaseMs,
    leaseMarginMs: serverBoundMs - leaseMs,
    heartbeatMs: Math.floor(leaseMs / 3),
    quickMs: Math.min(leaseMs, 2000),
    poolSize: Math.min(poolSize, maxConnections),
    maxConnections,
    hostname,
  };
}
