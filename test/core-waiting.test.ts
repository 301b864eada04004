import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { eventually, fixture, freeInAnotherProcess, openDescriptors, runNode, startLocker, tempDir, waitThreads, dist } from './helpers';
import { acquire, heldLocks, LockAbortedError, LockTimeoutError, tryAcquire, tryAcquireSync } from '../dist/cjs/index.js';

const binding = require('../dist/cjs/file/binding.js').binding as { waitsInFlight(): number };

/** Nothing of ours is left: no hold, no waiter, no kernel wait, no extra descriptor, and another process can lock it. */
async function expectNothingLeft(target: string, descriptorsBefore: number): Promise<void> {
  expect(heldLocks()).toEqual([]);
  await eventually(() => binding.waitsInFlight() === 0, 10_000, 'the kernel wait to finish');
  expect(openDescriptors()).toBe(descriptorsBefore);
  expect(await freeInAnotherProcess(target)).toBe(true);
}

describe('waiting', () => {
  it('timeoutMs: 0 tries once, names the holder, and leaves nothing held', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target, options: { owner: 'agent:coder' } });
    const before = openDescriptors();
    const error = await acquire(target, { timeoutMs: 0 }).catch((e) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(error.code).toBe('ELOCKTIMEOUT');
    expect(error.message).toMatch(new RegExp(`^timed out after 0ms waiting for .*s\\.jsonl\\.lock — held by pid ${holder.pid} \\(.*\\), owner agent:coder, for \\d+ms$`));
    expect(await tryAcquire(target)).toBeNull();
    expect(openDescriptors()).toBe(before);
    await holder.call({ op: 'release', id });
    await expectNothingLeft(target, before);
  });

  it('a finite timeout gives up the kernel wait; the late grant is released at once', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target });
    const before = openDescriptors();
    const error = await acquire(target, { timeoutMs: 150 }).catch((e) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(error.holder.pid).toBe(holder.pid);
    // The POSIX wait thread is still blocked in flock(); when the holder lets go the kernel
    // grants it to that thread, which must drop it at once.
    await holder.call({ op: 'release', id });
    await expectNothingLeft(target, before);
  });

  it('a lock granted after a kernel wait is stamped with the grant, on the clock Date.now() reads', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target });
    const waiting = acquire(target, { timeoutMs: 30_000 }); // its kernel wait starts here
    const beforeRelease = Date.now();
    await holder.call({ op: 'release', id });
    const lock = await waiting;
    const resumed = Date.now();
    expect(Number.isInteger(lock.acquiredAt)).toBe(true);
    expect(lock.acquiredAt).toBeGreaterThanOrEqual(beforeRelease);
    expect(lock.acquiredAt).toBeLessThanOrEqual(resumed);
    expect(heldLocks()[0].acquiredAt).toBe(lock.acquiredAt);
    lock.releaseSync();
  });

  it('abort rejects with LockAbortedError and leaves nothing held', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target });
    const before = openDescriptors();
    const controller = new AbortController();
    const pending = acquire(target, { signal: controller.signal, timeoutMs: Infinity });
    setTimeout(() => controller.abort(new Error('shutting down')), 100);
    const error = await pending.catch((e) => e);
    expect(error).toBeInstanceOf(LockAbortedError);
    expect(error.name).toBe('AbortError');
    expect(error.code).toBe('ABORT_ERR');
    expect(error.cause.message).toBe('shutting down');
    const already = await acquire(target, { signal: AbortSignal.abort() }).catch((e) => e);
    expect(already).toBeInstanceOf(LockAbortedError);
    await holder.call({ op: 'release', id });
    await expectNothingLeft(target, before);
  });

  it('in-process waiters are served in FIFO order', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const first = await acquire(target);
    const order: number[] = [];
    const waiters = [0, 1, 2, 3, 4, 5].map((i) =>
      acquire(target, { shared: i === 3 }).then(async (lock) => {
        order.push(i);
        await new Promise((r) => setTimeout(r, 5));
        await lock.release();
      }),
    );
    expect(tryAcquireSync(target, { shared: true })).toBeNull(); // no barging past the queue
    await first.release();
    await Promise.all(waiters);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('many in-process waiters behind another process use one native wait thread', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target });
    const baseline = waitThreads();
    const pending = Array.from({ length: 50 }, () => acquire(target, { timeoutMs: 30_000 }).then((l) => l.release()));
    await eventually(() => waitThreads() === baseline + 1, 5_000, 'the wait thread to start');
    await new Promise((r) => setTimeout(r, 100));
    expect(waitThreads()).toBe(baseline + 1);
    expect(binding.waitsInFlight()).toBe(1);
    await holder.call({ op: 'release', id });
    await Promise.all(pending);
    await eventually(() => waitThreads() === baseline, 5_000, 'the wait thread to end');
  });

  it('with UV_THREADPOOL_SIZE=1, waiters and a holder doing fs.promises work finish without deadlock', async () => {
    const dir = tempDir();
    const target = path.join(dir, 's.jsonl');
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target });
    const run = runNode([fixture('threadpool.cjs'), 'waiters', target, dir], { env: { UV_THREADPOOL_SIZE: '1' }, timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 300)); // let the 20 waiters queue behind the other process
    await holder.call({ op: 'release', id });
    const result = await run;
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ done: 20, sum: 190 });
  });

  it('an uncontended acquire+release with record:false needs no threadpool thread', async () => {
    const dir = tempDir();
    const result = await runNode([fixture('threadpool.cjs'), 'blocked', path.join(dir, 's.jsonl'), dir], {
      env: { UV_THREADPOOL_SIZE: '1' },
      timeoutMs: 20_000,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ acquiredWhilePoolBlocked: true });
  });

  it('a pending acquire keeps the process alive; a given-up kernel wait does not', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const lock = await acquire(target);
    const waitsForever = `require(${JSON.stringify(dist)}).acquire(${JSON.stringify(target)}, { timeoutMs: Infinity })
      .then((l) => { console.log('acquired'); l.releaseSync(); });`;
    const pending = runNode(['-e', waitsForever], { timeoutMs: 20_000 });
    await new Promise((r) => setTimeout(r, 500));
    lock.releaseSync();
    const served = await pending;
    expect(served.signal).toBeNull();
    expect(served.stdout).toBe('acquired\n');

    const relock = await acquire(target);
    // This child gives up after 100 ms; its wait thread stays parked in flock() while we hold
    // the lock, and must not keep the child from exiting.
    const givesUp = `require(${JSON.stringify(dist)}).acquire(${JSON.stringify(target)}, { timeoutMs: 100 })
      .catch((e) => console.log(e.code));`;
    const result = await runNode(['-e', givesUp], { timeoutMs: 20_000 });
    expect(result.signal).toBeNull(); // it exited on its own, not killed by the runner's guard
    expect(result.stdout).toBe('ELOCKTIMEOUT\n');
    expect(relock.held).toBe(true);
    relock.releaseSync();
  });

  it('a pending acquire in another process is served when we release', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const lock = await acquire(target);
    const waiter = await startLocker();
    const pending = waiter.call({ op: 'acquire', target, options: { timeoutMs: 30_000 } });
    await new Promise((r) => setTimeout(r, 100));
    await lock.release();
    const result = await pending;
    expect(result.ok).toBe(true);
    expect(tryAcquireSync(target)).toBeNull();
    expect(fs.existsSync(`${target}.lock`)).toBe(true);
  });
});
