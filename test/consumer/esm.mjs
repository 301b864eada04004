// An ESM consumer, including the adapter subpath.
import { acquire, withLock, heldLocks } from 'session-flock';
import assert from 'node:assert/strict';
import path from 'node:path';

const target = path.join(process.argv[2], 'esm.jsonl');
const value = await withLock(target, async (lock) => {
  assert.equal(heldLocks().length, 1);
  assert.equal(lock.lockPath, `${target}.lock`);
  return 42;
});
assert.equal(value, 42);
const lock = await acquire(target, { shared: true });
await lock.release();
const adapter = await import('session-flock/session-write-lock').catch(() => null);
if (adapter !== null) {
  const held = await adapter.acquireSessionWriteLock({ sessionFile: target });
  await held.release();
}
const { createPostgresLocks, LockTimeoutError: PostgresTimeout } = await import('session-flock/postgres');
assert.equal(PostgresTimeout, (await import('session-flock')).LockTimeoutError);
assert.throws(() => createPostgresLocks({}), { code: 'ERR_SESSION_FLOCK_PG_MISSING' });
console.log('esm ok');
