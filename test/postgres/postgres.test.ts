// session-flock/postgres against a real PostgreSQL server (started by
// global-setup.ts, or SESSION_FLOCK_TEST_PG_URL), with real child processes.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, root, runNode, tempDir } from '../helpers';
import { adminClient, advisoryEntries, freshNamespace, onCleanup, pgUrl, startPgLocker } from './helpers';
import { createPostgresLocks, LockAbortedError, LockLostError, LockTimeoutError } from '../../dist/cjs/postgres/index.js';
import * as fileApi from '../../dist/cjs/index.js';

const cli = path.join(root, 'dist', 'cjs', 'cli', 'main.js');

function locksFor(namespace: string, options: Record<string, unknown> = {}) {
  const locks = createPostgresLocks({ connectionString: pgUrl!, namespace, ...options });
  onCleanup(() => locks.close());
  return locks;
}

describe.skipIf(pgUrl === null)('session-flock/postgres on a real server', () => {
  it('excludes across 4 processes: every read-increment-write counted, fencing tokens always above the last one written', async () => {
    const dir = tempDir();
    const counter = path.join(dir, 'counter');
    fs.writeFileSync(counter, '0 0');
    const namespace = freshNamespace();
    const iterations = 40;
    const runs = await Promise.all(
      [1, 2, 3, 4].map(() => runNode([fixture('pg-counter.cjs'), pgUrl!, namespace, counter, String(iterations)], { timeoutMs: 90_000 })),
    );
    for (const run of runs) expect(run, run.stderr).toMatchObject({ code: 0, signal: null });
    expect(fs.readFileSync(counter, 'utf8').split(' ')[0]).toBe(String(4 * iterations));
  });

  it('passes the lock to a blocked waiter in another process when the holder is SIGKILLed', async () => {
    const namespace = freshNamespace();
    const holder = await startPgLocker(namespace);
    expect(await holder.call({ op: 'acquire', key: 'session-a' })).toMatchObject({ ok: true });
    const locks = locksFor(namespace);
    const waiting = locks.acquire('session-a', { timeoutMs: 30_000 });
    const admin = await adminClient();
    const lockKey = (await locks.inspect('session-a')).lockKey;
    // The waiter is blocked in the server, not polling.
    await expect.poll(async () => (await advisoryEntries(admin, lockKey)).filter((e) => !e.granted).length, { timeout: 10_000 }).toBe(1);
    holder.kill('SIGKILL');
    const lock = await waiting;
    expect(lock.held).toBe(true);
    expect((await locks.inspect('session-a')).holders.map((h) => h.pid)).toEqual([process.pid]);
    await lock.release();
    expect(await advisoryEntries(admin, lockKey)).toEqual([]);
  });

  it('times out naming the holder in another process: pid, host, owner, age', async () => {
    const namespace = freshNamespace();
    const holder = await startPgLocker(namespace);
    expect(await holder.call({ op: 'acquire', key: 'k', options: { owner: 'agent:coder' } })).toMatchObject({ ok: true });
    const locks = locksFor(namespace);
    const error = await locks.acquire('k', { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(error).toBeInstanceOf(fileApi.LockTimeoutError);
    const timeout = error as InstanceType<typeof LockTimeoutError>;
    expect(timeout.code).toBe('ELOCKTIMEOUT');
    expect(timeout.holder).toMatchObject({ pid: holder.pid, owner: 'agent:coder', sameProcess: false });
    expect(timeout.holder!.hostname).toBe(require('node:os').hostname());
    expect(timeout.holder!.heldForMs).toBeGreaterThanOrEqual(0);
    expect(timeout.message).toContain(`held by pid ${holder.pid}`);
    expect(timeout.message).toContain('owner agent:coder');
    // timeoutMs 0: one attempt, same error.
    await expect(locks.acquire('k', { timeoutMs: 0 })).rejects.toMatchObject({ code: 'ELOCKTIMEOUT', holder: { pid: holder.pid } });
    // tryAcquire is one attempt whatever its timeoutMs (a wait here would outlast the test's timeout).
    expect(await locks.tryAcquire('k', { timeoutMs: 600_000 })).toBeNull();
  });

  it('abort ends a blocked wait with LockAbortedError and leaves no late grant on the server', async () => {
    const namespace = freshNamespace();
    const holder = await startPgLocker(namespace);
    const held = await holder.call({ op: 'acquire', key: 'k' });
    const locks = locksFor(namespace);
    const admin = await adminClient();
    const lockKey = (await locks.inspect('k')).lockKey;
    const controller = new AbortController();
    const waiting = locks.acquire('k', { timeoutMs: 30_000, signal: controller.signal });
    await expect.poll(async () => (await advisoryEntries(admin, lockKey)).filter((e) => !e.granted).length, { timeout: 10_000 }).toBe(1);
    controller.abort();
    await expect(waiting).rejects.toBeInstanceOf(LockAbortedError);
    await expect.poll(async () => (await advisoryEntries(admin, lockKey)).filter((e) => !e.granted).length, { timeout: 10_000 }).toBe(0);
    // Abort racing the holder's release: whichever wins, nothing is left held by this process.
    for (let i = 0; i < 5; i++) {
      const race = new AbortController();
      const attempt = locks.acquire('k', { timeoutMs: 30_000, signal: race.signal }).then(
        (lock) => lock.release().then(() => 'granted'),
        (error: Error) => error.name,
      );
      await expect.poll(async () => (await advisoryEntries(admin, lockKey)).some((e) => !e.granted), { timeout: 10_000 }).toBe(true);
      const released = holder.call({ op: 'release', id: held.id });
      race.abort();
      await released;
      expect(['granted', 'AbortError']).toContain(await attempt);
      await expect.poll(async () => advisoryEntries(admin, lockKey), { timeout: 10_000 }).toEqual([]);
      Object.assign(held, await holder.call({ op: 'acquire', key: 'k' }));
    }
  });

  it('lock.signal aborts with LockLostError when pg_terminate_backend kills the holder session', async () => {
    const namespace = freshNamespace();
    const locks = locksFor(namespace);
    const lock = await locks.acquire('k');
    expect(lock.signal.aborted).toBe(false);
    const [holder] = (await locks.inspect('k')).holders;
    const admin = await adminClient();
    const lost = new Promise<unknown>((resolve) => lock.signal.addEventListener('abort', () => resolve(lock.signal.reason)));
    await admin.query('SELECT pg_terminate_backend($1)', [holder.backendPid]);
    const reason = await lost;
    expect(reason).toBeInstanceOf(LockLostError);
    expect(reason).toMatchObject({ code: 'ELOCKLOST', target: 'k' });
    expect(lock.held).toBe(false);
    // Another process can take it now; this process's release() is a harmless no-op.
    const other = await startPgLocker(namespace);
    expect(await other.call({ op: 'try', key: 'k' })).toMatchObject({ ok: true, id: 1 });
    await lock.release();
    expect((await locks.inspect('k')).holders.map((h) => h.pid)).toEqual([other.pid]);
  });

  it('fencing tokens strictly increase across processes and connections', async () => {
    const namespace = freshNamespace();
    const a = await startPgLocker(namespace);
    const b = await startPgLocker(namespace);
    const tokens: bigint[] = [];
    for (let i = 0; i < 6; i++) {
      const who = i % 2 === 0 ? a : b;
      const got = await who.call({ op: 'acquire', key: 'k' });
      expect(got).toMatchObject({ ok: true });
      tokens.push(BigInt(got.token));
      await who.call({ op: 'release', id: got.id });
    }
    for (let i = 1; i < tokens.length; i++) expect(tokens[i]).toBeGreaterThan(tokens[i - 1]);
    const locks = locksFor(namespace);
    const mine = await locks.acquire('k');
    expect(mine.token).toBeGreaterThan(tokens[tokens.length - 1]);
    await mine.release();
  });

  it('shared holders coexist across processes; exclusive waits for all of them', async () => {
    const namespace = freshNamespace();
    const a = await startPgLocker(namespace);
    const b = await startPgLocker(namespace);
    const ra = await a.call({ op: 'acquire', key: 'k', options: { shared: true } });
    const rb = await b.call({ op: 'try', key: 'k', options: { shared: true } });
    expect(ra).toMatchObject({ ok: true });
    expect(rb).toMatchObject({ ok: true });
    expect(rb.id).not.toBeNull();
    const locks = locksFor(namespace);
    const status = await locks.inspect('k');
    expect(status).toMatchObject({ state: 'held', mode: 'shared' });
    expect(status.holders.map((h) => h.pid).sort()).toEqual([a.pid, b.pid].sort());
    expect(await locks.tryAcquire('k')).toBeNull();
    const exclusive = locks.acquire('k', { timeoutMs: 30_000 });
    await a.call({ op: 'release', id: ra.id });
    expect(await locks.tryAcquire('k', { shared: true })).toBeNull(); // queued behind the exclusive waiter in this process
    await b.call({ op: 'release', id: rb.id });
    const lock = await exclusive;
    expect(lock.shared).toBe(false);
    expect(await a.call({ op: 'try', key: 'k', options: { shared: true } })).toMatchObject({ ok: true, id: null });
    await lock.release();
  });

  it('status --postgres lists holders and waiters (table and JSON)', async () => {
    const namespace = freshNamespace();
    const holder = await startPgLocker(namespace);
    await holder.call({ op: 'acquire', key: 'sessions/a.jsonl', options: { owner: 'agent:main' } });
    const waiter = await startPgLocker(namespace);
    const waiting = waiter.call({ op: 'acquire', key: 'sessions/a.jsonl', options: { owner: 'agent:second', timeoutMs: 30_000 } });
    const locks = locksFor(namespace);
    await expect.poll(async () => (await locks.inspect('sessions/a.jsonl')).waiters.length, { timeout: 10_000 }).toBe(1);

    const table = await runNode([cli, 'status', '--postgres', pgUrl!, '--namespace', namespace]);
    expect(table, table.stderr).toMatchObject({ code: 0 });
    const lines = table.stdout.trim().split('\n');
    expect(lines[0].split(/\s+/)).toEqual(['KEY', 'MODE', 'ROLE', 'HOST', 'PID', 'OWNER', 'AGE', 'BACKEND', 'CLIENT']);
    expect(lines).toHaveLength(3);
    expect(lines[1]).toMatch(new RegExp(`^${namespace}/sessions/a\\.jsonl\\s+exclusive\\s+holder\\s+\\S+\\s+${holder.pid}\\s+agent:main\\s`));
    expect(lines[2]).toMatch(new RegExp(`\\s+waiter\\s+\\S+\\s+${waiter.pid}\\s+agent:second\\s`));
    expect(lines[1]).toMatch(/127\.0\.0\.1:\d+$|local$/);

    const json = await runNode([cli, 'status', '--postgres', pgUrl!, '--namespace', namespace, '--json']);
    const statuses = JSON.parse(json.stdout);
    expect(statuses).toHaveLength(1);
    expect(statuses[0]).toMatchObject({ key: 'sessions/a.jsonl', namespace, state: 'held', mode: 'exclusive' });
    expect(statuses[0].holders[0]).toMatchObject({ pid: holder.pid, owner: 'agent:main', mode: 'exclusive' });
    expect(statuses[0].waiters[0]).toMatchObject({ pid: waiter.pid, owner: 'agent:second' });
    expect(typeof statuses[0].holders[0].backendPid).toBe('number');

    holder.kill('SIGKILL');
    expect(await waiting).toMatchObject({ ok: true });
    const other = await runNode([cli, 'status', '--postgres', pgUrl!, '--namespace', freshNamespace()]);
    expect(other.stdout).toMatch(/^no PostgreSQL locks held or awaited/);
  });

  it('a refused port and an unreachable host fail with a clear error within a bounded time', async () => {
    const refused = createPostgresLocks({ connectionString: 'postgres://postgres@127.0.0.1:1/postgres', connectionLossMs: 2000 });
    onCleanup(() => refused.close());
    await expect(refused.acquire('k')).rejects.toThrow(/^acquiring postgres:session-flock\/k: cannot connect to PostgreSQL at 127\.0\.0\.1:1: .*ECONNREFUSED/);
    // TEST-NET-1 (RFC 5737): nothing answers, the attempt is cut at connectionLossMs.
    const unreachable = createPostgresLocks({ host: '192.0.2.1', port: 5432, connectionLossMs: 2000 });
    onCleanup(() => unreachable.close());
    const started = Date.now();
    await expect(unreachable.tryAcquire('k')).rejects.toThrow(/cannot connect to PostgreSQL at 192\.0\.2\.1:5432/);
    expect(Date.now() - started).toBeLessThan(15_000);
    const cliRun = await runNode([cli, 'status', '--postgres', 'postgres://postgres@127.0.0.1:1/postgres'], { timeoutMs: 30_000 });
    expect(cliRun.code).toBe(1);
    expect(cliRun.stderr).toMatch(/cannot connect to PostgreSQL at 127\.0\.0\.1:1/);
  });

  it('bad arguments are TypeErrors before any connection; a missing namespace is the default', async () => {
    const locks = locksFor(freshNamespace());
    await expect(locks.acquire('')).rejects.toThrow(TypeError);
    await expect(locks.acquire(42 as never)).rejects.toThrow(TypeError);
    await expect(locks.tryAcquire('k', { lockPath: '/x' } as never)).rejects.toThrow(/no option named "lockPath"/);
    expect(() => createPostgresLocks({ connectionString: pgUrl!, namespace: '' })).toThrow(TypeError);
    expect(() => createPostgresLocks({ connectionString: pgUrl!, query_timeout: 1000 })).toThrow(/query_timeout/);
  });

  it('a pending release() or close() keeps the process alive until the server has answered', async () => {
    // Held and idle connections do not keep a process alive (as a held file lock does not),
    // but a release or close in flight must finish before a process with nothing else to do exits.
    const script = `
      const { createPostgresLocks } = require(${JSON.stringify(path.join(root, 'dist', 'cjs', 'postgres', 'index.js'))});
      const locks = createPostgresLocks({ connectionString: ${JSON.stringify(pgUrl)}, namespace: ${JSON.stringify(freshNamespace())} });
      (async () => {
        const lock = await locks.acquire('k');
        await lock.release();
        console.log('released');
        await locks.close();
        console.log('closed');
      })();`;
    const run = await runNode(['-e', script]);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe('released\nclosed\n');
  });

  it('releaseSync closes the hold: the server frees the lock for another process', async () => {
    const namespace = freshNamespace();
    const locks = locksFor(namespace);
    const lock = await locks.acquire('k');
    const other = await startPgLocker(namespace);
    const waiting = other.call({ op: 'acquire', key: 'k', options: { timeoutMs: 30_000 } });
    lock.releaseSync();
    expect(lock.held).toBe(false);
    expect(await waiting).toMatchObject({ ok: true });
  });

  it('in-process: FIFO, re-entrancy inside withLock, heldLocks, releaseAll and close', async () => {
    const namespace = freshNamespace();
    const locks = locksFor(namespace);
    const order: number[] = [];
    const first = await locks.acquire('k');
    const queued = [1, 2, 3].map((n) => locks.acquire('k', { timeoutMs: 30_000 }).then(async (l) => (order.push(n), l.release())));
    expect(locks.heldLocks()).toMatchObject([{ target: 'k', mode: 'exclusive', waiters: 3 }]);
    await first.release();
    await Promise.all(queued);
    expect(order).toEqual([1, 2, 3]);
    const nested = await locks.withLock('k', async (outer) => {
      const inner = await locks.acquire('k', { timeoutMs: 1000 });
      expect(inner.token).toBe(outer.token);
      await inner.release();
      return outer.held;
    });
    expect(nested).toBe(true);
    await locks.acquire('a');
    await locks.acquire('b', { shared: true });
    expect(await locks.releaseAll()).toBe(2);
    expect(locks.heldLocks()).toEqual([]);
    const kept = await locks.acquire('c');
    await locks.close();
    expect(kept.held).toBe(false);
    await expect(locks.acquire('d')).rejects.toThrow(/closed/);
    // close() ended every connection of this lock set (no other lock set of this process is open now).
    const admin = await adminClient();
    const mine = `session-flock ${require('node:os').hostname()} ${process.pid}`;
    await expect
      .poll(async () => (await admin.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [mine])).rows[0].n, { timeout: 10_000 })
      .toBe(0);
  });
});

describe('session-flock/postgres without a server', () => {
  it('loads without pg until first use, then says to install pg', async () => {
    const dir = tempDir();
    // The package as installed without its optional peer: dist/ copied, every
    // dependency but pg beside it.
    fs.cpSync(path.join(root, 'dist'), path.join(dir, 'dist'), { recursive: true });
    fs.cpSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
    fs.mkdirSync(path.join(dir, 'node_modules'));
    for (const name of fs.readdirSync(path.join(root, 'node_modules'))) {
      if (name !== 'pg') fs.symlinkSync(path.join(root, 'node_modules', name), path.join(dir, 'node_modules', name));
    }
    const entry = path.join(dir, 'dist', 'cjs', 'postgres', 'index.js');
    const run = await runNode([
      '-e',
      `const m = require(${JSON.stringify(entry)});
       try { m.createPostgresLocks({}); console.log('no error'); } catch (e) { console.log(e.code + ' ' + e.message); }`,
    ]);
    expect(run.stdout, run.stderr).toMatch(/^ERR_SESSION_FLOCK_PG_MISSING .*npm install pg/);
  });
});
