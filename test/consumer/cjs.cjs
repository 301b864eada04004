// A CommonJS consumer: take and release a lock, and contend with a child process.
const { acquire, tryAcquireSync, LockTimeoutError } = require('session-flock');
const { spawn } = require('node:child_process');
const path = require('node:path');
const assert = require('node:assert/strict');

(async () => {
  const target = path.join(process.argv[2], 'cjs.jsonl');
  const child = spawn(process.execPath, ['-e', `
    const { acquire } = require('session-flock');
    acquire(${JSON.stringify(target)}, { owner: 'consumer-child' }).then((lock) => {
      process.stdout.write('held\\n');
      process.stdin.once('data', () => lock.release().then(() => process.exit(0)));
    });`], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise((resolve) => child.stdout.once('data', resolve));
  assert.equal(tryAcquireSync(target), null);
  const error = await acquire(target, { timeoutMs: 50 }).catch((e) => e);
  assert.ok(error instanceof LockTimeoutError);
  assert.match(error.message, new RegExp(`held by pid ${child.pid}.*owner consumer-child`));
  const pending = acquire(target, { timeoutMs: 10_000 });
  child.stdin.write('release\n');
  const lock = await pending;
  assert.equal(lock.held, true);
  await lock.release();
  // session-flock/postgres loads without its optional peer pg; its first use says to install it.
  const postgres = require('session-flock/postgres');
  assert.equal(postgres.LockTimeoutError, LockTimeoutError);
  assert.throws(() => postgres.createPostgresLocks({}), { code: 'ERR_SESSION_FLOCK_PG_MISSING', message: /npm install pg/ });
  console.log('cjs ok');
})().catch((error) => {
  console.error(error);
  process.exit(1);
});
