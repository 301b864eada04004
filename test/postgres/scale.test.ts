// session-flock/postgres at the scale it exists for: many holds and waits of one process
// on a few shared sessions (maxConnections), against the real server, with real children.
import { describe, expect, it } from 'vitest';
import { adminClient, advisoryEntries, advisoryLocksOf, freshNamespace, onCleanup, pgUrl, sessionsOf, startPgLocker } from './helpers';
import { createPostgresLocks, LockLostError } from '../../dist/cjs/postgres/index.js';

function locksFor(namespace: string, options: Record<string, unknown> = {}) {
  const locks = createPostgresLocks({ connectionString: pgUrl!, namespace, ...options });
  onCleanup(() => locks.close());
  return locks;
}

/** pg_locks entries of several keys, one query after another (a pg client runs one at a time). */
async function entriesOf(admin: Awaited<ReturnType<typeof adminClient>>, lockKeys: string[]) {
  const all = [];
  for (const lockKey of lockKeys) all.push(...(await advisoryEntries(admin, lockKey)));
  return all;
}

const keys = (n: number, prefix: string): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

describe.skipIf(pgUrl === null)('session-flock/postgres: holds share connections', () => {
  it('1,000 holds from one process on at most maxConnections sessions; another process finds each one taken; close() frees everything', async () => {
    const namespace = freshNamespace();
    const locks = locksFor(namespace);
    const admin = await adminClient();
    const all = keys(1000, 'session');
    const held = await Promise.all(all.map((key) => locks.acquire(key, { timeoutMs: 60_000 })));
    expect(held.every((lock) => lock.held)).toBe(true);
    const sessions = await sessionsOf(admin, process.pid);
    expect(sessions).toBeGreaterThan(0);
    expect(sessions).toBeLessThanOrEqual(10);
    expect(await advisoryLocksOf(admin, process.pid)).toBe(1000);
    const other = await startPgLocker(namespace);
    expect(await other.call({ op: 'tryMany', keys: all })).toMatchObject({ ok: true, taken: 1000 });
    // Still within the cap after the other process's tries.
    expect(await sessionsOf(admin, process.pid)).toBeLessThanOrEqual(10);
    await locks.close();
    expect(held.some((lock) => lock.held)).toBe(false);
    await expect.poll(() => sessionsOf(admin, process.pid), { timeout: 10_000 }).toBe(0);
    expect(await advisoryLocksOf(admin, process.pid)).toBe(0);
    expect(await other.call({ op: 'tryMany', keys: all })).toMatchObject({ ok: true, taken: 0 });
  });

  it('50 contended waits in one process are all granted and held together, within the cap', async () => {
    const namespace = freshNamespace();
    const holder = await startPgLocker(namespace);
    const contended = keys(50, 'contended');
    const { ids } = await holder.call({ op: 'acquireMany', keys: contended });
    expect(ids).toHaveLength(50);
    const maxConnections = 4;
    const locks = locksFor(namespace, { maxConnections });
    const admin = await adminClient();
    const waiting = contended.map((key) => locks.acquire(key, { timeoutMs: 60_000 }));
    // Blocked on the server: as many as the cap leaves sessions for (the others wait for a wake-up).
    const lockKeys = await Promise.all(contended.map(async (key) => (await locks.inspect(key)).lockKey));
    const blocked = async (): Promise<number> => (await entriesOf(admin, lockKeys)).filter((e) => !e.granted).length;
    await expect.poll(blocked, { timeout: 10_000 }).toBe(maxConnections - 1);
    expect(await sessionsOf(admin, process.pid)).toBeLessThanOrEqual(maxConnections);
    expect(await holder.call({ op: 'releaseMany', ids })).toMatchObject({ ok: true });
    const granted = await Promise.all(waiting);
    expect(granted.every((lock) => lock.held)).toBe(true);
    expect(await advisoryLocksOf(admin, process.pid)).toBe(50);
    expect(await sessionsOf(admin, process.pid)).toBeLessThanOrEqual(maxConnections);
    // Held together: the other process finds every one taken.
    expect(await holder.call({ op: 'tryMany', keys: contended })).toMatchObject({ taken: 50 });
    // Tokens keep their meaning: every grant got its own, all distinct.
    expect(new Set(granted.map((lock) => lock.token)).size).toBe(50);
    await Promise.all(granted.map((lock) => lock.release()));
    expect(await advisoryLocksOf(admin, process.pid)).toBe(0);
  });

  it('10 waits whose holder is SIGKILLed are all granted (blocked ones by the server, the rest by their retry)', async () => {
    const namespace = freshNamespace();
    const holder = await startPgLocker(namespace);
    const ten = keys(10, 'killed');
    expect(await holder.call({ op: 'acquireMany', keys: ten })).toMatchObject({ ok: true });
    const locks = locksFor(namespace, { maxConnections: 5 });
    const admin = await adminClient();
    const waiting = ten.map((key) => locks.acquire(key, { timeoutMs: 30_000 }));
    const lockKeys = await Promise.all(ten.map(async (key) => (await locks.inspect(key)).lockKey));
    await expect
      .poll(async () => (await entriesOf(admin, lockKeys)).filter((e) => !e.granted).length, { timeout: 10_000 })
      .toBe(4);
    holder.kill('SIGKILL');
    const granted = await Promise.all(waiting);
    expect(granted.every((lock) => lock.held)).toBe(true);
    expect(await advisoryLocksOf(admin, process.pid)).toBe(10);
    await Promise.all(granted.map((lock) => lock.release()));
  });

  it('losing a shared session aborts the signal of every hold on it', async () => {
    const namespace = freshNamespace();
    const locks = locksFor(namespace);
    const admin = await adminClient();
    const held = [];
    for (const key of keys(5, 'shared')) held.push(await locks.acquire(key));
    const { rows } = await admin.query(
      `SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND a.application_name LIKE $1`,
      [`session-flock % ${process.pid}`],
    );
    // Taken one after another, the holds pack onto one session.
    expect(rows).toHaveLength(1);
    const lost = Promise.all(held.map((lock) => new Promise((resolve) => lock.signal.addEventListener('abort', () => resolve(lock.signal.reason), { once: true }))));
    await admin.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
    for (const reason of await lost) expect(reason).toBeInstanceOf(LockLostError);
    expect(held.some((lock) => lock.held)).toBe(false);
    // The set goes on with new sessions.
    const again = await locks.acquire('shared-0');
    expect(again.held).toBe(true);
    await again.release();
  });

  it('FIFO and re-entrancy keep their meaning on shared sessions; tokens strictly increase per key', async () => {
    const namespace = freshNamespace();
    const locks = locksFor(namespace, { maxConnections: 2 });
    const order: number[] = [];
    const first = await locks.acquire('k');
    const tokens = [first.token];
    const waits = [1, 2, 3].map((n) =>
      locks.acquire('k', { timeoutMs: 30_000 }).then(async (lock) => {
        order.push(n);
        tokens.push(lock.token);
        await lock.release();
      }),
    );
    await locks.withLock('other', async (outer) => {
      const inner = await locks.acquire('other');
      expect(inner.token).toBe(outer.token);
      await inner.release();
      expect(outer.held).toBe(true);
    });
    await first.release();
    await Promise.all(waits);
    expect(order).toEqual([1, 2, 3]);
    for (let i = 1; i < tokens.length; i++) expect(tokens[i] > tokens[i - 1]).toBe(true);
  });
});
