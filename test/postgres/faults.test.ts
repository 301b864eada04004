// session-flock/postgres under server faults: a server that never answers, a paused
// server (SIGSTOP of the postmaster and its backends), a restart and a shutdown mid-wait,
// and a holder whose event loop stalls past its lease. Each public call must settle within
// its bound (checked with generous bounds: timing itself is the bench's business). The
// paused and restarted server is a throwaway cluster of this file's own.
import * as net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM helper shared with the bench
import { findServerBinaries, startCluster } from '../../scripts/lib/pg-cluster.mjs';
import { adminClient, advisoryEntries, advisoryLocksOf, freshNamespace, onCleanup, pgUrl, startPgLocker } from './helpers';
import { createPostgresLocks, LockAbortedError, LockLostError, LockServerError, LockTimeoutError } from '../../dist/cjs/postgres/index.js';
import * as fileApi from '../../dist/cjs/index.js';
import { Client } from 'pg';

/** How long `promise` took to settle, and how (a value or an error). */
/** Resolves when the signal aborts (at once if it has). */
function lostOf(signal: AbortSignal): Promise<void> {
  return signal.aborted ? Promise.resolve() : new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}

async function settleTime<T>(promise: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const started = Date.now();
  try {
    const value = await promise;
    return { ms: Date.now() - started, value };
  } catch (error) {
    return { ms: Date.now() - started, error };
  }
}

describe.skipIf(pgUrl === null)('a server that accepts and never answers', () => {
  it('bounds every public call: acquire by its budget, tryAcquire and timeoutMs 0 by a short bound, the rest by the lease', async () => {
    const sockets: net.Socket[] = [];
    const silent = net.createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    onCleanup(() => {
      for (const s of sockets) s.destroy();
      silent.close();
    });
    const port = (silent.address() as net.AddressInfo).port;
    // connectionLossMs 2000: lease 1000, short bound 1000.
    const locks = createPostgresLocks({ host: '127.0.0.1', port, connectionLossMs: 2000 });
    onCleanup(() => locks.close());

    const acquired = await settleTime(locks.acquire('k', { timeoutMs: 1500 }));
    expect(acquired.error).toBeDefined();
    expect(acquired.error instanceof LockTimeoutError || acquired.error instanceof LockServerError).toBe(true);
    expect(acquired.ms).toBeLessThan(1500 + 3000);

    const once = await settleTime(locks.acquire('k', { timeoutMs: 0 }));
    expect(once.error).toBeInstanceOf(LockServerError);
    expect(once.error).toBeInstanceOf(fileApi.LockServerError);
    expect(once.error).toMatchObject({ code: 'ETIMEDOUT' });
    expect((once.error as Error).message).toMatch(/did not answer within \d+ms/);
    expect(once.ms).toBeLessThan(5000);

    const tried = await settleTime(locks.tryAcquire('k'));
    expect(tried.error).toBeInstanceOf(LockServerError);
    expect(tried.ms).toBeLessThan(5000);

    let ran = false;
    const withLock = await settleTime(locks.withLock('k', () => (ran = true), { timeoutMs: 1000 }));
    expect(withLock.error).toBeDefined();
    expect(ran).toBe(false);
    expect(withLock.ms).toBeLessThan(1000 + 3000);

    // Abort ends a wait that is still connecting.
    const controller = new AbortController();
    const aborting = settleTime(locks.acquire('k', { timeoutMs: 60_000, signal: controller.signal }));
    setTimeout(() => controller.abort(), 200);
    const aborted = await aborting;
    expect(aborted.error).toBeInstanceOf(LockAbortedError);
    expect(aborted.ms).toBeLessThan(5000);

    for (const call of [locks.inspect('k'), locks.listLocks()]) {
      const listed = await settleTime(call as Promise<unknown>);
      expect(listed.error).toBeInstanceOf(LockServerError);
      expect(listed.ms).toBeLessThan(5000);
    }
    expect((await settleTime(locks.releaseAll())).ms).toBeLessThan(5000);
    expect((await settleTime(locks.close())).ms).toBeLessThan(5000);
  });
});

const binaries = findServerBinaries();

describe.skipIf(pgUrl === null || binaries === null || process.platform !== 'linux')('a server of its own: paused, restarted, shut down', () => {
  let cluster: { url: string; stop(): void; restart(): Promise<void>; shutdown(): Promise<void>; start(): Promise<void>; serverPids(): number[] };
  beforeAll(async () => {
    cluster = await startCluster();
  });
  afterAll(() => cluster?.stop());

  const signalServer = (signal: NodeJS.Signals): void => {
    for (const pid of cluster.serverPids()) {
      try {
        process.kill(pid, signal);
      } catch {
        // exited meanwhile
      }
    }
  };

  async function admin(): Promise<Client> {
    const client = new Client({ connectionString: cluster.url });
    await client.connect();
    onCleanup(() => client.end().catch(() => undefined));
    return client;
  }

  it('paused (SIGSTOP): holds read lost past the lease, and every public call settles; after SIGCONT the server has freed everything', async () => {
    const locks = createPostgresLocks({ connectionString: cluster.url, namespace: freshNamespace(), connectionLossMs: 2000 });
    onCleanup(() => locks.close());
    // Warm sessions: holds, and a free one.
    const a = await locks.acquire('a');
    const b = await locks.acquire('b');
    await (await locks.acquire('warm')).release();
    let insideResolve!: () => void;
    const inside = new Promise<void>((resolve) => (insideResolve = resolve));
    const running = locks.withLock('w', async (lock) => {
      insideResolve();
      await lostOf(lock.signal);
      return lock.held;
    });
    await inside;
    signalServer('SIGSTOP');
    onCleanup(() => signalServer('SIGCONT'));
    try {
      // A release sent to the silent server settles within the lease (its session is destroyed).
      const released = await settleTime(a.release());
      expect(released.error).toBeUndefined();
      expect(released.ms).toBeLessThan(5000);
      await lostOf(b.signal);
      expect(b.signal.reason).toBeInstanceOf(LockLostError);
      expect(b.held).toBe(false);
      const withLock = await settleTime(running);
      expect(withLock.value).toBe(false);
      expect(withLock.ms).toBeLessThan(5000);

      const acquired = await settleTime(locks.acquire('c', { timeoutMs: 1000 }));
      expect(acquired.error).toBeDefined();
      expect(acquired.ms).toBeLessThan(1000 + 3000);
      const tried = await settleTime(locks.tryAcquire('d'));
      expect(tried.error).toBeInstanceOf(LockServerError);
      expect(tried.ms).toBeLessThan(5000);
      const inspected = await settleTime(locks.inspect('a'));
      expect(inspected.error).toBeInstanceOf(LockServerError);
      expect(inspected.ms).toBeLessThan(5000);
      expect((await settleTime(locks.releaseAll())).ms).toBeLessThan(5000);
      expect((await settleTime(locks.close())).ms).toBeLessThan(5000);
    } finally {
      signalServer('SIGCONT');
    }
    // The destroyed sessions end on the server once it runs again: nothing of this process is left.
    const client = await admin();
    await expect.poll(() => advisoryLocksOf(client, process.pid), { timeout: 20_000 }).toBe(0);
  });

  it('a restart mid-wait: the wait reconnects and is granted within its budget; the holder learns it lost the lock', async () => {
    const namespace = freshNamespace();
    const holder = await startPgLocker(namespace, { url: cluster.url });
    expect(await holder.call({ op: 'acquire', key: 'k' })).toMatchObject({ ok: true });
    const locks = createPostgresLocks({ connectionString: cluster.url, namespace, connectionLossMs: 4000 });
    onCleanup(() => locks.close());
    const client = await admin();
    const lockKey = (await locks.inspect('k')).lockKey;
    await client.end();
    const waiting = locks.acquire('k', { timeoutMs: 60_000 });
    const watcher = await admin();
    await expect.poll(async () => (await advisoryEntries(watcher, lockKey)).filter((e) => !e.granted).length, { timeout: 10_000 }).toBe(1);
    await watcher.end();
    await cluster.restart();
    const lock = await waiting;
    expect(lock.held).toBe(true);
    expect(await holder.lost).toMatchObject({ event: 'lost', error: { name: 'LockLostError', code: 'ELOCKLOST' } });
    await lock.release();
  });

  it('a shutdown that outlasts the budget: the timeout error names the cause', async () => {
    const locks = createPostgresLocks({ connectionString: cluster.url, namespace: freshNamespace(), connectionLossMs: 4000 });
    onCleanup(() => locks.close());
    // Connected once: a refusal from now on is a server to wait for, not a setting to fix.
    await (await locks.acquire('k')).release();
    await cluster.shutdown();
    let error: unknown;
    try {
      error = await locks.acquire('k', { timeoutMs: 1500 }).catch((e: unknown) => e);
    } finally {
      await cluster.start();
    }
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect((error as Error).message).toMatch(/the server could not be reached while waiting: .*(ECONNREFUSED|57P01|ECONNRESET|ENOENT)/);
  });

  it('a budget that ends while the server is down is a timeout however short, never the server error of its last try', async () => {
    const locks = createPostgresLocks({ connectionString: cluster.url, namespace: freshNamespace(), connectionLossMs: 4000 });
    onCleanup(() => locks.close());
    await (await locks.acquire('k')).release();
    await cluster.shutdown();
    const errors: unknown[] = [];
    try {
      // A try that fails at the budget's end races the core's timer: both must end in the timeout.
      for (const timeoutMs of [1, 1, 2, 5, 10, 20, 50]) errors.push(await locks.acquire('k', { timeoutMs }).catch((e: unknown) => e));
    } finally {
      await cluster.start();
    }
    for (const error of errors) {
      expect(error).toBeInstanceOf(LockTimeoutError);
      expect((error as Error).message).toMatch(/the server could not be (reached while waiting|asked): .*(ECONNREFUSED|57P01|ECONNRESET|did not answer)/);
    }
  });
});

describe.skipIf(pgUrl === null)('the lease', () => {
  it('a holder whose event loop stalls past its lease reads the lock lost on resume, in the same turn, while another process has been granted it', async () => {
    const namespace = freshNamespace();
    // connectionLossMs 4000: lease 2000 ms, the server ends the stalled session after 4000 ms idle.
    const holder = await startPgLocker(namespace, { options: { connectionLossMs: 4000 } });
    const { id } = await holder.call({ op: 'acquire', key: 'k' });
    const locks = createPostgresLocks({ connectionString: pgUrl!, namespace });
    onCleanup(() => locks.close());
    const admin = await adminClient();
    const lockKey = (await locks.inspect('k')).lockKey;
    const waiting = locks.acquire('k', { timeoutMs: 30_000 });
    await expect.poll(async () => (await advisoryEntries(admin, lockKey)).filter((e) => !e.granted).length, { timeout: 10_000 }).toBe(1);
    const stalled = holder.call({ op: 'stall', id, ms: 7000 });
    const lock = await waiting; // granted while the holder is still stalled
    const report = await stalled;
    expect(report).toMatchObject({ ok: true, held: false, aborted: true, reason: 'ELOCKLOST' });
    expect(lock.held).toBe(true);
    await lock.release();
  });
});
