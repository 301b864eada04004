import * as net from 'node:net';
import * as path from 'node:path';
import type { Client, QueryResult } from 'pg';
import type { Pg } from './load-pg';
import { serverError, silentServer } from './server-error';
import type { PostgresSettings } from './settings';
import type { Statements } from './sql';

/** CancelRequest code of the frontend/backend protocol. */
const CANCEL_REQUEST_CODE = 80877102;

function socketOf(client: Client): net.Socket | undefined {
  return (client as unknown as { connection?: { stream?: net.Socket } }).connection?.stream;
}

function where(client: Client): string {
  const { host, port } = client as unknown as { host: string; port: number };
  return typeof host === 'string' && host.startsWith('/') ? `${host}/.s.PGSQL.${port}` : `${host}:${port}`;
}

/**
 * One PostgreSQL session of a lock set, shared by any number of holds (advisory locks of
 * different keys stack on one session), or given to one blocking wait at a time, never
 * both. Tracks whether it can still be trusted (`broken`), and when the server last
 * proved it alive: `answeredSentAt`, the send time of the latest statement it answered.
 * The holds on it are a lease from that time (settings.leaseMs).
 */
export class LockConnection {
  /** Why the server session behind this connection can no longer be trusted; null while healthy. */
  broken: Error | null = null;
  /** A cancel request was sent: it may still hit a later statement, so never reuse. */
  cancelled = false;
  /** Running a blocking pg_advisory_lock: nothing else may be queued behind it. */
  waiting = false;
  /** LISTENs for the releasers' wake-ups. */
  listening = false;
  /** Statements sent and not yet answered. */
  inFlight = 0;
  /** Epoch ms: the send time of the latest statement the server answered. */
  answeredSentAt: number;
  /** Epoch ms since the connection has had no holds (for closing spare ones). */
  freeSince = Date.now();
  /** The holds on this connection's server session: each is told once if it breaks. */
  readonly holds = new Map<object, (error: Error) => void>();
  private onBroken: ((connection: LockConnection) => void) | null = null;
  private onNotification: ((payload: string) => void) | null = null;
  private tickTimer: NodeJS.Timeout | null = null;
  private nextBeatAt = 0;
  private beating = false;
  /** Settles when the last statement queued so far has been answered. */
  private tail: Promise<void> = Promise.resolve();

  private constructor(
    private readonly client: Client,
    readonly backendPid: number,
    readonly serverVersion: number,
    private readonly settings: PostgresSettings,
    connectedSentAt: number,
  ) {
    this.answeredSentAt = connectedSentAt;
    client.on('error', (error) => this.fail(serverError(error, `the connection to PostgreSQL at ${where(client)} failed`, settings.maxConnections)));
    client.on('end', () => this.fail(serverError(new Error('the server closed the connection'), `PostgreSQL at ${where(client)}`, settings.maxConnections)));
    client.on('notification', (message: { payload?: string }) => this.onNotification?.(message.payload ?? ''));
  }

  /**
   * Connects and sets the session's loss-detection settings, within `boundMs` (whatever
   * the server does: a listener that accepts and never answers is closed at the bound).
   */
  static async open(pg: Pg, settings: PostgresSettings, sql: Statements, boundMs: number): Promise<LockConnection> {
    const client = new pg.Client({ ...settings.client, connectionTimeoutMillis: Math.max(1, Math.ceil(boundMs)) });
    // An 'error' after a failed or abandoned attempt must not crash the process.
    const ignore = (): void => undefined;
    client.on('error', ignore);
    const startedAt = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        socketOf(client)?.destroy();
        reject(silentServer(`connecting to PostgreSQL at ${where(client)}`, Math.round(boundMs), settings.maxConnections));
      }, Math.max(1, boundMs));
    });
    try {
      const setup = (async () => {
        await client.connect();
        return client.query(sql.session, [String(settings.keepaliveSeconds), String(settings.connectionLossMs), String(settings.heartbeatMs)]);
      })();
      setup.catch(ignore);
      const result = await Promise.race([setup, bound]);
      const row = result.rows[0] as { backend_pid: number; version: number };
      return new LockConnection(client, row.backend_pid, row.version, settings, startedAt);
    } catch (error) {
      socketOf(client)?.destroy();
      void client.end().catch(ignore);
      throw serverError(error, `cannot connect to PostgreSQL at ${where(client)}`, settings.maxConnections);
    } finally {
      clearTimeout(timer);
    }
  }

  /** host:port (or the socket path) of the server. */
  get address(): string {
    return where(this.client);
  }

  /** The pool's hooks: told once when the session breaks; wake-ups received while listening. */
  attach(onBroken: (connection: LockConnection) => void, onNotification: (payload: string) => void): void {
    this.onBroken = onBroken;
    this.onNotification = onNotification;
    this.schedule();
  }

  /**
   * Sends a statement. Unless `boundMs` is Infinity, a statement the server does not answer
   * within it breaks the session and is closed (what it left on the server goes with it).
   */
  query(text: string, values: unknown[], boundMs: number, doing: string): Promise<QueryResult> {
    if (this.broken !== null) return Promise.reject(this.broken);
    // A statement awaited by a caller keeps the process alive until it is answered or bounded.
    if (this.inFlight++ === 0) socketOf(this.client)?.ref();
    let timer: NodeJS.Timeout | undefined;
    if (boundMs !== Infinity) {
      timer = setTimeout(() => {
        this.fail(silentServer(doing, Math.round(boundMs), this.settings.maxConnections));
        this.destroy();
      }, Math.max(1, boundMs));
      timer.unref();
    }
    // One statement at a time, in order (pg queues too, but warns about it): the send time
    // is then the time it really went out, which the lease counts from.
    let sentAt = 0;
    const previous = this.tail;
    let done!: () => void;
    this.tail = new Promise<void>((resolve) => (done = resolve));
    const settled = (): void => {
      clearTimeout(timer);
      if (--this.inFlight === 0) socketOf(this.client)?.unref();
      done();
    };
    return previous
      .then(() => {
        if (this.broken !== null) throw this.broken;
        sentAt = Date.now();
        return this.client.query({ text, values });
      })
      .then(
        (result) => {
          settled();
          if (sentAt > this.answeredSentAt) this.answeredSentAt = sentAt;
          return result;
        },
        (error: unknown) => {
          settled();
          // A statement the server rejected still proves the session alive; a broken one does not.
          const code = (error as { code?: unknown }).code;
          if (this.broken === null && sentAt > 0 && typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && sentAt > this.answeredSentAt) {
            this.answeredSentAt = sentAt;
          }
          throw this.broken ?? serverError(error, doing, this.settings.maxConnections);
        },
      );
  }

  /** True once more time than the lease has passed since the last answered statement was sent. */
  leaseExpired(now = Date.now()): boolean {
    return now - this.answeredSentAt > this.settings.leaseMs;
  }

  /** Breaks the session if its lease has run out; returns whether it is broken. Synchronous. */
  checkLease(now = Date.now()): boolean {
    if (this.broken === null && this.leaseExpired(now)) {
      this.fail(
        silentServer(
          `the lease of ${this.settings.leaseMs}ms ran out (no answered heartbeat sent within it) on PostgreSQL backend ${this.backendPid}`,
          now - this.answeredSentAt,
          this.settings.maxConnections,
        ),
      );
      this.destroy();
    }
    return this.broken !== null;
  }

  /**
   * Heartbeats on absolute time (every heartbeatMs from the last beat's due time, at once
   * after a stalled event loop), one at a time, on every session not in a blocking wait;
   * and the lease, checked at each tick, breaks a session whose server went silent.
   */
  private schedule(): void {
    if (this.broken !== null || this.onBroken === null) return;
    const now = Date.now();
    if (this.nextBeatAt === 0) this.nextBeatAt = now + this.settings.heartbeatMs;
    const leaseEnd = this.answeredSentAt + this.settings.leaseMs + 1;
    const at = this.holds.size > 0 ? Math.min(this.nextBeatAt, leaseEnd) : this.nextBeatAt;
    if (this.tickTimer !== null) clearTimeout(this.tickTimer);
    this.tickTimer = setTimeout(() => this.tick(), Math.max(0, at - now));
    this.tickTimer.unref();
  }

  private tick(): void {
    this.tickTimer = null;
    if (this.broken !== null) return;
    const now = Date.now();
    if (this.holds.size > 0 && this.checkLease(now)) return;
    if (now >= this.nextBeatAt) {
      // Due times stay on the grid; a loop that stalled past several beats sends one now.
      while (this.nextBeatAt <= now) this.nextBeatAt += this.settings.heartbeatMs;
      if (!this.waiting && !this.beating) {
        this.beating = true;
        // Bounded by the lease: no answer by then breaks the session (checkLease would anyway).
        this.query('SELECT 1', [], this.settings.leaseMs, 'heartbeat').then(
          () => {
            this.beating = false;
            if (this.holds.size > 0) this.checkLease();
          },
          () => {
            this.beating = false;
          },
        );
      }
    }
    this.schedule();
  }

  fail(error: Error): void {
    if (this.broken !== null) return;
    this.broken = error;
    if (this.tickTimer !== null) clearTimeout(this.tickTimer);
    this.tickTimer = null;
    const holds = [...this.holds.values()];
    this.holds.clear();
    this.onBroken?.(this);
    for (const lose of holds) lose(error);
  }

  /** Adds a hold (told through `lose` if the session breaks); false if already broken. */
  addHold(hold: object, lose: (error: Error) => void): boolean {
    if (this.broken !== null) return false;
    this.holds.set(hold, lose);
    // The lease now matters: the next tick checks it.
    if (this.holds.size === 1) this.schedule();
    return true;
  }

  removeHold(hold: object): void {
    if (this.holds.delete(hold) && this.holds.size === 0) this.freeSince = Date.now();
  }

  /**
   * Asks the server to cancel the statement this connection is running, on a separate connection
   * as the protocol requires, within `boundMs`. Best effort: resolves when the request was
   * sent or could not be; the caller still waits for the statement to settle.
   */
  sendCancel(boundMs: number): Promise<void> {
    this.cancelled = true;
    const { host, port, processID, secretKey } = this.client as unknown as { host: string; port: number; processID: number; secretKey: number };
    return new Promise((resolve) => {
      const socket = typeof host === 'string' && host.startsWith('/') ? net.connect(path.join(host, `.s.PGSQL.${port}`)) : net.connect(port, host);
      const packet = Buffer.alloc(16);
      packet.writeInt32BE(16, 0);
      packet.writeInt32BE(CANCEL_REQUEST_CODE, 4);
      packet.writeInt32BE(processID, 8);
      packet.writeInt32BE(secretKey, 12);
      socket.setTimeout(boundMs, () => socket.destroy());
      socket.unref();
      socket.once('connect', () => socket.end(packet));
      socket.once('error', () => undefined);
      socket.once('close', () => resolve());
    });
  }

  /** A connection with holds, or at rest, does not keep the process alive; a statement awaited by a caller does. */
  setKeepsProcessAlive(alive: boolean): void {
    const socket = socketOf(this.client);
    if (alive) socket?.ref();
    else socket?.unref();
  }

  /** Closes the socket now: the server ends the session, and its locks, when it sees the close. */
  destroy(): void {
    this.fail(new Error('the connection was closed by session-flock'));
    socketOf(this.client)?.destroy();
  }

  /** Closes politely (Terminate message) within `boundMs`, else destroys; never rejects. */
  end(boundMs: number): Promise<void> {
    this.fail(new Error('the connection was closed by session-flock'));
    this.setKeepsProcessAlive(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        socketOf(this.client)?.destroy();
        resolve();
      }, boundMs);
      this.client.end().then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        () => {
          clearTimeout(timer);
          resolve();
        },
      );
    });
  }
}
