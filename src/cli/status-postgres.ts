import { parseArgs } from 'node:util';
import { listPostgresLocks } from '../postgres/locks';
import type { PostgresLockSession, PostgresLockStatus } from '../postgres/status';
import { cell, durationCell, formatColumns } from './table';

export const POSTGRES_USAGE = `        With --postgres <url>: the holders and waiters of the advisory locks
        of session-flock/postgres on that database (every namespace unless
        --namespace): key, mode, holder or waiter, host, pid, owner, age,
        backend pid, client address.
`;

function rowsOf(status: PostgresLockStatus): string[][] {
  const key = status.key === null ? `#${status.lockKey}` : `${status.namespace}/${status.key}`;
  const row = (s: PostgresLockSession, role: string): string[] => [
    cell(key, 80),
    s.mode,
    role,
    cell(s.hostname, 40),
    cell(s.pid),
    cell(s.owner, 40),
    durationCell(s.ageMs),
    String(s.backendPid),
    cell(s.clientAddress, 48),
  ];
  return [...status.holders.map((s) => row(s, 'holder')), ...status.waiters.map((s) => row(s, 'waiter'))];
}

export function formatPostgresTable(statuses: PostgresLockStatus[]): string {
  const header = ['KEY', 'MODE', 'ROLE', 'HOST', 'PID', 'OWNER', 'AGE', 'BACKEND', 'CLIENT'];
  const rows = statuses.flatMap(rowsOf);
  const notes = statuses.flatMap((s) => s.notes.map((n) => `note: ${cell(s.key ?? `#${s.lockKey}`, 80)}: ${cell(n, 300)}`));
  return [formatColumns(header, rows), ...notes].join('\n') + '\n';
}

/** `status --postgres <url> [--namespace <ns>] [--json]`; resolves to the exit code. */
export async function statusPostgres(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      postgres: { type: 'string' },
      namespace: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    allowPositionals: false,
    strict: true,
  });
  const statuses = await listPostgresLocks({ connectionString: values.postgres!, connectionLossMs: 5000 }, values.namespace ?? null);
  if (values.json) process.stdout.write(JSON.stringify(statuses, null, 2) + '\n');
  else if (statuses.length === 0) process.stdout.write(values.namespace === undefined ? 'no PostgreSQL locks held or awaited\n' : `no PostgreSQL locks held or awaited in namespace ${values.namespace}\n`);
  else process.stdout.write(formatPostgresTable(statuses));
  return 0;
}
