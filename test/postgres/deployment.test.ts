// session-flock/postgres where it is deployed: a role without CREATE on the database, and a
// transaction-mode pgbouncer (Debian's package) between the client and the server.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { root, runNode, tempDir } from '../helpers';
import { adminClient, advisoryEntries, freshNamespace, onCleanup, pgUrl, startPgLocker } from './helpers';
import { createPostgresLocks, LockServerError } from '../../dist/cjs/postgres/index.js';

const PGBOUNCER = '/usr/sbin/pgbouncer';
const cli = path.join(root, 'dist', 'cjs', 'cli', 'main.js');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** pgbouncer refuses to run as root: as root it runs as the postgres user (as the test cluster does). */
function dropTo(): string[] {
  if (process.getuid?.() !== 0) return [];
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim();
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim();
  return ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups'];
}

/** A pgbouncer in `mode` in front of the suite's server; resolves to its URL once it accepts. */
async function startPgbouncer(mode: 'transaction' | 'session'): Promise<string> {
  const server = new URL(pgUrl!);
  const dir = tempDir();
  fs.chmodSync(dir, 0o777);
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'userlist.txt'), '"postgres" ""\n');
  fs.writeFileSync(
    path.join(dir, 'pgbouncer.ini'),
    [
      '[databases]',
      `postgres = host=${server.hostname} port=${server.port} dbname=postgres user=postgres`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      `pool_mode = ${mode}`,
      'default_pool_size = 4',
      'ignore_startup_parameters = extra_float_digits,options',
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      '',
    ].join('\n'),
  );
  const argv = [...dropTo(), PGBOUNCER, '-q', path.join(dir, 'pgbouncer.ini')];
  const child = spawn(argv[0], argv.slice(1), { stdio: 'ignore' });
  onCleanup(() => {
    child.kill('SIGKILL');
  });
  const log = (): string => (fs.existsSync(path.join(dir, 'pgbouncer.log')) ? fs.readFileSync(path.join(dir, 'pgbouncer.log'), 'utf8') : '(no log)');
  let accepting = false;
  // Only an exit before it accepts is a failure to start; the cleanup's kill is not.
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => {
      if (!accepting) reject(new Error(`pgbouncer exited (${code}) before accepting: ${log()}`));
    }),
  );
  const ready = (async () => {
    for (;;) {
      const ok = await new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      });
      if (ok) {
        accepting = true;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  await Promise.race([ready, exited]);
  return `postgres://postgres@127.0.0.1:${port}/postgres`;
}

const havePgbouncer = fs.existsSync(PGBOUNCER);
if (!havePgbouncer && process.env.SESSION_FLOCK_REQUIRE_PG === '1') throw new Error(`the pgbouncer test needs ${PGBOUNCER} (Debian package pgbouncer)`);

describe.skipIf(pgUrl === null || !havePgbouncer)('behind pgbouncer', () => {
  it('transaction mode is refused with a clear LockServerError before any lock is taken', async () => {
    const url = await startPgbouncer('transaction');
    const namespace = freshNamespace();
    const locks = createPostgresLocks({ connectionString: url, namespace });
    onCleanup(() => locks.close());
    const error = await locks.acquire('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockServerError);
    expect(error).toMatchObject({ code: '0A000' });
    expect((error as Error).message).toMatch(/transaction- or statement-mode pooler .*connect to PostgreSQL directly, or through a session-mode pool/);
    const admin = await adminClient();
    const direct = createPostgresLocks({ connectionString: pgUrl!, namespace });
    onCleanup(() => direct.close());
    expect(await advisoryEntries(admin, (await direct.inspect('k')).lockKey)).toEqual([]);
  });

  it('session mode works: exclusion against a direct client, and the lock passes on release', async () => {
    const url = await startPgbouncer('session');
    const namespace = freshNamespace();
    const locks = createPostgresLocks({ connectionString: url, namespace });
    onCleanup(() => locks.close());
    const lock = await locks.acquire('k');
    const other = await startPgLocker(namespace);
    expect(await other.call({ op: 'try', key: 'k' })).toMatchObject({ ok: true, id: null });
    await lock.release();
    expect(await other.call({ op: 'try', key: 'k' })).toMatchObject({ ok: true, id: expect.any(Number) });
  });
});

describe.skipIf(pgUrl === null)('a role without CREATE on the database', () => {
  it('takes, excludes and releases locks without the schema; status --postgres lists holders from pg_locks and says so', async () => {
    const admin = await adminClient();
    const role = `sf_plain_${randomUUID().slice(0, 8)}`;
    await admin.query(`CREATE ROLE ${role} LOGIN`);
    onCleanup(async () => {
      await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
    });
    const url = new URL(pgUrl!);
    url.username = role;
    const namespace = freshNamespace();
    // A schema name nobody created: the role cannot create it (PUBLIC has no CREATE on the database).
    const schema = `sf_absent_${randomUUID().slice(0, 8).replace(/-/g, '')}`;
    const locks = createPostgresLocks({ connectionString: url.href, namespace, schema });
    onCleanup(() => locks.close());
    const lock = await locks.acquire('k');
    expect(lock.held).toBe(true);
    expect(typeof lock.token).toBe('bigint');
    const again = createPostgresLocks({ connectionString: url.href, namespace, schema });
    onCleanup(() => again.close());
    expect(await again.tryAcquire('k')).toBeNull();
    const status = await again.inspect('k');
    expect(status.state).toBe('held');
    expect(status.holders).toHaveLength(1);
    expect(status.notes.join(' ')).toMatch(/pg_locks alone/);
    const run = await runNode([cli, 'status', '--postgres', url.href], { timeoutMs: 30_000 });
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/no session-flock schema .*pg_locks alone/);
    expect(run.stdout).toContain(String(status.holders[0].backendPid));
    const next = again.acquire('k', { timeoutMs: 30_000 });
    const before = lock.token;
    await lock.release();
    const granted = await next;
    expect(granted.token > before).toBe(true);
    await granted.release();
    await locks.close();
    expect((await admin.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = $1`, [schema])).rows[0].n).toBe(0);
  });
});


describe.skipIf(pgUrl === null)('the server has fewer connections to give than maxConnections', () => {
  async function roleWithLimit(limit: number): Promise<string> {
    const admin = await adminClient();
    const role = `sf_limited_${randomUUID().slice(0, 8)}`;
    await admin.query(`CREATE ROLE ${role} LOGIN CONNECTION LIMIT ${limit}`);
    await admin.query(`GRANT USAGE ON SCHEMA session_flock TO ${role}`).catch(() => undefined);
    onCleanup(async () => {
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
      await admin.query(`DROP OWNED BY ${role}`).catch(() => undefined);
      await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
    });
    const url = new URL(pgUrl!);
    url.username = role;
    return url.href;
  }

  it('none at all: LockServerError 53300 saying what to change', async () => {
    const url = await roleWithLimit(0);
    const locks = createPostgresLocks({ connectionString: url, namespace: freshNamespace(), maxConnections: 4 });
    onCleanup(() => locks.close());
    const error = await locks.acquire('k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockServerError);
    expect(error).toMatchObject({ code: '53300' });
    expect((error as Error).message).toMatch(/raise max_connections on the server, or lower maxConnections of createPostgresLocks \(now 4/);
    expect((error as Error).cause).toBeInstanceOf(Error);
  });

  it('one session: holds and contended waits are all served on it (waits woken by notification)', async () => {
    const url = await roleWithLimit(1);
    const namespace = freshNamespace();
    const locks = createPostgresLocks({ connectionString: url, namespace, schema: `sf_lim_${randomUUID().slice(0, 8)}` });
    onCleanup(() => locks.close());
    const holder = await startPgLocker(namespace);
    const keys = Array.from({ length: 5 }, (_, i) => `k${i}`);
    const { ids } = await holder.call({ op: 'acquireMany', keys });
    const free = await Promise.all(Array.from({ length: 20 }, (_, i) => locks.acquire(`free${i}`)));
    const waiting = keys.map((key) => locks.acquire(key, { timeoutMs: 30_000 }));
    expect(await holder.call({ op: 'releaseMany', ids })).toMatchObject({ ok: true });
    const granted = await Promise.all(waiting);
    expect([...free, ...granted].every((lock) => lock.held)).toBe(true);
    expect(await holder.call({ op: 'tryMany', keys })).toMatchObject({ taken: 5 });
  });
});
