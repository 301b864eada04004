// A silent network cut between a holder and the server, made with a network namespace
// and a veth pair (root, iproute2): the server frees the lock within the holder's
// connectionLossMs and the cut holder's lock.signal aborts. Skipped where network
// namespaces cannot be made, or without local server binaries (it needs a cluster that
// listens on the veth address).
import { execFileSync } from 'node:child_process';
import { expect, it } from 'vitest';
// @ts-expect-error plain ESM helper shared with the bench
import { findServerBinaries, startCluster } from '../../scripts/lib/pg-cluster.mjs';
import { freshNamespace, onCleanup, startPgLocker } from './helpers';
import { createPostgresLocks } from '../../dist/cjs/postgres/index.js';

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** A namespace with one end of a veth pair; returns the addresses, or why it cannot be made here. */
function makeNetwork(): { ns: string; device: string; host: string; peer: string; subnet: string } | string {
  if (process.platform !== 'linux' || process.getuid?.() !== 0) return 'needs root on Linux';
  if (findServerBinaries() === null) return 'needs local PostgreSQL server binaries';
  const n = process.pid % 250;
  const ns = `sf-cut-${process.pid}`;
  const [hostDev, nsDev] = [`sfh${process.pid}`, `sfn${process.pid}`];
  const [host, peer, subnet] = [`10.231.${n}.1`, `10.231.${n}.2`, `10.231.${n}.0/30`];
  try {
    ip('netns', 'add', ns);
  } catch (error) {
    return `cannot make a network namespace: ${String((error as { stderr?: string }).stderr ?? error).trim()}`;
  }
  onCleanup(() => {
    try {
      ip('netns', 'del', ns); // takes the veth pair with it
    } catch {
      // already gone
    }
  });
  try {
    ip('link', 'add', hostDev, 'type', 'veth', 'peer', 'name', nsDev);
    ip('link', 'set', nsDev, 'netns', ns);
    ip('addr', 'add', `${host}/30`, 'dev', hostDev);
    ip('link', 'set', hostDev, 'up');
    ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${peer}/30`, 'dev', nsDev);
    ip('netns', 'exec', ns, 'ip', 'link', 'set', nsDev, 'up');
  } catch (error) {
    return `cannot set up a veth pair: ${String((error as { stderr?: string }).stderr ?? error).trim()}`;
  }
  return { ns, device: nsDev, host, peer, subnet };
}

it('a silent network cut: the lock passes to another client within connectionLossMs, and the holder learns it', async (context) => {
  const network = makeNetwork();
  if (typeof network === 'string') {
    context.skip(network);
    return;
  }
  const cluster = await startCluster({ listen: `127.0.0.1,${network.host}`, trustNetworks: [network.subnet] });
  onCleanup(() => cluster.stop());
  const namespace = freshNamespace();
  // The holder (connectionLossMs 4000, see the fixture) runs inside the namespace.
  const holder = await startPgLocker(namespace, {
    url: `postgres://postgres@${network.host}:${cluster.port}/postgres`,
    prefix: ['ip', 'netns', 'exec', network.ns],
  });
  expect(await holder.call({ op: 'acquire', key: 'k' })).toMatchObject({ ok: true });
  const locks = createPostgresLocks({ connectionString: cluster.url, namespace });
  onCleanup(() => locks.close());
  await expect.poll(async () => (await locks.inspect('k')).holders.map((h) => h.pid), { timeout: 10_000 }).toEqual([holder.pid]);
  const waiting = locks.acquire('k', { timeoutMs: 60_000 });
  await expect.poll(async () => (await locks.inspect('k')).waiters.length, { timeout: 10_000 }).toBe(1);

  const cutAt = Date.now();
  ip('netns', 'exec', network.ns, 'ip', 'link', 'set', network.device, 'down');
  const lost = await holder.lost;
  expect(lost.error).toMatchObject({ name: 'LockLostError', code: 'ELOCKLOST' });
  const lock = await waiting;
  // Correctness bounds, generous for a loaded machine (the configured bound is 4 s).
  expect(Date.now() - cutAt).toBeLessThan(30_000);
  expect(lock.held).toBe(true);
  await lock.release();
});
