import { LockConnection } from './connection';
import { loadPg } from './load-pg';
import type { PostgresSettings } from './settings';
import { statements, type Statements } from './sql';

/**
 * The library's own small warm pool: each hold or wait takes a connection for
 * itself alone, and gives it back only when nothing of the lock can be left
 * on it. Never a shared pg.Pool: advisory locks belong to a session and stack
 * on it, so a session shared with other work could hold a lock twice or lose
 * it to someone else's disconnect.
 */
export class ConnectionPool {
  readonly sql: Statements;
  private readonly idle: { connection: LockConnection; timer: NodeJS.Timeout }[] = [];
  private readonly open = new Set<LockConnection>();
  private schemaReady: Promise<void> | null = null;
  closed = false;

  /** Whether the schema exists; a read-only pool (status) never creates it. */
  schemaExists = false;

  constructor(
    readonly settings: PostgresSettings,
    private readonly readOnly = false,
  ) {
    this.sql = statements(settings.schema);
  }

  /** A healthy connection for one hold or wait, with the schema in place. */
  async take(): Promise<LockConnection> {
    if (this.closed) throw new Error('this PostgreSQL lock set was closed');
    while (this.idle.length > 0) {
      const { connection, timer } = this.idle.pop()!;
      clearTimeout(timer);
      if (connection.broken === null) {
        connection.setKeepsProcessAlive(true);
        return connection;
      }
      this.open.delete(connection);
    }
    const connection = await this.connect();
    this.open.add(connection);
    try {
      await (this.schemaReady ??= this.ensureSchema(connection));
    } catch (error) {
      this.schemaReady = null;
      this.discard(connection);
      throw error;
    }
    if (this.closed) {
      this.discard(connection);
      throw new Error('this PostgreSQL lock set was closed');
    }
    return connection;
  }

  private connect(): Promise<LockConnection> {
    return LockConnection.open(loadPg(), this.settings, this.sql);
  }

  private async ensureSchema(connection: LockConnection): Promise<void> {
    const { rows } = await connection.query(this.sql.exists, []);
    this.schemaExists = rows[0]?.ready === true;
    if (this.readOnly) return;
    if (!this.schemaExists) await this.createSchema(connection);
    this.schemaExists = true;
    // Rows of sessions that died without deleting theirs (diagnostics only; readers ignore them anyway).
    await connection.query(this.sql.sweep, []);
  }

  private async createSchema(connection: LockConnection): Promise<void> {
    try {
      await connection.query(this.sql.setup, []);
    } catch (error) {
      const schema = this.settings.schema;
      throw new Error(
        `cannot create the session-flock schema "${schema}" (the diagnostics table and the fencing-token sequence): ${(error as Error).message}; ` +
          `create it once as a role that may (see the README), or grant CREATE on the database`,
        { cause: error },
      );
    }
  }

  /** Back to the pool when nothing can be left on it; otherwise closed. */
  give(connection: LockConnection): void {
    if (connection.broken !== null || connection.cancelled || this.closed || this.idle.length >= this.settings.poolSize) {
      this.discard(connection);
      return;
    }
    connection.setKeepsProcessAlive(false);
    // Closed before the server's idle_session_timeout would end it under a taker.
    const timer = setTimeout(() => {
      const at = this.idle.findIndex((i) => i.connection === connection);
      if (at !== -1) this.idle.splice(at, 1);
      this.discard(connection);
    }, this.settings.connectionLossMs / 2);
    timer.unref();
    this.idle.push({ connection, timer });
  }

  /** Closes a connection whose state is not known to be clean (the server drops its locks). */
  discard(connection: LockConnection): void {
    this.open.delete(connection);
    connection.setKeepsProcessAlive(false);
    void connection.end();
  }

  /** Closes every connection, held or idle. */
  async close(): Promise<void> {
    this.closed = true;
    for (const { timer } of this.idle) clearTimeout(timer);
    this.idle.length = 0;
    const all = [...this.open];
    this.open.clear();
    await Promise.all(all.map((c) => c.end()));
  }
}
