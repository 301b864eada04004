import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import { afterEach, inject } from 'vitest';
import { Client } from 'pg';
import { root } from '../helpers';

/** The server of this run, or null (the suite is skipped; global-setup said why). */
export const pgUrl = inject('pgUrl');

/** A namespace of its own per test, so tests never see each other's locks. */
export const freshNamespace = (): string => `test-${randomUUID()}`;

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});
export const onCleanup = (fn: () => void | Promise<void>): void => {
  cleanups.push(fn);
};

/** A plain pg client (not the library's) for looking at the server and for admin actions. */
export async function adminClient(): Promise<Client> {
  const client = new Client({ connectionString: pgUrl! });
  await client.connect();
  onCleanup(() => client.end());
  return client;
}

/** Advisory locks in pg_locks whose lock key is `lockKey` (decimal), held or awaited. */
export async function advisoryEntries(admin: Client, lockKey: string): Promise<{ pid: number; granted: boolean; mode: string }[]> {
  const { rows } = await admin.query(
    `SELECT pid, granted, mode FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1
       AND ((classid::bigint << 32) | objid::bigint) = $1::bigint`,
    [lockKey],
  );
  return rows;
}

export interface PgLocker {
  pid: number;
  call(msg: Record<string, unknown>): Promise<any>;
  /** Resolves at the child's first 'lost' event. */
  lost: Promise<any>;
  kill(signal?: NodeJS.Signals): void;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * A child process running test/fixtures/pg-locker.cjs, killed after the test; `url`
 * defaults to the suite's server, `prefix` runs it through a command (`ip netns exec <ns>`).
 */
export async function startPgLocker(
  namespace: string,
  { url = pgUrl!, prefix = [] as string[], options = {} as Record<string, unknown> } = {},
): Promise<PgLocker> {
  const argv = [...prefix, process.execPath, path.join(root, 'test', 'fixtures', 'pg-locker.cjs'), url, namespace, JSON.stringify(options)];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  onCleanup(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const pending = new Map<number, (value: any) => void>();
  let seq = 0;
  let onLost: (value: any) => void = () => undefined;
  const lost = new Promise<any>((resolve) => (onLost = resolve));
  const pid = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.on('message', (msg: any) => {
      if (msg.ready) resolve(msg.pid);
      else if (msg.event === 'lost') onLost(msg);
      else pending.get(msg.seq)?.(msg);
    });
  });
  return {
    pid,
    lost,
    exited,
    kill: (signal = 'SIGKILL') => child.kill(signal),
    call(msg) {
      const id = ++seq;
      return new Promise((resolve) => {
        pending.set(id, resolve);
        child.send({ ...msg, seq: id });
      });
    },
  };
}

/** How many server sessions a process's lock sets have open (their application_name names the pid). */
export async function sessionsOf(admin: Client, pid: number): Promise<number> {
  const { rows } = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE $1`, [`session-flock % ${pid}`]);
  return rows[0].n;
}

/** Advisory locks held or awaited by a process's sessions. */
export async function advisoryLocksOf(admin: Client, pid: number): Promise<number> {
  const { rows } = await admin.query(
    `SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE l.locktype = 'advisory' AND a.application_name LIKE $1`,
    [`session-flock % ${pid}`],
  );
  return rows[0].n;
}
