// A TypeScript consumer, type-checked with tsc (strict) and then run.
import { acquire, tryAcquire, type AcquireOptions, type SessionLock, LockTimeoutError } from 'session-flock';
import { createPostgresLocks, type PostgresLock, type PostgresLocksOptions } from 'session-flock/postgres';
import * as path from 'node:path';

async function main(dir: string): Promise<void> {
  const options: AcquireOptions = { owner: 'typed', timeoutMs: 1_000, record: false };
  const target = path.join(dir, 'typed.jsonl');
  const lock: SessionLock = await acquire(target, options);
  const second: SessionLock | null = await tryAcquire(target);
  if (second !== null) throw new Error('a second descriptor got the lock');
  const error: unknown = await acquire(target, { timeoutMs: 0 }).catch((e: unknown) => e);
  if (!(error instanceof LockTimeoutError) || error.code !== 'ELOCKTIMEOUT') throw new Error('expected a LockTimeoutError');
  await lock.release();
  // The postgres entry's types need neither pg nor @types/pg; without pg its first use throws.
  const pgOptions: PostgresLocksOptions = { connectionString: 'postgres://localhost/x', namespace: 'typed', connectionLossMs: 5_000 };
  const missing: unknown = (() => {
    try {
      return createPostgresLocks(pgOptions);
    } catch (e: unknown) {
      return e;
    }
  })();
  if ((missing as { code?: string }).code !== 'ERR_SESSION_FLOCK_PG_MISSING') throw new Error('expected ERR_SESSION_FLOCK_PG_MISSING');
  const token: (lock: PostgresLock) => bigint = (l) => l.token;
  void token;
  console.log('ts ok');
}

main(process.argv[2] ?? '.').catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
