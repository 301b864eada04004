import { LockConnection } from './connection';
import { loadPg } from './load-pg';
import { LockServerError, poolerRefused, serverError } from './server-error';
import type { PostgresSettings } from './settings';
import { statements, type Statements } from './sql';

/** too_many_connections: the server's max_connections, or the role's CONNECTION LIMIT. */
const TOO_MANY_CONNECTIONS = '53300';

/**
 * The connections of one lock set: at most settings.maxConnections, whatever the number of
 * holds and waits. Holds share sessions (advisory locks of different keys stack on one),
 * short statements (tries, unlocks, heartbeats, lookups) go to any session not in a
 * blocking wait, and a blocking wait gets a session of its own with no holds, so an unlock
 * never queues behind a wait. One session is always left for short statements. Never a
 * shared pg.Pool: a session shared with other work could lose its locks to someone
 * else's disconnect.
 */
export class ConnectionPool {
  sql: Statements;
  readonly connections = new Set<LockConnection>();
  private opening: Promise<LockConnection>[] = [];
  private schemaReady: Promise<void> | null = null;
  private listenReady: Promise<void> | null = null;
  private readonly wakeups = new Map<string, Set<() => void>>();
  closed = false;
  /** The pooler check of the first sessions was made. */
  private poolerChecked = false;

  /** A session was opened once: a refused connection after that is a restart to outlive, before it a setting to fix. */
  everConnected = false;

  /** Whether the diagnostics schema is in use; false without CREATE (holders from pg_locks alone). */
  schemaExists = false;

  constructor(
    readonly settings: PostgresSettings,
    private readonly readOnly = false,
  ) {
    this.sql = statements(settings.schema);
  }

  private closedError(): Error {
    return new Error(`this PostgreSQL lock set (namespace ${this.settings.namespace}) was closed`);
  }

  private get waitCount(): number {
    let n = 0;
    for (const c of this.connections) if (c.waiting) n++;
    return n;
  }

  private get total(): number {
    return this.connections.size + this.opening.length;
  }

  /**
   * A session for short statements, with the schema settled, within `boundMs`: the one of
   * the fewest statements in flight among those with holds (so sessions without holds stay
   * free for blocking waits), else any not waiting, else a new one while under the cap.
   */
  async forStatement(boundMs: number): Promise<LockConnection> {
    const deadline = Date.now() + boundMs;
    for (;;) {
      if (this.closed) throw this.closedError();
      let best: LockConnection | null = null;
      for (const c of this.connections) {
        if (c.waiting || c.broken !== null) continue;
        if (best === null || (c.holds.size > 0 && best.holds.size === 0) || (c.holds.size > 0 === best.holds.size > 0 && c.inFlight < best.inFlight)) best = c;
      }
      if (best !== null) {
        await this.ensureSchema(best, deadline - Date.now());
        if (best.broken === null) return best;
        continue;
      }
      // None open yet (or, briefly, every open one in a blocking wait): a session being opened
      // serves as well as a new one, and asks the server for one slot less.
      const pending = this.opening[0] ?? (this.total < this.settings.maxConnections ? this.openOne(deadline - Date.now()) : undefined);
      if (pending === undefined) throw new LockServerError('ECONNRESET', 'no PostgreSQL connection is usable; every one is in a blocking wait');
      await pending;
    }
  }

  /**
   * A session of its own for one blocking wait (no holds, nothing in flight, not the
   * listener), opened if need be; null when the cap leaves none (the wait is then woken by
   * notification). The caller gives it back with endWait().
   */
  async forWait(boundMs: number): Promise<LockConnection | null> {
    if (this.closed) throw this.closedError();
    if (this.waitCount >= this.settings.maxConnections - 1) return null;
    // The first session is opened by one caller, for statements; the others wait for it
    // instead of racing the server for slots it may not have.
    if (this.connections.size === 0) await this.forStatement(boundMs);
    // A session stays for statements (unlocks, tries, heartbeats) whatever the server's own cap.
    let open = 0;
    for (const c of this.connections) if (!c.waiting && c.broken === null) open++;
    for (const c of this.connections) {
      if (open < 2) break;
      if (!c.waiting && c.broken === null && !c.cancelled && !c.listening && c.holds.size === 0 && c.inFlight === 0) {
        c.waiting = true;
        try {
          // A session opened alongside another (the pooler check) may precede the schema's setup.
          await this.ensureSchema(c, boundMs);
        } catch (error) {
          c.waiting = false;
          throw error;
        }
        if (c.broken === null) return c;
        c.waiting = false;
        return null;
      }
    }
    // Keep one slot for short statements, counting sessions being opened.
    if (this.total >= this.settings.maxConnections || (this.connections.size === 0 && this.settings.maxConnections < 2)) return null;
    let connection: LockConnection;
    try {
      connection = await this.openOne(boundMs);
    } catch (error) {
      // The server's own cap (max_connections, a role's CONNECTION LIMIT) below ours: the wait
      // is served by notification on the sessions already open.
      if ((error as { code?: string }).code === TOO_MANY_CONNECTIONS && (this.connections.size > 0 || this.opening.length > 0)) return null;
      throw error;
    }
    if (connection.waiting || connection.holds.size > 0 || connection.inFlight > 0 || connection.broken !== null || this.waitCount >= this.settings.maxConnections - 1) return null;
    await this.ensureSchema(connection, boundMs);
    if (connection.waiting || connection.holds.size > 0 || connection.inFlight > 0 || connection.broken !== null) return null;
    connection.waiting = true;
    return connection;
  }

  /** A session that holds locks and takes statements (the fewest in flight); null if none. */
  holding(): LockConnection | null {
    let best: LockConnection | null = null;
    for (const c of this.connections) {
      if (c.waiting || c.broken !== null || c.holds.size === 0) continue;
      if (best === null || c.inFlight < best.inFlight) best = c;
    }
    return best;
  }

  /** An open session for a lookup, not in a blocking wait, the most recently answered; null if none. */
  anyAnswering(): LockConnection | null {
    let best: LockConnection | null = null;
    for (const c of this.connections) {
      if (c.waiting || c.broken !== null || !this.schemaReady) continue;
      if (best === null || c.answeredSentAt > best.answeredSentAt) best = c;
    }
    return best;
  }

  /** A blocking wait ended: its session is free again (or closed if it cannot be trusted). */
  endWait(connection: LockConnection): void {
    connection.waiting = false;
    connection.freeSince = Date.now();
    if (connection.cancelled) connection.destroy();
    else this.settle(connection);
    this.wakeAll();
  }

  private openOne(boundMs: number): Promise<LockConnection> {
    const pending = this.openChecked(Math.max(1, boundMs));
    this.opening.push(pending);
    const settled = (): void => {
      this.opening = this.opening.filter((p) => p !== pending);
    };
    return pending.then(
      (connection) => {
        settled();
        if (this.closed) {
          void connection.end(this.settings.quickMs);
          throw this.closedError();
        }
        this.adopt(connection);
        this.everConnected = true;
        return connection;
      },
      (error: unknown) => {
        settled();
        throw error;
      },
    );
  }

  /**
   * Opens a session and refuses a transaction-mode pooler: no two of this set's sessions may
   * be answered by one backend. The first session is followed by a second, opened after it
   * went idle, which such a pooler hands the same backend (it reuses the last one freed).
   */
  private async openChecked(boundMs: number): Promise<LockConnection> {
    const deadline = Date.now() + boundMs;
    const pg = loadPg();
    const connection = await LockConnection.open(pg, this.settings, this.sql, boundMs);
    const others = [...this.connections].filter((c) => c.broken === null);
    let probe: LockConnection | null = null;
    if (!this.poolerChecked && this.settings.maxConnections >= 2 && this.total < this.settings.maxConnections) {
      this.poolerChecked = true;
      try {
        probe = await LockConnection.open(pg, this.settings, this.sql, Math.max(1, deadline - Date.now()));
      } catch {
        // The check is best effort; the lock statements check their backend too.
      }
      if (probe !== null) others.push(probe);
    }
    if (others.some((c) => c.backendPid === connection.backendPid)) {
      void connection.end(this.settings.quickMs);
      if (probe !== null) void probe.end(this.settings.quickMs);
      this.poolerChecked = false;
      throw poolerRefused(connection.address, connection.backendPid);
    }
    if (probe !== null) this.adopt(probe);
    return connection;
  }

  private adopt(connection: LockConnection): void {
    this.connections.add(connection);
    connection.setKeepsProcessAlive(false);
    connection.attach(
      (c) => this.onBroken(c),
      (payload) => this.wake(payload),
    );
  }

  private onBroken(connection: LockConnection): void {
    this.connections.delete(connection);
    if (connection.listening) this.listenReady = null;
    // Waits woken by notification lost their listener: they try again (and listen anew).
    this.wakeAll();
  }

  /** Once per pool: the schema, created if missing and allowed; without CREATE, the statements that do without. */
  private ensureSchema(connection: LockConnection, boundMs: number): Promise<void> {
    this.schemaReady ??= this.setUpSchema(connection, boundMs).catch((error: unknown) => {
      this.schemaReady = null;
      throw error;
    });
    return this.schemaReady;
  }

  private async setUpSchema(connection: LockConnection, boundMs: number): Promise<void> {
    const deadline = Date.now() + boundMs;
    const { rows } = await connection.query(this.sql.exists, [], boundMs, 'checking the session-flock schema');
    this.schemaExists = rows[0]?.ready === true;
    if (this.readOnly) {
      this.sql = statements(this.settings.schema, this.schemaExists);
      return;
    }
    if (!this.schemaExists) {
      try {
        await connection.query(this.sql.setup, [], Math.max(1, deadline - Date.now()), 'creating the session-flock schema');
        this.schemaExists = true;
      } catch (error) {
        // Without CREATE (42501) the locks work without the schema; anything else is a server failure.
        if ((error as { code?: string }).code !== '42501') throw error;
        // A failed setup leaves its transaction aborted until the ROLLBACK.
        await connection.query('ROLLBACK', [], Math.max(1, deadline - Date.now()), 'creating the session-flock schema').catch(() => undefined);
      }
    }
    this.sql = statements(this.settings.schema, this.schemaExists);
    // Rows of sessions that died without deleting theirs (diagnostics only; readers ignore them anyway).
    if (this.schemaExists) await connection.query(this.sql.sweep, [], Math.max(1, deadline - Date.now()), 'sweeping diagnostics rows').catch(() => undefined);
  }

  /** LISTENs on one session for the releasers' wake-ups (once; again after that session breaks). */
  listen(boundMs: number): Promise<void> {
    this.listenReady ??= (async () => {
      const connection = await this.forStatement(boundMs);
      connection.listening = true;
      try {
        await connection.query(this.sql.listen, [], boundMs, 'listening for unlock notifications');
      } catch (error) {
        connection.listening = false;
        throw error;
      }
    })().catch((error: unknown) => {
      this.listenReady = null;
      throw error;
    });
    return this.listenReady;
  }

  /** Calls `fn` on a wake-up for `lockKey` (an unlock here or elsewhere), on a free wait slot, or a broken session; returns the unsubscribe. */
  onWake(lockKey: string, fn: () => void): () => void {
    let set = this.wakeups.get(lockKey);
    if (set === undefined) this.wakeups.set(lockKey, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.wakeups.get(lockKey) === set) this.wakeups.delete(lockKey);
    };
  }

  private wake(lockKey: string): void {
    const set = this.wakeups.get(lockKey);
    if (set !== undefined) for (const fn of [...set]) fn();
  }

  private wakeAll(): void {
    for (const set of [...this.wakeups.values()]) for (const fn of [...set]) fn();
  }

  /** A session whose last hold went: closed if more than poolSize sessions without holds are open. */
  settle(connection: LockConnection): void {
    if (connection.broken !== null || connection.holds.size > 0 || connection.waiting || connection.listening) return;
    let spare = 0;
    for (const c of this.connections) if (c.holds.size === 0 && !c.waiting && !c.listening && c.broken === null) spare++;
    if (spare > Math.max(1, this.settings.poolSize) && this.connections.size > 1) void connection.end(this.settings.quickMs);
    // A wait woken by notification may now block on the server instead.
    else if (this.wakeups.size > 0) this.wakeAll();
  }

  /** Closes every session, within quickMs each (a silent server gets its sockets destroyed). */
  async close(): Promise<void> {
    this.closed = true;
    const all = [...this.connections];
    this.connections.clear();
    await Promise.all(all.map((c) => c.end(this.settings.quickMs)));
    await Promise.all(this.opening.map((p) => p.catch(() => undefined)));
  }

  /** pg's error as the typed LockServerError, naming what was being done. */
  typed(error: unknown, doing: string): LockServerError {
    return serverError(error, doing, this.settings.maxConnections);
  }
}
