import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquire, inspect, tryAcquireSync } from '../dist/cjs/index.js';
import { eventually, fixture, runNode, startLocker, tempDir } from './helpers';

const read = (file: string): string => fs.readFileSync(file, 'utf8');
const hasFlock = spawnSync('flock', ['--version']).status === 0;

/**
 * util-linux flock(1) blocked on `lockPath` in another process; once the kernel grants it
 * the lock, it prints how many bytes the file held at that moment. Resolves with the
 * process's output when it ends (it exits at once after the grant).
 */
function blockedFlockReading(lockPath: string): { started: Promise<void>; output: Promise<string> } {
  const child = spawn('flock', ['-x', lockPath, 'sh', '-c', `wc -c < "${lockPath}"`], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const output = new Promise<string>((resolve) => child.on('close', () => resolve(out.trim())));
  const started = blockedInKernel(lockPath.slice(0, -'.lock'.length), child.pid as number);
  return { started, output };
}

/** Until the kernel lists `pid` as waiting for the lock of `target` (Linux /proc/locks, through inspect()). */
function blockedInKernel(target: string, pid: number): Promise<void> {
  return eventually(async () => ((await inspect(target)).waiters ?? []).some((w) => w.pid === pid), 20_000, `pid ${pid} to block in the kernel`);
}

describe('the holder record is the lock file itself', () => {
  it('holds one line of JSON naming this process and grant, readable by another process while held', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const lock = await acquire(target, { owner: 'agent:main' });
    const text = (await runNode(['-e', `process.stdout.write(require('fs').readFileSync(${JSON.stringify(lock.lockPath)}, 'utf8'))`])).stdout;
    expect(text.endsWith('}\n')).toBe(true);
    expect(text.indexOf('\n')).toBe(text.length - 1);
    const record = JSON.parse(text);
    expect(record).toEqual({
      pid: process.pid,
      createdAt: new Date(lock.acquiredAt).toISOString(),
      hostname: os.hostname(),
      owner: 'agent:main',
      mode: 'exclusive',
      acquiredAt: lock.acquiredAt,
      process: { argv0: process.argv0, title: process.title },
      node: process.version,
      nonce: expect.stringMatching(/^[0-9a-f]{12}-\d+$/),
    });
    expect(fs.readdirSync(path.dirname(target))).toEqual(['s.jsonl.lock']);
    await lock.release();
    expect(read(lock.lockPath)).toBe('');
    expect(fs.existsSync(lock.lockPath)).toBe(true); // by default the lock file stays, as with flock(1)
  });

  it.skipIf(!hasFlock || process.platform !== 'linux')('is emptied before the unlock: a waiter in another process never sees it', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const lock = await acquire(target);
    expect(read(lock.lockPath).length).toBeGreaterThan(0);
    const waiter = blockedFlockReading(lock.lockPath);
    await waiter.started;
    await lock.release();
    expect(await waiter.output).toBe('0');
  });

  it('a waiter granted on its wait thread has written its record by the time its acquire resolves', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target, options: { owner: 'first' } });
    expect(JSON.parse(read(`${target}.lock`))).toMatchObject({ pid: holder.pid, owner: 'first' });
    const waiting = acquire(target, { owner: 'second', timeoutMs: 30_000 });
    await holder.call({ op: 'release', id });
    const lock = await waiting;
    expect(JSON.parse(read(lock.lockPath))).toMatchObject({ pid: process.pid, owner: 'second', acquiredAt: lock.acquiredAt });
    await lock.release();
    expect(read(lock.lockPath)).toBe('');
  });

  it("a SIGKILLed holder's record is overwritten by the next holder, and gone after it, even when it releases at once", async () => {
    for (const how of ['try', 'wait'] as const) {
      const target = path.join(tempDir(), 's.jsonl');
      const holder = await startLocker();
      await holder.call({ op: 'acquire', target, options: { owner: 'killed' } });
      expect(JSON.parse(read(`${target}.lock`))).toMatchObject({ pid: holder.pid, owner: 'killed' });
      const waiting = how === 'wait' ? acquire(target, { owner: 'next', timeoutMs: 30_000 }) : null;
      holder.child.kill('SIGKILL');
      await holder.exited;
      const lock = waiting === null ? tryAcquireSync(target, { owner: 'next' }) : await waiting;
      expect(lock).not.toBeNull();
      expect(JSON.parse(read(`${target}.lock`))).toMatchObject({ pid: process.pid, owner: 'next' });
      lock!.releaseSync();
      expect(read(`${target}.lock`)).toBe('');
      expect((await inspect(target)).content).toBe('empty');
    }
  });

  it("writes over the OpenClaw gateway's older {pid, createdAt} body, and never over another tool's data", async () => {
    const dir = tempDir();
    const legacy = path.join(dir, 'old.jsonl');
    fs.writeFileSync(`${legacy}.lock`, JSON.stringify({ pid: 999_999_999, createdAt: '2026-04-01T00:00:00.000Z' }, null, 2));
    expect((await inspect(legacy)).content).toBe('legacy');
    const over = await acquire(legacy, { owner: 'new' });
    expect(JSON.parse(read(over.lockPath))).toMatchObject({ pid: process.pid, owner: 'new' });
    over.releaseSync();
    expect(read(over.lockPath)).toBe('');

    const foreign = path.join(dir, 'other.jsonl');
    const data = 'written by another tool\n';
    fs.writeFileSync(`${foreign}.lock`, data);
    const lock = await acquire(foreign, { owner: 'new' });
    expect(read(lock.lockPath)).toBe(data);
    const status = await inspect(foreign);
    expect(status.state).toBe('held');
    expect(status.content).toBe('foreign');
    expect(status.record).toBeNull();
    expect(status.notes.join('\n')).toMatch(/not a session-flock record/);
    lock.releaseSync();
    expect(read(lock.lockPath)).toBe(data);
  });

  it('shared holders: the last one out empties the record, earlier ones leave it', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const other = await startLocker();
    const { id } = await other.call({ op: 'acquire', target, options: { shared: true, owner: 'reader-1' } });
    const mine = await acquire(target, { shared: true, owner: 'reader-2' });
    // The later shared holder writes over the earlier one's record.
    expect(JSON.parse(read(mine.lockPath))).toMatchObject({ pid: process.pid, owner: 'reader-2', mode: 'shared' });
    await mine.release();
    // reader-1 still holds it shared: the record stays.
    expect(read(mine.lockPath)).not.toBe('');
    await other.call({ op: 'release', id });
    expect(read(mine.lockPath)).toBe('');
  });

  it('record: false writes nothing and clears nothing', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const lock = await acquire(target, { record: false });
    expect(read(lock.lockPath)).toBe('');
    lock.releaseSync();
    const killed = await startLocker();
    await killed.call({ op: 'acquire', target, options: { owner: 'killed' } });
    killed.child.kill('SIGKILL');
    await killed.exited;
    const quiet = await acquire(target, { record: false, timeoutMs: 10_000 });
    quiet.releaseSync();
    expect(JSON.parse(read(`${target}.lock`))).toMatchObject({ pid: killed.pid });
    expect((await inspect(target)).notes.join('\n')).toContain(`record left by pid ${killed.pid}, which is not running`);
  });
});

describe('removeLockFile', () => {
  it('removes the lock file at the last release, re-entrant and queued acquires included', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const options = { removeLockFile: true, timeoutMs: 10_000 };
    const first = await acquire(target, options);
    const queued = acquire(target, options);
    first.releaseSync();
    // The queued acquire of this process was next: the file stays for it.
    const second = await queued;
    expect(fs.existsSync(second.lockPath)).toBe(true);
    await second.release();
    expect(fs.existsSync(second.lockPath)).toBe(false);
  });

  it('4 processes hammering one lock keep an exact counter, and leave no lock file', async () => {
    const counter = path.join(tempDir(), 'counter');
    fs.writeFileSync(counter, '0');
    const iterations = 150;
    const runs = await Promise.all(
      [1, 2, 3, 4].map(() => runNode([fixture('counter.cjs'), counter, String(iterations), JSON.stringify({ removeLockFile: true })], { timeoutMs: 120_000 })),
    );
    for (const run of runs) expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(Number(read(counter))).toBe(4 * iterations);
    expect(fs.readdirSync(path.dirname(counter))).toEqual(['counter']);
  });

  it.runIf(process.platform === 'linux')('a waiter blocked on the removed file opens the new one and gets the lock', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const holder = await startLocker();
    const { id } = await holder.call({ op: 'acquire', target, options: { removeLockFile: true } });
    // Kept open, the old file's inode cannot be reused for the new one.
    const old = fs.openSync(`${target}.lock`, 'r');
    const waiting = acquire(target, { owner: 'waiter', timeoutMs: 30_000 });
    await blockedInKernel(target, process.pid);
    await holder.call({ op: 'release', id });
    const lock = await waiting;
    expect(fs.fstatSync(old).nlink).toBe(0);
    expect(fs.statSync(lock.lockPath).ino).not.toBe(fs.fstatSync(old).ino);
    fs.closeSync(old);
    expect(JSON.parse(read(lock.lockPath))).toMatchObject({ pid: process.pid, owner: 'waiter' });
    lock.releaseSync();
    expect(read(lock.lockPath)).toBe('');
  });
});

