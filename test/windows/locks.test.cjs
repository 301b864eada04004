'use strict';
// The Windows code path (flock_win32.c + the public API) with real child
// processes. Run by scripts/test-windows.sh with a Windows node.exe under Wine;
// scripts/test-arm64.sh runs it too (under qemu-user) with SF_TEST_NODE_WRAPPER.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn, execFileSync } = require('node:child_process');
const { lib, suiteSetup, sleep, waitsDrained } = require('./helpers.cjs');
const { acquire, tryAcquire, withLock, heldLocks, LockTimeoutError, LockAbortedError } = lib;

const isWindows = process.platform === 'win32';
const { dir, target, holder } = suiteSetup(test, 's');

async function assertFreeForOthers(t) {
  // Another process, not this one, gets the lock: nothing is held here.
  const other = await holder();
  const r = await other.call({ op: 'try', target: t });
  await other.close();
  assert.equal(r.got, true, 'another process could not take the lock');
}

test('exclusive conflict across processes', async () => {
  const t = target();
  const h = await holder();
  await h.call({ op: 'acquire', target: t, owner: 'agent:child' });
  assert.equal(await tryAcquire(t), null);
  assert.equal(await tryAcquire(t, { shared: true }), null);
  await assert.rejects(acquire(t, { timeoutMs: 250 }), LockTimeoutError);
  // The given-up wait drains (it stays parked in the kernel); it blocks nothing
  // compatible, but against an exclusive holder a shared try still fails.
  assert.equal(await tryAcquire(t, { shared: true }), null, 'the child still holds it exclusively');
  await h.call({ op: 'release' });
  await waitsDrained(); // the given-up wait's late grant, if any, is let go
  const lock = await tryAcquire(t);
  assert.ok(lock, 'free after the holder released');
  const r = await h.call({ op: 'try', target: t });
  assert.equal(r.got, false, 'the child sees our exclusive lock');
  await lock.release();
  assert.equal((await h.call({ op: 'try', target: t })).got, true);
  await h.close();
});

test('shared locks coexist; shared and exclusive conflict', async () => {
  const t = target();
  const a = await holder();
  const b = await holder();
  await a.call({ op: 'acquire', target: t, shared: true });
  assert.equal((await b.call({ op: 'try', target: t, shared: true, keep: true })).got, true);
  const mine = await tryAcquire(t, { shared: true });
  assert.ok(mine, 'a third shared holder');
  await mine.release();
  assert.equal(await tryAcquire(t), null, 'exclusive vs two shared');
  await a.call({ op: 'release' });
  assert.equal(await tryAcquire(t), null, 'exclusive vs one shared');
  await b.call({ op: 'release' });
  const ex = await tryAcquire(t);
  assert.ok(ex);
  assert.equal((await a.call({ op: 'try', target: t, shared: true })).got, false, 'shared vs exclusive');
  await ex.release();
  await a.close();
  await b.close();
});

test('a second acquire in the same process queues instead of deadlocking', async () => {
  const t = target();
  const first = await acquire(t, { reentrant: false });
  let second = null;
  const p = acquire(t, { timeoutMs: 10_000 }).then((l) => (second = l));
  await sleep(300);
  assert.equal(second, null, 'second acquire waits');
  const h = await holder();
  assert.equal((await h.call({ op: 'try', target: t })).got, false);
  await first.release();
  await p;
  assert.ok(second.held);
  assert.equal((await h.call({ op: 'try', target: t })).got, false, 'held by the second acquire');
  await second.release();
  assert.equal((await h.call({ op: 'try', target: t })).got, true);
  await h.close();
});

test('a wait across processes is granted when the holder releases', async () => {
  const t = target();
  const h = await holder();
  await h.call({ op: 'acquire', target: t });
  const started = Date.now();
  const p = acquire(t, { timeoutMs: 10_000 });
  await sleep(400);
  await h.call({ op: 'release' });
  const lock = await p;
  const waited = Date.now() - started;
  assert.ok(waited >= 350 && waited < 5000, `waited ${waited}ms`);
  assert.equal((await h.call({ op: 'try', target: t })).got, false);
  await lock.release();
  await h.close();
});

test('a killed holder frees the lock at once', async () => {
  const t = target();
  const h = await holder();
  await h.call({ op: 'acquire', target: t });
  assert.equal(await tryAcquire(t), null);
  const waiting = acquire(t, { timeoutMs: 10_000 });
  await sleep(100);
  const killedAt = Date.now();
  await h.kill();
  const lock = await waiting;
  const after = Date.now() - killedAt;
  assert.ok(lock.held);
  assert.ok(after < 2000, `granted ${after}ms after the kill`);
  await lock.release();

  const h2 = await holder();
  await h2.call({ op: 'acquire', target: t });
  await h2.kill();
  const now = await tryAcquire(t);
  assert.ok(now, 'tryAcquire right after the holder exited');
  await now.release();
});

test('timeout and abort leave nothing held', async () => {
  const t = target();
  const h = await holder();
  await h.call({ op: 'acquire', target: t, owner: 'agent:holder' });
  const err = await acquire(t, { timeoutMs: 300 }).catch((e) => e);
  assert.ok(err instanceof LockTimeoutError, String(err));
  assert.match(err.message, new RegExp(`held by pid ${h.child.pid}`));
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  await assert.rejects(acquire(t, { signal: ac.signal, timeoutMs: 10_000 }), LockAbortedError);
  await assert.rejects(acquire(t, { timeoutMs: 0 }), LockTimeoutError);
  assert.equal(heldLocks().length, 0);
  await h.call({ op: 'release' });
  await waitsDrained();
  await assertFreeForOthers(t);
  await h.close();
});

test('a cancelled wait never leaves the lock held (release racing the timeout)', async () => {
  const t = target();
  for (const delta of [-60, -20, 0, 20, 60]) {
    const h = await holder();
    await h.call({ op: 'acquire', target: t });
    const timeoutMs = 300;
    const p = acquire(t, { timeoutMs }).then((l) => l, (e) => e);
    await sleep(timeoutMs + delta);
    await h.call({ op: 'release' });
    const result = await p;
    if (result instanceof Error) {
      assert.ok(result instanceof LockTimeoutError, String(result));
      await waitsDrained();
      assert.equal(heldLocks().length, 0);
      assert.equal((await h.call({ op: 'try', target: t })).got, true, `delta ${delta}: a cancelled wait kept the lock`);
    } else {
      assert.ok(result.held);
      assert.equal((await h.call({ op: 'try', target: t })).got, false);
      await result.release();
    }
    await h.close();
  }
  assert.equal(heldLocks().length, 0);
  await assertFreeForOthers(t);
});

test('the holder record, the lock file itself, is readable by another process while held, and empty after release', async () => {
  const t = target();
  const h = await holder();
  const { lockPath } = await h.call({ op: 'acquire', target: t, owner: 'agent:coder' });
  assert.equal(lockPath, `${t}.lock`);
  // The lock covers one byte far past the data, so the record can be read while held
  // (Wine does not enforce Windows' mandatory range locks, so that part proves little here).
  const record = JSON.parse(fs.readFileSync(lockPath, 'utf8'));
  assert.equal(record.pid, h.child.pid);
  assert.equal(record.owner, 'agent:coder');
  assert.equal(record.mode, 'exclusive');
  assert.equal(typeof record.createdAt, 'string');
  assert.equal(Date.parse(record.createdAt), record.acquiredAt);
  const err = await acquire(t, { timeoutMs: 0 }).catch((e) => e);
  assert.ok(err instanceof LockTimeoutError);
  assert.match(err.message, /agent:coder/);
  await h.call({ op: 'release' });
  assert.equal(fs.readFileSync(lockPath, 'utf8'), '');
  assert.deepEqual(fs.readdirSync(path.dirname(lockPath)).filter((name) => name.startsWith(path.basename(t))), [path.basename(lockPath)]);
  await h.close();
});

test('a child spawned while the lock is held does not inherit it', { skip: !isWindows && 'Windows only' }, async () => {
  const probe = process.env.SF_HANDLE_PROBE;
  assert.ok(probe && fs.existsSync(probe), 'SF_HANDLE_PROBE names handle_probe.exe');
  const t = target();
  const name = path.basename(`${t}.lock`);
  const lock = await acquire(t);
  // Control: the probe does see a file handle it did inherit (its stdin here).
  const control = path.join(dir, 'control.txt');
  fs.writeFileSync(control, 'x');
  const fd = fs.openSync(control, 'r');
  const seen = execFileSync(probe, [path.basename(control)], { encoding: 'utf8', stdio: [fd, 'pipe', 'ignore'] });
  fs.closeSync(fd);
  assert.equal(seen.trim(), '1', 'the probe sees an inherited file handle');
  const count = execFileSync(probe, [name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.equal(count.trim(), '0', 'a child spawned while the lock is held got a handle to the lock file');
  await lock.release();

  // A holder with a long-lived grandchild dies: the lock goes with it.
  const h = await holder();
  await h.call({ op: 'acquire', target: t });
  assert.equal((await h.call({ op: 'probe', probe, name })).count, 0);
  const { pid } = await h.call({ op: 'spawn-sleeper' });
  await h.kill();
  try {
    const now = await acquire(t, { timeoutMs: 2000 });
    await now.release();
  } finally {
    try { process.kill(pid); } catch {}
  }
});

test('withLock releases on return and on throw', async () => {
  const t = target();
  const h = await holder();
  const v = await withLock(t, async (lock) => {
    assert.equal((await h.call({ op: 'try', target: t })).got, false);
    return lock.shared ? 1 : 2;
  });
  assert.equal(v, 2);
  assert.equal((await h.call({ op: 'try', target: t })).got, true);
  await assert.rejects(withLock(t, () => { throw new Error('boom'); }), /boom/);
  assert.equal((await h.call({ op: 'try', target: t })).got, true);
  await h.close();
});
