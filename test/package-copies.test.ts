// Two copies of the package in one process (a duplicate install) share one registry, so one
// copy's entry grants the other copy's waiters. Each acquirer must still get a SessionLock
// of its own copy's class (its withLock, holdOf and leak watch only know their own), whichever
// copy made the entry and whichever path grants it: the in-process queue, or a kernel wait
// that the waiter adopted.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freeInAnotherProcess, root, startLocker, tempDir } from './helpers';

type Lib = typeof import('../dist/cjs/index.js');

function copyOfPackage(): Lib {
  const dir = path.join(tempDir(), 'copy');
  fs.mkdirSync(path.join(dir, 'build', 'Release'), { recursive: true });
  fs.copyFileSync(path.join(root, 'package.json'), path.join(dir, 'package.json'));
  fs.cpSync(path.join(root, 'dist'), path.join(dir, 'dist'), { recursive: true });
  fs.copyFileSync(path.join(root, 'build', 'Release', 'session_flock.node'), path.join(dir, 'build', 'Release', 'session_flock.node'));
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'));
  return require(path.join(dir, 'dist', 'cjs', 'index.js')) as Lib;
}

describe.runIf(fs.existsSync(path.join(root, 'build', 'Release', 'session_flock.node')))('two copies of the package in one process', () => {
  it('a waiter of one copy, granted by the other copy\'s entry, gets its own copy\'s lock', async () => {
    const a = (await import('../dist/cjs/index.js')) as Lib;
    const b = copyOfPackage();
    expect(b.SessionLock).not.toBe(a.SessionLock);
    const target = path.join(tempDir(), 's.jsonl');

    // In-process queue: copy a's hold makes the entry; copy b's acquire queues on it.
    const first = await a.acquire(target, { record: false });
    const queued = b.withLock(target, (lock) => {
      expect(lock).toBeInstanceOf(b.SessionLock);
      expect(lock.held).toBe(true);
      expect(lock.acquiredAt).toBeGreaterThan(0);
      return 'ran';
    });
    first.releaseSync();
    expect(await queued).toBe('ran');

    // A kernel wait started by copy a, adopted by copy b's waiter when a's gives up.
    const locker = await startLocker();
    const held = await locker.call({ op: 'acquire', target, options: { record: false } });
    expect(held.ok).toBe(true);
    const givingUp = a.acquire(target, { record: false, timeoutMs: 200 }).then(
      () => 'granted',
      (error: NodeJS.ErrnoException) => error.code,
    );
    const adopting = b.acquire(target, { record: false, timeoutMs: 30_000 });
    expect(await givingUp).toBe('ELOCKTIMEOUT');
    await locker.call({ op: 'release', id: held.id });
    const adopted = await adopting;
    expect(adopted).toBeInstanceOf(b.SessionLock);
    expect(adopted.acquiredAt).toBeGreaterThan(0);
    expect(b.heldLocks().map((h) => h.lockPath)).toContain(`${target}.lock`);
    expect(await freeInAnotherProcess(target)).toBe(false);
    await adopted.release();
    expect(await freeInAnotherProcess(target)).toBe(true);
    expect(a.heldLocks()).toEqual([]);
  });
});
