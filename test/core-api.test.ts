import * as diagnostics from 'node:diagnostics_channel';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, freeInAnotherProcess, openDescriptors, runNode, startLocker, tempDir, dist } from './helpers';
import {
  acquire,
  heldLocks,
  LockAbortedError,
  LockDeadlockError,
  LockTimeoutError,
  releaseAll,
  tryAcquireSync,
  withLock,
} from '../dist/cjs/index.js';

describe('re-entrancy', () => {
  it('re-enters inside withLock and lets the kernel lock go on the last release', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    await withLock(target, async (outer) => {
      const inner = await acquire(target);
      expect(inner.held).toBe(true);
      await withLock(target, async () => {
        expect(heldLocks()[0].count).toBe(3);
      });
      await inner.release();
      expect(outer.held).toBe(true);
      expect(await freeInAnotherProcess(target)).toBe(false);
      const nestedShared = await acquire(target, { shared: true }); // shared inside exclusive is fine
      nestedShared.releaseSync();
    });
    expect(heldLocks()).toEqual([]);
    expect(await freeInAnotherProcess(target)).toBe(true);
  });

  it('an unrelated concurrent task in the same process queues instead of re-entering', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const events: string[] = [];
    let entered!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const writer = withLock(target, async () => {
      events.push('writer:start');
      entered();
      await new Promise((r) => setTimeout(r, 100));
      events.push('writer:end');
    });
    await inside;
    // This task was started outside withLock's async context, so it must wait its turn.
    const other = await acquire(target);
    events.push('other:acquired');
    await other.release();
    await writer;
    expect(events).toEqual(['writer:start', 'writer:end', 'other:acquired']);
  });

  it('throws LockDeadlockError at once for reentrant:false or exclusive inside shared', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    await withLock(target, async () => {
      const error = await acquire(target, { reentrant: false }).catch((e) => e);
      expect(error).toBeInstanceOf(LockDeadlockError);
      expect(error.code).toBe('ELOCKDEADLOCK');
    });
    await withLock(target, async () => {
      const error = await acquire(target).catch((e) => e);
      expect(error).toBeInstanceOf(LockDeadlockError);
      expect(error.message).toContain('shared');
      const reader = await acquire(target, { shared: true });
      reader.releaseSync();
    }, { shared: true });
    expect(heldLocks()).toEqual([]);
  });
});

describe('releaseAll and handles', () => {
  it('releaseAll closes every descriptor and leaves old handles inert', async () => {
    const dir = tempDir();
    const a = await acquire(path.join(dir, 'a'));
    const b = await acquire(path.join(dir, 'b'), { shared: true });
    const waiting = acquire(path.join(dir, 'a'), { timeoutMs: Infinity });
    expect(await releaseAll()).toBe(2);
    expect(await waiting.catch((e) => e)).toBeInstanceOf(LockAbortedError);
    expect(a.held).toBe(false);
    expect(b.held).toBe(false);
    const again = await acquire(path.join(dir, 'a'));
    await a.release(); // the dead handle must not touch the new holder
    a.releaseSync();
    expect(again.held).toBe(true);
    expect(await freeInAnotherProcess(path.join(dir, 'a'))).toBe(false);
    await again.release();
    await again.release(); // idempotent
    expect(await freeInAnotherProcess(path.join(dir, 'a'))).toBe(true);
  });

  it('supports using / await using disposal', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    {
      const lock = await acquire(target);
      lock[Symbol.dispose]();
      expect(lock.held).toBe(false);
    }
    const lock = await acquire(target);
    await lock[Symbol.asyncDispose]();
    expect(await freeInAnotherProcess(target)).toBe(true);
  });

  it('a garbage-collected SessionLock is released with a warning naming where it was acquired', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const result = await runNode(['--expose-gc', fixture('gc-leak.cjs'), target]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.whileReferenced).toBe('held');
    expect(report.afterGc).toBe('free');
    expect(report.warnings).toHaveLength(1);
    expect(report.warnings[0].code).toBe('SESSION_FLOCK_LEAK');
    expect(report.warnings[0].message).toContain('gc-leak.cjs');
  });

  it('leaves the descriptor count unchanged after 10 000 cycles', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    (await acquire(target)).releaseSync(); // warm up lazily opened descriptors
    const before = openDescriptors();
    for (let i = 0; i < 10_000; i++) {
      const lock = i % 2 === 0 ? await acquire(target, { record: i % 4 === 0 }) : tryAcquireSync(target, { record: false })!;
      lock.releaseSync();
    }
    expect(openDescriptors()).toBe(before);
    expect(heldLocks()).toEqual([]);
  });

  it('closes the descriptor each request opens to learn the lock key, whatever becomes of the request', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    (await acquire(target)).releaseSync();
    const before = openDescriptors();
    for (let i = 0; i < 50; i++) {
      let entered!: () => void;
      let leave!: () => void;
      const inside = new Promise<void>((resolve) => (entered = resolve));
      const done = new Promise<void>((resolve) => (leave = resolve));
      const holder = withLock(target, async () => {
        // Re-entered, or refused as a deadlock: neither keeps a descriptor.
        (await acquire(target)).releaseSync();
        tryAcquireSync(target)!.releaseSync();
        expect(await acquire(target, { reentrant: false }).catch((e) => e)).toBeInstanceOf(LockDeadlockError);
        entered();
        await done;
      });
      await inside;
      // Outside its async context: one try finds it held, a queued acquire gives up.
      expect(tryAcquireSync(target)).toBeNull();
      expect(await acquire(target, { timeoutMs: 0 }).catch((e) => e)).toBeInstanceOf(LockTimeoutError);
      expect(await acquire(target, { timeoutMs: 1 }).catch((e) => e)).toBeInstanceOf(LockTimeoutError);
      leave();
      await holder;
      await withLock(target, async () => {
        expect(await acquire(target).catch((e) => e)).toBeInstanceOf(LockDeadlockError);
      }, { shared: true });
      expect(await acquire(target, { signal: AbortSignal.abort() }).catch((e) => e)).toBeInstanceOf(LockAbortedError);
    }
    expect(openDescriptors()).toBe(before);
    expect(heldLocks()).toEqual([]);
  });
});

describe('holder record and diagnostics', () => {
  it('writes the record into the lock file while held, without argv, and empties it on release', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const lock = await acquire(target, { owner: 'agent:main' });
    const record = JSON.parse(fs.readFileSync(lock.lockPath, 'utf8'));
    expect(record).toMatchObject({ pid: process.pid, hostname: os.hostname(), owner: 'agent:main', mode: 'exclusive' });
    expect(Object.keys(record).sort()).toEqual(['acquiredAt', 'createdAt', 'hostname', 'mode', 'node', 'nonce', 'owner', 'pid', 'process']);
    expect(Object.keys(record.process).sort()).toEqual(['argv0', 'title']);
    expect((fs.statSync(lock.lockPath).mode & 0o777).toString(8)).toBe('600');
    await lock.release();
    expect(fs.readFileSync(lock.lockPath, 'utf8')).toBe('');
    expect(fs.existsSync(lock.lockPath)).toBe(true); // the lock file stays unless removeLockFile says otherwise
  });

  it('records exactly this process and this grant, whatever the owner and the title hold', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const title = process.title;
    try {
      for (const [owner, newTitle] of [
        ['quote " back\\ slash', title],
        ['line\nbreak \u2028 \u0000 é 🔒', 'retitled "node"'],
        [undefined, title],
      ] as const) {
        process.title = newTitle;
        const lock = await acquire(target, { owner, shared: owner === undefined });
        const text = fs.readFileSync(lock.lockPath, 'utf8');
        expect(text.endsWith('}\n')).toBe(true);
        expect(JSON.parse(text)).toEqual({
          pid: process.pid,
          createdAt: new Date(lock.acquiredAt).toISOString(),
          hostname: os.hostname(),
          owner: owner ?? null,
          mode: owner === undefined ? 'shared' : 'exclusive',
          acquiredAt: lock.acquiredAt,
          process: { argv0: process.argv0, title: process.title },
          node: process.version,
          nonce: expect.stringMatching(/^[0-9a-f]{12}-[0-9]+$/),
        });
        await lock.release();
      }
    } finally {
      process.title = title;
    }
  });

  it('never reads the record to decide: a hostile record neither blocks nor breaks an acquire', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    fs.writeFileSync(`${target}.lock`, '{"pid": 1, "owner": "not really", "nonce": "x"}');
    const lock = await acquire(target, { timeoutMs: 0, record: false });
    lock.releaseSync();
    fs.writeFileSync(`${target}.lock`, '\u0000garbage{{{');
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target, options: { record: false } });
    const error = await acquire(target, { timeoutMs: 0 }).catch((e) => e);
    expect(error).toBeInstanceOf(LockTimeoutError);
    // No usable record: the kernel names the holder where it can (Linux), else it is plainly unknown.
    if (process.platform === 'linux') expect(error.message).toContain(`held by pid ${holder.pid} (`);
    else expect(error.message).toContain('holder unknown (no holder record;');
    await holder.call({ op: 'release', id });
  });

  it('publishes acquire/release/contended/long-hold on diagnostics channels and warns once on a long hold', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const seen: string[] = [];
    const subscriptions = ['acquire', 'release', 'contended', 'long-hold'].map((name) => {
      const listener = (message: any) => seen.push(`${name}:${path.basename(message.lockPath)}`);
      diagnostics.subscribe(`session-flock:${name}`, listener);
      return () => diagnostics.unsubscribe(`session-flock:${name}`, listener);
    });
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const holder = await startLocker();
      const { id } = await holder.call({ op: 'acquire', target });
      const pending = acquire(target, { maxHoldMs: 30, timeoutMs: 20_000 });
      await new Promise((r) => setTimeout(r, 100));
      await holder.call({ op: 'release', id });
      const lock = await pending;
      await new Promise((r) => setTimeout(r, 100));
      expect(lock.held).toBe(true); // a long hold is reported, never stolen
      await lock.release();
      expect(seen).toEqual(['contended:s.jsonl.lock', 'acquire:s.jsonl.lock', 'long-hold:s.jsonl.lock', 'release:s.jsonl.lock']);
      expect(warnings.filter((w) => (w as NodeJS.ErrnoException).code === 'SESSION_FLOCK_LONG_HOLD')).toHaveLength(1);
    } finally {
      for (const unsubscribe of subscriptions) unsubscribe();
      process.off('warning', onWarning);
    }
  });
});

describe('bad input', () => {
  it('rejects bad arguments with Node-style TypeError/RangeError codes', async () => {
    const cases: [unknown, unknown, string, string][] = [
      [42, undefined, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
      ['', undefined, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
      ['/tmp/a\0b', undefined, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
      ['/tmp/x', { timeoutMs: -1 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
      ['/tmp/x', { timeoutMs: NaN }, 'RangeError', 'ERR_OUT_OF_RANGE'],
      ['/tmp/x', { timeoutMs: '10' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
      ['/tmp/x', { shared: 'yes' }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
      ['/tmp/x', { signal: {} }, 'TypeError', 'ERR_INVALID_ARG_TYPE'],
      ['/tmp/x', { fileMode: 0o10000 }, 'RangeError', 'ERR_OUT_OF_RANGE'],
      ['/tmp/x', { lockPath: '' }, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
      ['/tmp/x', { timeout: 5 }, 'TypeError', 'ERR_INVALID_ARG_VALUE'],
      ['/tmp/x', 'fast', 'TypeError', 'ERR_INVALID_ARG_TYPE'],
    ];
    for (const [target, options, name, code] of cases) {
      const error = await acquire(target as string, options as object).catch((e) => e);
      expect(error.name, `${String(target)} ${JSON.stringify(options)}`).toBe(name);
      expect(error.code).toBe(code);
      expect(() => tryAcquireSync(target as string, options as object)).toThrow(expect.objectContaining({ code }));
    }
    expect(fs.existsSync('/tmp/x.lock')).toBe(false);
    await expect(withLock('/tmp/x', 'nope' as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('reports filesystem errors with Node code, syscall and path, and leaves nothing behind', async () => {
    const dir = tempDir();
    const before = openDescriptors();
    const missing = path.join(dir, 'no-such-dir', 's.jsonl');
    await expect(acquire(missing)).rejects.toMatchObject({ code: 'ENOENT', syscall: 'open', path: `${missing}.lock` });
    fs.mkdirSync(path.join(dir, 'd.lock'));
    await expect(acquire(path.join(dir, 'd'))).rejects.toMatchObject({ code: 'EISDIR', syscall: 'open' });
    fs.symlinkSync(path.join(dir, 'elsewhere'), path.join(dir, 'l.lock'));
    const loop = await acquire(path.join(dir, 'l')).catch((e) => e);
    expect(loop).toMatchObject({ code: 'ELOOP', syscall: 'open', path: path.join(dir, 'l.lock') });
    expect(loop.message).toContain('symbolic link');
    expect(fs.existsSync(path.join(dir, 'elsewhere'))).toBe(false);
    expect(heldLocks()).toEqual([]);
    expect(openDescriptors()).toBe(before);
    expect(fs.existsSync(path.join(dir, 'd.lock'))).toBe(true);
  });

  it('reports EACCES in a read-only directory (run as an unprivileged user when we are root)', async () => {
    const dir = tempDir();
    fs.chmodSync(dir, 0o755);
    const readOnly = path.join(dir, 'ro');
    fs.mkdirSync(readOnly, { mode: 0o555 });
    fs.chmodSync(readOnly, 0o555);
    const asRoot = process.getuid?.() === 0;
    // Root opens anything, so the child drops to nobody, but only once the library and its addon are
    // loaded: nobody may not be able to enter the folder the repository lives in (a home, a 0700 mktemp -d).
    const script = `const lib = require(${JSON.stringify(dist)});
      lib.tryAcquireSync(${JSON.stringify(path.join(dir, 'loads-the-addon.jsonl'))}).releaseSync();
      if (${asRoot}) { process.setgid(65534); process.setuid(65534); }
      lib.acquire(${JSON.stringify(path.join(readOnly, 's.jsonl'))})
        .then(() => console.log('acquired'), (e) => console.log(JSON.stringify({ code: e.code, syscall: e.syscall, path: e.path, message: e.message })));`;
    const result = await runNode(['-e', script]);
    expect(result.code, result.stderr).toBe(0);
    const error = JSON.parse(result.stdout);
    expect(error).toMatchObject({ code: 'EACCES', syscall: 'open', path: path.join(readOnly, 's.jsonl.lock') });
    expect(error.message).toBe(`EACCES: permission denied, open '${path.join(readOnly, 's.jsonl.lock')}'`);
  });

  it('a lock file that can no longer be opened: this process\'s own hold still decides first, the error comes with an attempt', async () => {
    const dir = tempDir();
    fs.chmodSync(dir, 0o777);
    const target = path.join(dir, 's.jsonl');
    const asRoot = process.getuid?.() === 0;
    const script = `const fs = require('node:fs');
      const lib = require(${JSON.stringify(dist)});
      lib.tryAcquireSync(${JSON.stringify(path.join(dir, 'loads-the-addon.jsonl'))}).releaseSync();
      if (${asRoot}) { process.setgid(65534); process.setuid(65534); }
      const target = ${JSON.stringify(target)};
      const code = (e) => e.code;
      (async () => {
        const out = {};
        let enter, leave;
        const inside = new Promise((r) => (enter = r));
        const done = new Promise((r) => (leave = r));
        const holding = lib.withLock(target, async () => {
          fs.chmodSync(target + '.lock', 0);
          const nested = await lib.acquire(target).catch(code);
          out.nested = nested.held ?? nested;
          if (nested.held) nested.releaseSync();
          out.deadlock = await lib.acquire(target, { reentrant: false }).then(() => 'acquired', code);
          enter();
          await done;
        });
        await inside;
        out.outside = lib.tryAcquireSync(target);
        out.queued = await lib.acquire(target, { timeoutMs: 1 }).then(() => 'acquired', (e) => e.name);
        leave();
        await holding;
        out.after = await lib.acquire(target).then(() => 'acquired', code);
        console.log(JSON.stringify(out));
      })();`;
    const result = await runNode(['-e', script]);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ nested: true, deadlock: 'ELOCKDEADLOCK', outside: null, queued: 'LockTimeoutError', after: 'EACCES' });
  });
});

describe('module formats', () => {
  it('works from ESM import and CommonJS require', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const esm = path.join(path.dirname(dist), '..', 'esm', 'index.mjs');
    const script = `import { acquire } from ${JSON.stringify(esm)};
      import { createRequire } from 'node:module';
      const cjs = createRequire(import.meta.url)(${JSON.stringify(dist)});
      const lock = await acquire(${JSON.stringify(target)});
      console.log(cjs.tryAcquireSync(${JSON.stringify(target)}) === null, cjs.acquire === acquire);
      await lock.release();`;
    const result = await runNode(['--input-type=module', '-e', script]);
    expect(result.stderr).toBe('');
    expect(result.stdout.trim()).toBe('true true');
  });
});
