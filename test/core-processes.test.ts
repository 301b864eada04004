import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, freeInAnotherProcess, isAlive, otherProcess, runNode, startLocker, tempDir } from './helpers';

describe('across processes', () => {
  it('4 processes doing read-increment-write under withLock lose no update', async () => {
    const dir = tempDir();
    const counter = path.join(dir, 'counter');
    fs.writeFileSync(counter, '0');
    const runs = await Promise.all([1, 2, 3, 4].map(() => runNode([fixture('counter.cjs'), counter, '150'], { timeoutMs: 120_000 })));
    for (const run of runs) expect(run.code, run.stderr).toBe(0);
    expect(Number(fs.readFileSync(counter, 'utf8'))).toBe(600);
  });

  it('an exclusive holder in another process excludes us, and we get it when it releases', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target, options: { owner: 'agent:holder' } });
    const { acquire, tryAcquireSync, LockTimeoutError } = await import('../dist/cjs/index.js');
    expect(tryAcquireSync(target)).toBeNull();
    const error = await acquire(target, { timeoutMs: 50 }).catch((e) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(error.holder).toMatchObject({ pid: holder.pid, owner: 'agent:holder', sameProcess: false });
    expect(error.message).toContain(`held by pid ${holder.pid}`);
    const pending = acquire(target, { timeoutMs: 20_000 });
    await holder.call({ op: 'release', id });
    const lock = await pending;
    expect(lock.held).toBe(true);
    const again = await holder.call({ op: 'try', target });
    expect(again.id).toBeNull();
    lock.releaseSync();
  });

  it('shared locks coexist across processes; exclusive conflicts with shared both ways', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const a = await startLocker();
    const b = await startLocker();
    const sharedA = await a.call({ op: 'acquire', target, options: { shared: true } });
    const sharedB = await b.call({ op: 'try', target, options: { shared: true } });
    expect(sharedB.id).not.toBeNull();
    expect(await freeInAnotherProcess(target)).toBe(false);
    expect(await freeInAnotherProcess(target, { shared: true })).toBe(true);
    await a.call({ op: 'release', id: sharedA.id });
    await b.call({ op: 'release', id: sharedB.id });
    const exclusive = await a.call({ op: 'acquire', target });
    expect((await b.call({ op: 'try', target, options: { shared: true } })).id).toBeNull();
    await a.call({ op: 'release', id: exclusive.id });
    expect((await b.call({ op: 'try', target, options: { shared: true } })).id).not.toBeNull();
  });

  it('a SIGKILLed holder frees the lock at once', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const holder = await startLocker();
    await holder.call({ op: 'acquire', target });
    const { acquire } = await import('../dist/cjs/index.js');
    const pending = acquire(target, { timeoutMs: 30_000 });
    holder.child.kill('SIGKILL');
    const lock = await pending;
    expect(lock.held).toBe(true);
    expect((await holder.exited).signal).toBe('SIGKILL');
    lock.releaseSync();
  });

  it('a child spawned while the lock is held does not keep it after the parent dies', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const parent = await startLocker();
    await parent.call({ op: 'acquire', target });
    const { sleeperPid } = await parent.call({ op: 'spawn-sleeper' });
    const sleeper = otherProcess(sleeperPid);
    try {
      parent.child.kill('SIGKILL');
      await parent.exited;
      expect(isAlive(sleeperPid)).toBe(true);
      expect(await freeInAnotherProcess(target)).toBe(true);
    } finally {
      sleeper.kill('SIGKILL');
    }
  });

  it('a worker thread terminated while holding leaves the lock free', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const run = await runNode([fixture('worker-holder.cjs'), target]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ whileHeld: 'held', afterTerminate: 'free' });
  });

  it('a worker terminated while waiting in the kernel never keeps the lock', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const run = await runNode([fixture('worker-waiter.cjs'), target]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ rounds: 10, free: 10 });
  });

  it('a replaced lock file (unlinked or renamed over) never yields two holders', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const lockPath = `${target}.lock`;
    const { acquire } = await import('../dist/cjs/index.js');
    for (const replace of ['unlink', 'rename'] as const) {
      const holder = await startLocker();
      const remote = await startLocker();
      const { id } = await holder.call({ op: 'acquire', target, options: { record: false } });
      let remoteId: number | null = null;
      const remoteDone = remote.call({ op: 'acquire', target, options: { timeoutMs: 30_000 } }).then((r) => (remoteId = r.id));
      let localLock: Awaited<ReturnType<typeof acquire>> | null = null;
      const localDone = acquire(target, { timeoutMs: 30_000 }).then((l) => (localLock = l));
      await new Promise((r) => setTimeout(r, 300)); // both waiters block in the kernel on the old file
      // The holder replaces the file while it still holds it, as anyone removing a lock file must.
      if (replace === 'unlink') fs.unlinkSync(lockPath);
      else {
        fs.writeFileSync(`${lockPath}.new`, '');
        fs.renameSync(`${lockPath}.new`, lockPath);
      }
      await holder.call({ op: 'release', id });
      await Promise.race([remoteDone, localDone]);
      // Exactly one of the two holds, and it holds the file the path names now: a newcomer is excluded.
      expect([remoteId !== null, localLock !== null].filter(Boolean)).toHaveLength(1);
      expect(await freeInAnotherProcess(target)).toBe(false);
      if (localLock !== null) {
        (localLock as { releaseSync(): void }).releaseSync();
        await remoteDone;
        expect(await freeInAnotherProcess(target)).toBe(false);
        await remote.call({ op: 'release', id: remoteId });
      } else {
        await remote.call({ op: 'release', id: remoteId });
        const lock = await localDone;
        expect(await freeInAnotherProcess(target)).toBe(false);
        lock.releaseSync();
      }
      expect(await freeInAnotherProcess(target)).toBe(true);
      holder.child.kill('SIGKILL');
      remote.child.kill('SIGKILL');
    }
  });
});
