import * as net from 'node:net';
import * as path from 'node:path';
import type { Client, QueryResult } from 'pg';
import type { Pg } from './load-pg';
import type { PostgresSettings } from './settings';
import type { Statements } from './sql';

/** CancelRequest code of the frontend/backend protocol. */
const CANCEL_REQUEST_CODE = 80877102;

function socketOf(client: Client): net.Socket | undefined {
  return (client as unknown as { connection?: { stream?: net.Socket } }).connection?.stream;
}

/** A failed connection attempt, naming the server and the cause. */
function connectError(client: Client, error: NodeJS.ErrnoException): Error {
  const { host, port } = client as unknown as { host: string; port: number };
  const where = typeof host === 'string' && host.startsWith('/') ? `${host}/.s.PGSQL.${port}` : `${host}:${port}`;
  // A refused connection to localhost is an AggregateError (IPv6 and IPv4) with an empty message.
  const why = error.message || (error as { errors?: Error[] }).errors?.map((e) => e.message).join('; ') || String(error.code);
  const wrapped = new Error(`cannot connect to PostgreSQL at ${where}: ${why}${error.code && !why.includes(error.code) ? ` (${error.code})` : ''}`, {
    cause: error,
  }) as NodeJS.ErrnoException;
  wrapped.code = error.code ?? 'ECONNECT';
  return wrapped;
}

/**
 * One PostgreSQL session dedicated to one hold or one wait at a time. Tracks
 * whether it can still be trusted (`broken`), tells the hold when it breaks,
 * and heartbeats while watched, because a held connection is otherwise silent
 * and a cut network would go unnoticed.
 */
export class LockConnection {
  /** Why this session can no longer be trusted; null while healthy. */
  broken: Error | null = null;
  /** A cancel request was sent: it may still hit a later statement, so never reuse. */
  cancelled = false;
  private onLost: ((error: Error) => void) | null = null;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private heartbeatDeadline: NodeJS.Timeout | null = null;

  private constructor(
    private readonly client: Client,
    readonly backendPid: number,
    readonly serverVersion: number,
    private readonly settings: PostgresSettings,
  ) {
    client.on('error', (error) => this.fail(error));
    client.on('end', () => this.fail(new Error('the connection to the PostgreSQL server was closed')));
  }

  /** Connects and sets the session's loss-detection settings; bounded by connectionTimeoutMillis. */
  static async open(pg: Pg, settings: PostgresSettings, sql: Statements): Promise<LockConnection> {
    const client = new pg.Client(settings.client);
    // An 'error' before the handlers below are attached must not crash the process.
    const early = (): void => undefined;
    client.on('error', early);
    try {
      await client.connect().catch((error: unknown) => {
        throw connectError(client, error as NodeJS.ErrnoException);
      });
      const seconds = String(Math.max(1, Math.floor(settings.connectionLossMs / 4000)));
      const result = await client.query(sql.session, [seconds, String(settings.connectionLossMs), String(settings.heartbeatMs)]);
      const row = result.rows[0] as { backend_pid: number; version: number };
      client.removeListener('error', early);
      return new LockConnection(client, row.backend_pid, row.version, settings);
    } catch (error) {
      client.removeListener('error', early);
      client.on('error', early);
      void client.end().catch(() => undefined);
      throw error;
    }
  }

  query(text: string, values: unknown[]): Promise<QueryResult> {
    return this.client.query({ text, values });
  }

  /** While held: heartbeats, and `onLost` runs once if the session breaks. */
  watch(onLost: (error: Error) => void): void {
    this.onLost = onLost;
    if (this.broken !== null) {
      this.reportLost();
      return;
    }
    this.scheduleHeartbeat();
  }

  unwatch(): void {
    this.onLost = null;
    if (this.heartbeatTimer !== null) clearTimeout(this.heartbeatTimer);
    if (this.heartbeatDeadline !== null) clearTimeout(this.heartbeatDeadline);
    this.heartbeatTimer = this.heartbeatDeadline = null;
  }

  private scheduleHeartbeat(): void {
    this.heartbeatTimer = setTimeout(() => this.beat(), this.settings.heartbeatMs);
    this.heartbeatTimer.unref();
  }

  private beat(): void {
    this.heartbeatTimer = null;
    if (this.onLost === null || this.broken !== null) return;
    // Our own deadline, never pg's query_timeout: a heartbeat that gets no
    // answer in time means the server may have given the lock away already.
    this.heartbeatDeadline = setTimeout(() => {
      this.fail(new Error(`heartbeat got no answer from the PostgreSQL server within ${this.settings.heartbeatDeadlineMs}ms`));
      this.destroy();
    }, this.settings.heartbeatDeadlineMs);
    this.heartbeatDeadline.unref();
    this.client.query('SELECT 1').then(
      () => {
        if (this.heartbeatDeadline !== null) clearTimeout(this.heartbeatDeadline);
        this.heartbeatDeadline = null;
        if (this.onLost !== null && this.broken === null) this.scheduleHeartbeat();
      },
      (error: Error) => this.fail(error),
    );
  }

  private fail(error: Error): void {
    if (this.broken !== null) return;
    this.broken = error;
    this.reportLost();
  }

  private reportLost(): void {
    const onLost = this.onLost;
    if (onLost === null) return;
    this.unwatch();
    onLost(this.broken!);
  }

  /**
   * Asks the server to cancel this session's running statement, on a
   * separate connection as the protocol requires. Best effort: resolves when
   * the request was sent or could not be; the caller still waits for the
   * statement to settle.
   */
  sendCancel(): Promise<void> {
    this.cancelled = true;
    const { host, port, processID, secretKey } = this.client as unknown as { host: string; port: number; processID: number; secretKey: number };
    return new Promise((resolve) => {
      const socket =
        typeof host === 'string' && host.startsWith('/') ? net.connect(path.join(host, `.s.PGSQL.${port}`)) : net.connect(port, host);
      const packet = Buffer.alloc(16);
      packet.writeInt32BE(16, 0);
      packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
      packet.writeInt32BE(processID, 8);
      packet.writeInt32BE(secretKey, 12);
      socket.setTimeout(this.settings.connectionLossMs, () => socket.destroy());
      socket.once('connect', () => socket.end(packet));
      socket.once('error', () => undefined);
      socket.once('close', () => resolve());
    });
  }

  /** A held or idle connection does not keep the process alive; a wait does (through the core's timer). */
  setKeepsProcessAlive(alive: boolean): void {
    const socket = socketOf(this.client);
    if (alive) socket?.ref();
    else socket?.unref();
  }

  /** Closes the socket now: the server ends the session, and its locks, when it sees the close. */
  destroy(): void {
    this.unwatch();
    if (this.broken === null) this.broken = new Error('the connection was closed by session-flock');
    socketOf(this.client)?.destroy();
  }

  /** Closes politely (Terminate message); never rejects. Keeps the process alive until closed. */
  end(): Promise<void> {
    this.unwatch();
    this.setKeepsProcessAlive(true);
    if (this.broken === null) this.broken = new Error('the connection was closed by session-flock');
    return this.client.end().catch(() => undefined);
  }
}
