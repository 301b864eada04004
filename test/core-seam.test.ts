// The core on its own, driven through the seam by a backend that lives in memory
// (test/fake-backend.ts): the test plays the lock server and decides when each wait ends.
import * as diagnostics from 'node:diagnostics_channel';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BUSY, GRANTED, RETRY } from '../src/core/backend';
import { LockAbortedError, LockDeadlockError, LockTimeoutError } from '../src/core/errors';
import { type CallSite, captureCallSite } from '../src/core/hold';
import { acquireLock, heldLocksOf, type LockFamily, releaseAllOf, runLocked, tryLock, tryLockSync } from '../src/core/locks';
import { type LockOptions, resolveLockOptions } from '../src/core/options';
import { SessionLock } from '../src/core/session-lock';
import { FakeBackend, type FakeHandle } from './fake-backend';

let families = 0;

/** Where the fake API was called from, as the file API's captureCallSite(acquire) is. */
function callSite(): CallSite {
  return captureCallSite(callSite);
}

/** A public API over a fresh fake backend, as src/file/api.ts is over the addon. */
function fakeApi(backendOptions?: ConstructorParameters<typeof FakeBackend>[0]) {
  const backend = new FakeBackend(backendOptions);
  const family: LockFamily<FakeHandle> = { group: Symbol(`fake ${++families}`), backend, lockClass: SessionLock };
  const prefix = `fake#${families}:`;
  const options = (name: string, o: LockOptions = {}) => resolveLockOptions(o as Record<string, unknown>, name, `fake:${name}`);
  return {
    backend,
    family,
    key: (name: string) => `${prefix}${name}`,
    acquire: (name: string, o?: LockOptions) => acquireLock(family, `${prefix}${name}`, options(name, o), callSite()),
    tryAcquire: (name: string, o?: LockOptions) => tryLock(family, `${prefix}${name}`, options(name, o), callSite()),
    tryAcquireSync: (name: string, o?: LockOptions) => tryLockSync(family, `${prefix}${name}`, options(name, o), callSite()),
    withLock: <T>(name: string, fn: (lock: SessionLock) => T | Promise<T>, o?: LockOptions) =>
      runLocked(`${prefix}${name}`, acquireLock(family, `${prefix}${name}`, options(name, o), callSite()), fn),
  };
}

/** 'pending', or how `promise` settled, once everything already queued has run. */
async function stateOf(promise: Promise<unknown>): Promise<'pending' | 'resolved' | 'rejected'> {
  const settled = promise.then(
    () => 'resolved' as const,
    () => 'rejected' as const,
  );
  return Promise.race([settled, new Promise<'pending'>((resolve) => setImmediate(() => resolve('pending')))]);
}

/** A shared request that waited behind another process's holder and gave up: its wait still drains. */
async function drainedWait() {
  const api = fakeApi({ adoptableWaits: false });
  const elsewhere = api.backend.holdElsewhere(api.key('a'));
  const controller = new AbortController();
  const drained = api.acquire('a', { shared: true, signal: controller.signal });
  controller.abort();
  await expect(drained).rejects.toBeInstanceOf(LockAbortedError);
  return { api, elsewhere };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('the core through a fake backend', () => {
  it('serves this process in FIFO order, with one backend wait at a time', async () => {
    const api = fakeApi();
    const elsewhere = api.backend.holdElsewhere(api.key('a'));
    const order: number[] = [];
    const acquires = [1, 2, 3, 4].map((n) =>
      api.acquire('a', { timeoutMs: Infinity }).then((lock) => {
        order.push(n);
        return lock;
      }),
    );
    expect(api.backend.waits).toHaveLength(1);
    api.backend.letGo(elsewhere);
    api.backend.settle(GRANTED);
    for (let n = 1; n <= 4; n++) {
      const lock = await acquires[n - 1];
      expect(order).toEqual([1, 2, 3, 4].slice(0, n));
      expect(await stateOf(acquires[n] ?? Promise.resolve())).toBe(n < 4 ? 'pending' : 'resolved');
      lock.releaseSync();
    }
    expect(api.backend.mostWaits).toBe(1);
    // The first was granted through its wait, the others by trySync as each release let them through.
    expect(api.backend.releases.map((r) => r.data)).toEqual(['grant 2', 'grant 3', 'grant 4', 'grant 5']);
    expect(api.backend.releases.map((r) => r.lastInProcess)).toEqual([false, false, false, true]);
    expect(api.backend.held(api.key('a'))).toBe(false);
  });

  it('spends one budget across the queue and the backend wait, then names the holder', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const api = fakeApi();
    // In this process a reader holds it, and elsewhere another: the writer queues here first.
    const first = api.tryAcquireSync('a', { shared: true }) as SessionLock;
    api.backend.holdElsewhere(api.key('a'), true);
    const second = api.acquire('a', { timeoutMs: 1000 });
    expect(api.backend.waits).toHaveLength(0);
    vi.advanceTimersByTime(400);
    first.releaseSync();
    expect(api.backend.waits.map((w) => w.remainingMs)).toEqual([600]);
    vi.advanceTimersByTime(599);
    expect(await stateOf(second)).toBe('pending');
    vi.advanceTimersByTime(1);
    const error = await second.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    expect((error as LockTimeoutError).lockPath).toBe('fake:a');
    expect((error as LockTimeoutError).message).toContain('held by pid 4242');
    expect(api.backend.waits.map((w) => w.cancelled)).toEqual([true]);
  });

  it('a wait with no budget left is one attempt, and BUSY from it is a timeout (a backend without trySync)', async () => {
    const api = fakeApi({ trySync: false, adoptableWaits: false });
    api.backend.holdElsewhere(api.key('a'));
    const once = api.tryAcquire('a');
    expect(api.backend.waits.map((w) => w.remainingMs)).toEqual([0]);
    api.backend.settle(BUSY);
    expect(await once).toBeNull();
    const timed = api.acquire('a', { timeoutMs: 0 });
    api.backend.settle(BUSY);
    await expect(timed).rejects.toBeInstanceOf(LockTimeoutError);
  });

  it('abort rejects a queued acquire and a waiting one, and cancels the backend wait', async () => {
    const api = fakeApi({ adoptableWaits: false });
    api.backend.holdElsewhere(api.key('a'));
    const waiting = new AbortController();
    const queued = new AbortController();
    const first = api.acquire('a', { signal: waiting.signal });
    const second = api.acquire('a', { signal: queued.signal });
    queued.abort(new Error('not needed'));
    const error = await second.catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LockAbortedError);
    expect((error as Error).cause).toEqual(new Error('not needed'));
    expect(api.backend.waits.map((w) => w.cancelled)).toEqual([false]);
    waiting.abort();
    await expect(first).rejects.toBeInstanceOf(LockAbortedError);
    expect(api.backend.waits.map((w) => w.cancelled)).toEqual([true]);
    await expect(api.acquire('a', { signal: AbortSignal.abort() })).rejects.toBeInstanceOf(LockAbortedError);
    expect(api.backend.waits).toHaveLength(1);
  });

  it('a cancelled wait that wins the race anyway: its late grant is released at once', async () => {
    const api = fakeApi({ adoptableWaits: false });
    const elsewhere = api.backend.holdElsewhere(api.key('a'));
    const controller = new AbortController();
    const acquiring = api.acquire('a', { signal: controller.signal });
    controller.abort();
    await expect(acquiring).rejects.toBeInstanceOf(LockAbortedError);
    const [wait] = api.backend.waits;
    expect(wait.cancelled).toBe(true);
    api.backend.letGo(elsewhere);
    api.backend.settle(GRANTED, wait);
    expect(api.backend.discarded).toEqual([wait.handle]);
    expect(api.backend.held(api.key('a'))).toBe(false);
    expect(heldLocksOf(api.family)).toEqual([]);
    expect(api.backend.releases).toEqual([]);
  });

  it('a given-up wait is adopted by the next request of the same mode where the backend allows', async () => {
    const api = fakeApi({ adoptableWaits: true });
    const elsewhere = api.backend.holdElsewhere(api.key('a'));
    const controller = new AbortController();
    const giving = api.acquire('a', { signal: controller.signal });
    const adopting = api.acquire('a');
    controller.abort();
    await expect(giving).rejects.toBeInstanceOf(LockAbortedError);
    const [wait] = api.backend.waits;
    expect(wait.cancelled).toBe(false);
    expect(wait.report.requestOf(wait.handle)?.options.name).toBe('fake:a');
    api.backend.letGo(elsewhere);
    api.backend.settle(GRANTED, wait);
    const lock = await adopting;
    expect(lock.held).toBe(true);
    lock.releaseSync();
    expect(api.backend.releases).toEqual([{ id: wait.handle.id, data: `grant ${wait.handle.id}`, lastInProcess: true }]);
  });

  it('a drained wait blocks no compatible request', async () => {
    const { api, elsewhere } = await drainedWait();
    api.backend.letGo(elsewhere);
    // Not queued behind the cancelled wait: granted by trySync while that wait still runs.
    const reader = await api.acquire('a', { shared: true });
    expect(reader.held).toBe(true);
    expect(api.backend.waits.map((w) => w.cancelled)).toEqual([true]);
    api.backend.settle(GRANTED);
    expect(api.backend.discarded).toHaveLength(1);
    expect(reader.held).toBe(true);
    reader.releaseSync();
    expect(api.backend.held(api.key('a'))).toBe(false);
  });

  it('starts no other wait on a lock until its drained wait has reported', async () => {
    const { api, elsewhere } = await drainedWait();
    const writer = api.acquire('a');
    expect(api.backend.waits).toHaveLength(1);
    const [cancelled] = api.backend.waits;
    api.backend.settle(new Error('canceled'), cancelled);
    expect(api.backend.waits).toHaveLength(1);
    expect(api.backend.waits[0].handle).not.toBe(cancelled.handle);
    api.backend.letGo(elsewhere);
    api.backend.settle(GRANTED);
    const lock = await writer;
    expect(lock.shared).toBe(false);
    lock.releaseSync();
    expect(api.backend.mostWaits).toBe(1);
  });

  it('a wait the backend asks to start over (RETRY) stays at the head, and an error fails it', async () => {
    const api = fakeApi();
    api.backend.holdElsewhere(api.key('a'));
    const first = api.acquire('a');
    const second = api.acquire('a');
    api.backend.settle(RETRY);
    expect(api.backend.waits).toHaveLength(1);
    api.backend.settle(new Error('server gone'));
    await expect(first).rejects.toThrow('server gone');
    expect(api.backend.waits).toHaveLength(1);
    expect(await stateOf(second)).toBe('pending');
    await releaseAllOf(api.family);
    await expect(second).rejects.toBeInstanceOf(LockAbortedError);
  });

  it('releaseAll rejects pending acquires, releases every hold of its family and no other', async () => {
    const api = fakeApi();
    const other = fakeApi();
    const a = (await api.acquire('a', { shared: true })) as SessionLock;
    const b = await api.acquire('a', { shared: true });
    const c = await api.acquire('c');
    const theirs = await other.acquire('a');
    const pending = api.acquire('a');
    expect(heldLocksOf(api.family).map((h) => [h.lockPath, h.mode, h.waiters])).toEqual([
      ['fake:a', 'shared', 1],
      ['fake:a', 'shared', 1],
      ['fake:c', 'exclusive', 0],
    ]);
    expect(await releaseAllOf(api.family)).toBe(3);
    await expect(pending).rejects.toBeInstanceOf(LockAbortedError);
    expect([a.held, b.held, c.held, theirs.held]).toEqual([false, false, false, true]);
    expect(api.backend.releases).toHaveLength(3);
    expect(heldLocksOf(api.family)).toEqual([]);
    expect(heldLocksOf(other.family)).toHaveLength(1);
    a.releaseSync();
    expect(api.backend.releases).toHaveLength(3);
    theirs.releaseSync();
  });

  it('re-enters inside withLock, and refuses where waiting could only deadlock', async () => {
    const api = fakeApi();
    const result = await api.withLock('a', async (outer) => {
      const inner = await api.acquire('a');
      expect(heldLocksOf(api.family).map((h) => h.count)).toEqual([2]);
      inner.releaseSync();
      expect(outer.held).toBe(true);
      await expect(api.acquire('a', { reentrant: false })).rejects.toBeInstanceOf(LockDeadlockError);
      return 'done';
    });
    expect(result).toBe('done');
    await api.withLock('r', async () => {
      await expect(api.acquire('r')).rejects.toBeInstanceOf(LockDeadlockError);
    }, { shared: true });
    expect(api.backend.releases).toHaveLength(2);
    expect(api.backend.waits).toHaveLength(0);
  });

  it("a grant's bookkeeping waits for the backend's afterGrant() where it calls one, else for the next turn", async () => {
    const events: string[] = [];
    const onAcquire = (message: unknown) => events.push(`acquired ${(message as { lockPath: string }).lockPath}`);
    diagnostics.subscribe('session-flock:acquire', onAcquire);
    try {
      for (const callsAfterGrant of [true, false]) {
        events.length = 0;
        const api = fakeApi({ callsAfterGrant });
        const elsewhere = api.backend.holdElsewhere(api.key('a'));
        const pending = api.acquire('a', { timeoutMs: 60_000 });
        api.backend.letGo(elsewhere);
        api.backend.settle(GRANTED);
        const lock = await pending;
        // The acquirer has resumed and the grant is live, but nothing announced it yet.
        expect(lock.held).toBe(true);
        expect(events).toEqual([]);
        for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
        expect(events).toEqual(callsAfterGrant ? [] : ['acquired fake:a']);
        api.backend.resumed();
        expect(events).toEqual(['acquired fake:a']);
        lock.releaseSync();
        expect(events).toEqual(['acquired fake:a']);
      }
    } finally {
      diagnostics.unsubscribe('session-flock:acquire', onAcquire);
    }
  });

  it('releases a lock that was dropped while held, and says where it was taken', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const api = fakeApi();
    const leaks: unknown[] = [];
    const onLeak = (message: unknown) => leaks.push(message);
    diagnostics.subscribe('session-flock:leak', onLeak);
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      await (async function takeAndDrop() {
        await api.acquire('a', { owner: 'dropper' });
      })();
      for (let i = 0; i < 100 && api.backend.releases.length === 0; i++) {
        await new Promise((resolve) => setImmediate(resolve));
        gc();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(api.backend.releases).toHaveLength(1);
      expect(leaks).toMatchObject([{ lockPath: 'fake:a', owner: 'dropper' }]);
      expect(heldLocksOf(api.family)).toEqual([]);
      await vi.waitFor(() => expect(warnings.map((w) => (w as NodeJS.ErrnoException).code)).toContain('SESSION_FLOCK_LEAK'));
      expect(warnings.find((w) => (w as NodeJS.ErrnoException).code === 'SESSION_FLOCK_LEAK')?.message).toContain('takeAndDrop');
    } finally {
      diagnostics.unsubscribe('session-flock:leak', onLeak);
      process.off('warning', onWarning);
    }
  });
});
