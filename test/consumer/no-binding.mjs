// Installed without any binary (and without running the install script, as pnpm 10 and
// Bun do by default): the import succeeds, and the first call that needs the addon
// rejects with ERR_SESSION_FLOCK_NO_BINDING and the paths it tried.
import assert from 'node:assert/strict';
import path from 'node:path';

const lib = await import('session-flock');
const adapter = await import('session-flock/session-write-lock');
assert.equal(typeof adapter.acquireSessionWriteLock, 'function');
const error = await lib.acquire(path.join(process.argv[2], 'nb.jsonl')).then(() => null, (e) => e);
assert.ok(error !== null, 'acquire succeeded without a binary');
assert.equal(error.code, 'ERR_SESSION_FLOCK_NO_BINDING');
assert.match(error.message, /Paths tried:\n {2}- .*node_modules\/session-flock\/build\/Release\/session_flock\.node\n/);
assert.ok(error.message.includes(`node_modules/session-flock/prebuilds/${process.platform}-${process.arch}/ (no such folder)`), error.message);
console.log('no-binding ok');
