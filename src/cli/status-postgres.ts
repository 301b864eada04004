import { parseArgs } from 'node:util';
import { formatDuration } from '../core/errors';
import { NO_SCHEMA_NOTE } from '../postgres/inspect';
import { listPostgresLocks } from '../postgres/locks';
import type { PostgresLockSession, PostgresLockStatus } from '../postgres/status';
import { UsageError } from './args';

export const POSTGRES_USAGE = `        With --postgres <url>: the holders and waiters of the advisory locks
        of session-flock/postgres on that database (every namespace unless
        --namespace): key, mode, holder or waiter, host, pid, owner, age,
        backend pid, client address.
`;

/** No terminal escapes or line breaks from diagnostics rows (which any client may write) reach the table. */
function cell(text: string | number | null, max = 60): string {
  if (text === null) return '-';
  // eslint-disable-next-line no-control-regex
  const safe = String(text).replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, '?');
  return safe.length > max ? `${safe.slice(0, max - 1)}…` : safe;
}

function rowsOf(status: PostgresLockStatus): string[][] {
  const key = status.key === null ? `#${status.lockKey}` : `${status.namespace}/${status.key}`;
  const row = (s: PostgresLockSession, role: string): string[] => [
    cell(key, 80),
    s.mode,
    role,
    cell(s.hostname, 40),
    cell(s.pid),
    cell(s.owner, 40),
    s.ageMs === null ? '-' : formatDuration(s.ageMs),
    String(s.backendPid),
    cell(s.clientAddress, 48),
  ];
  return [...status.holders.map((s) => row(s, 'holder')), ...status.waiters.map((s) => row(s, 'waiter'))];
}

export function formatPostgresTable(statuses: PostgresLockStatus[]): string {
  const header = ['KEY', 'MODE', 'ROLE', 'HOST', 'PID', 'OWNER', 'AGE', 'BACKEND', 'CLIENT'];
  const rows = statuses.flatMap(rowsOf);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  const notes = statuses.flatMap((s) => s.notes.map((n) => `note: ${cell(s.key ?? `#${s.lockKey}`, 80)}: ${cell(n, 300)}`));
  return [line(header), ...rows.map(line), ...notes].join('\n') + '\n';
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
