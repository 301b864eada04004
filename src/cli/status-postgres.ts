import { parseArgs } from 'node:util';
import { NO_SCHEMA_NOTE } from '../postgres/inspect';
import { listPostgresLocks } from '../postgres/locks';
import type { PostgresLockSession, PostgresLockStatus } from '../postgres/status';
import { UsageError } from './args';
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

/**
 * pg resolves anything that is not a URL against `postgres://base`, so a typo would try to
 * reach a host named "base". Only a postgres:// or postgresql:// URL, or a socket folder
 * (a path), is a connection string here. The value is not echoed: it may hold a password.
 */
function checkConnectionString(value: string): void {
  if (value.startsWith('/')) return;
  let url: URL | null = null;
  try {
    url = new URL(value);
  } catch {
    url = null;
  }
  if (url === null || (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')) {
    throw new UsageError('--postgres: the connection string is not a valid PostgreSQL URL (expected postgres://user:password@host:5432/database)', 'status');
  }
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
  checkConnectionString(values.postgres!);
  const { statuses, schema } = await listPostgresLocks({ connectionString: values.postgres!, connectionLossMs: 5000 }, values.namespace ?? null);
  if (!schema) process.stderr.write(`note: ${NO_SCHEMA_NOTE}; every advisory lock of the database is shown\n`);
  if (values.json) process.stdout.write(JSON.stringify(statuses, null, 2) + '\n');
  else if (statuses.length === 0) process.stdout.write(values.namespace === undefined ? 'no PostgreSQL locks held or awaited\n' : `no PostgreSQL locks held or awaited in namespace ${values.namespace}\n`);
  else process.stdout.write(formatPostgresTable(statuses));
  return 0;
}
