// The in-process queue and the identity of a lock (issue 11: 1, 2, 3, 7a, and the
// long-hold report that came early).
import * as diagnostics from 'node:diagnostics_channel';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { eventually, freeInAnotherProcess, startLocker, tempDir } from './helpers';
import {
  acquire,
  heldLocks,
  LockAbortedError,
  LockTimeoutError,
  releaseAll,
  tryAcquire,
  tryAcquireSync,
  withLock,
} from '../dist/cjs/index.js';

const binding = require('../dist/cjs/file/binding.js').binding as { waitsInFlight(): number };

/** Settles to 'pending' unless `promise` has settled by the time queued jobs have run. */
async function state(promise: Promise<unknown>): Promise<'resolved' | 'rejected' | 'pending'> {
  let result: 'resolved' | 'rejected' | 'pending' = 'pending';
  promise.then(
    () => (result = 'resolved'),
    () => (result = 'rejected'),
  );
  for (let i = 0; i < 5; i++) await Promise.resolve();
  return result;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('releaseAll', () => {
  it('rejects every pending acquire, grants nothing while it runs, and counts the holds it found', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const shared = await acquire(target, { shared: true });
    // Queued behind our own shared hold: an exclusive acquire, then a shared one that the
    // exclusive one's departure would let through.
    const exclusive = acquire(target, { timeoutMs: 30_000 });
    const sharedBehind = acquire(target, { shared: true, timeoutMs: 30_000 });
    const outcomes = Promise.allSettled([exclusive, sharedBehind]);
    expect(await releaseAll()).toBe(1);
    const [a, b] = await outcomes;
    expect(a.status).toBe('rejected');
    expect((a as PromiseRejectedResult).reason).toBeInstanceOf(LockAbortedError);
    expect(b.status).toBe('rejected');
    expect((b as PromiseRejectedResult).reason).toBeInstanceOf(LockAbortedError);
    expect(shared.held).toBe(false);
    expect(heldLocks()).toEqual([]);
    expect(await freeInAnotherProcess(target)).toBe(true);
  });
});

describe('a given-up exclusive wait', () => {
  it("does not block this process's shared acquires while it drains; its late grant is released", async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const reader = await startLocker();
    const { id } = await reader.call({ op: 'acquire', target, options: { shared: true } });
    const error = await acquire(target, { timeoutMs: 100 }).catch((e) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    // The exclusive flock() is still parked in the kernel behind the other reader.
    expect(binding.waitsInFlight()).toBe(1);
    const tried = await tryAcquire(target, { shared: true });
    expect(tried).not.toBeNull();
    const waited = await acquire(target, { shared: true, timeoutMs: 10_000 });
    expect(waited.held).toBe(true);
    tried!.releaseSync();
    waited.releaseSync();
    await reader.call({ op: 'release', id });
    // Now the drained wait is granted on its own thread, which lets go of it at once.
    await eventually(() => binding.waitsInFlight() === 0, 10_000, 'the drained wait to report');
    expect(heldLocks()).toEqual([]);
    expect(await freeInAnotherProcess(target)).toBe(true);
  });
});

describe('lock identity', () => {
  function layout(): { real: string; viaLink: string; viaDotDot: string; viaHardLink: string } {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'real'));
    fs.mkdirSync(path.join(dir, 'other'));
    fs.symlinkSync(path.join(dir, 'real'), path.join(dir, 'link'), 'dir');
    const real = path.join(dir, 'real', 's.jsonl');
    fs.writeFileSync(`${real}.lock`, '');
    fs.linkSync(`${real}.lock`, path.join(dir, 'other', 'h.jsonl.lock'));
    return {
      real,
      viaLink: path.join(dir, 'link', 's.jsonl'),
      // Not normalized here: the library resolves the `..` itself.
      viaDotDot: `${path.join(dir, 'other')}${path.sep}..${path.sep}link${path.sep}s.jsonl`,
      viaHardLink: path.join(dir, 'other', 'h.jsonl'),
    };
  }

  it('re-enters inside withLock whichever path names the lock file', async () => {
    const { real, viaLink, viaHardLink } = layout();
    const seen = await withLock(real, async () => {
      const a = await acquire(viaLink, { timeoutMs: 2_000 });
      const b = await acquire(viaHardLink, { timeoutMs: 2_000 });
      const count = heldLocks()[0].count;
      a.releaseSync();
      b.releaseSync();
      return { count, holds: heldLocks().length };
    });
    expect(seen).toEqual({ count: 3, holds: 1 });
    expect(heldLocks()).toEqual([]);
  });

  it('names the path each acquire gave, even just after another path to the file let go', async () => {
    const { real, viaHardLink } = layout();
    (await acquire(real)).releaseSync();
    // Still the same turn: the first path's entry is unused, and not yet forgotten.
    const lock = await acquire(viaHardLink);
    expect([lock.target, lock.lockPath]).toEqual([viaHardLink, `${viaHardLink}.lock`]);
    expect(heldLocks()).toMatchObject([{ target: viaHardLink, lockPath: `${viaHardLink}.lock` }]);
    lock.releaseSync();
  });

  it("names the path each acquire gave while another path's given-up wait still drains on the same entry", async () => {
    const { real, viaHardLink } = layout();
    const reader = await startLocker();
    const { id } = await reader.call({ op: 'acquire', target: real, options: { shared: true } });
    await expect(acquire(real, { timeoutMs: 100 })).rejects.toBeInstanceOf(LockTimeoutError);
    // The exclusive wait through `real` is parked in the kernel: its entry stays in use.
    expect(binding.waitsInFlight()).toBe(1);
    const lock = await acquire(viaHardLink, { shared: true });
    expect([lock.target, lock.lockPath]).toEqual([viaHardLink, `${viaHardLink}.lock`]);
    expect(heldLocks()).toMatchObject([{ target: viaHardLink, lockPath: `${viaHardLink}.lock` }]);
    lock.releaseSync();
    await reader.call({ op: 'release', id });
    await eventually(() => binding.waitsInFlight() === 0, 10_000, 'the drained wait to report');
  });

  it('queues other tasks in one FIFO, not in a second kernel wait', async () => {
    const { real, viaLink, viaDotDot, viaHardLink } = layout();
    const held = await acquire(real);
    const order: string[] = [];
    const waiting = [viaLink, viaDotDot, viaHardLink].map((p, i) =>
      acquire(p, { timeoutMs: 10_000 }).then((lock) => {
        order.push(`w${i}`);
        lock.releaseSync();
      }),
    );
    expect(tryAcquireSync(viaLink)).toBeNull();
    expect(heldLocks()).toMatchObject([{ waiters: 3 }]);
    expect(binding.waitsInFlight()).toBe(0);
    held.releaseSync();
    await Promise.all(waiting);
    expect(order).toEqual(['w0', 'w1', 'w2']);
    expect(heldLocks()).toEqual([]);
  });
});

describe('timers', () => {
  it('a finite timeoutMs beyond setTimeout range still times out, and not before', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const held = await acquire(target);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const timeoutMs = 2 ** 31 + 5_000;
    const pending = acquire(target, { timeoutMs });
    pending.catch(() => undefined);
    await vi.advanceTimersByTimeAsync(timeoutMs - 1);
    expect(await state(pending)).toBe('pending');
    await vi.advanceTimersByTimeAsync(1);
    expect(await state(pending)).toBe('rejected');
    const error = await pending.catch((e) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect(error.timeoutMs).toBe(timeoutMs);
    vi.useRealTimers();
    held.releaseSync();
  });

  it('a long-hold report never comes before maxHoldMs, even when a timer fires early against Date.now()', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const reports: { heldForMs: number; maxHoldMs: number }[] = [];
    const onReport = (message: unknown): void => void reports.push(message as { heldForMs: number; maxHoldMs: number });
    diagnostics.subscribe('session-flock:long-hold', onReport);
    const warnings: string[] = [];
    const onWarning = (w: Error & { code?: string }): void => void (w.code === 'SESSION_FLOCK_LONG_HOLD' && warnings.push(w.message));
    process.on('warning', onWarning);
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    try {
      const lock = tryAcquireSync(target, { maxHoldMs: 50, record: false })!;
      // Date.now() lags the timers' clock by a millisecond, as it can in Node.
      vi.setSystemTime(Date.now() - 1);
      await vi.advanceTimersByTimeAsync(50);
      expect(reports).toEqual([]);
      await vi.advanceTimersByTimeAsync(1);
      expect(reports).toHaveLength(1);
      expect(reports[0].heldForMs).toBeGreaterThanOrEqual(reports[0].maxHoldMs);
      lock.releaseSync();
    } finally {
      vi.useRealTimers();
      diagnostics.unsubscribe('session-flock:long-hold', onReport);
    }
    await eventually(() => warnings.length === 1, 5_000, 'the long-hold warning');
    process.off('warning', onWarning);
  });
});
