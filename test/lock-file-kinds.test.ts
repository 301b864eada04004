// Lock paths that name something other than a regular file are refused with
// EFTYPE naming the path, and nothing is left held, opened or created.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import * as util from 'node:util';
import { describe, expect, it } from 'vitest';
import { openDescriptors, tempDir } from './helpers';

async function refusal(target: string, lockPath: string): Promise<NodeJS.ErrnoException> {
  const { tryAcquire, acquire, heldLocks } = await import('../dist/cjs/index.js');
  const before = openDescriptors();
  const tried = await tryAcquire(target, { lockPath, record: false }).then(
    (lock) => (lock.releaseSync(), null),
    (error: NodeJS.ErrnoException) => error,
  );
  const waited = await acquire(target, { lockPath, timeoutMs: 100 }).then(
    (lock) => (lock.releaseSync(), null),
    (error: NodeJS.ErrnoException) => error,
  );
  expect(openDescriptors()).toBe(before);
  expect(heldLocks()).toHaveLength(0);
  expect(tried, `tryAcquire accepted ${lockPath}`).toBeInstanceOf(Error);
  expect(waited?.code).toBe(tried!.code);
  return tried!;
}

function expectNotRegular(error: NodeJS.ErrnoException, lockPath: string): void {
  expect(error).toMatchObject({ code: 'EFTYPE', path: lockPath });
  // The errno Node's own fs gives EFTYPE (libuv's), since the OS has none for it.
  expect(typeof error.errno === 'number' && util.getSystemErrorName(error.errno)).toBe('EFTYPE');
  expect(error.message).toContain(lockPath);
  expect(error.message).toMatch(/not a regular file/);
}

describe.skipIf(process.platform === 'win32')('lock paths that are not regular files', () => {
  it('a Unix socket is refused with EFTYPE, like a FIFO or a device', async () => {
    const dir = tempDir();
    const socketPath = path.join(dir, 'sock');
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    try {
      expectNotRegular(await refusal(path.join(dir, 's.jsonl'), socketPath), socketPath);
      expect(fs.statSync(socketPath).isSocket()).toBe(true);
    } finally {
      server.close();
    }
  });

  it.skipIf(process.platform !== 'linux')('a file under /proc is refused with EFTYPE although it says S_IFREG', async () => {
    // Writable by its own process, so the open succeeds and only the check refuses it.
    const lockPath = `/proc/${process.pid}/comm`;
    expect(fs.statSync(lockPath).isFile()).toBe(true);
    fs.closeSync(fs.openSync(lockPath, 'r+'));
    expectNotRegular(await refusal(path.join(tempDir(), 's.jsonl'), lockPath), lockPath);
  });

  it.skipIf(process.platform !== 'linux')('a file under /sys is refused with EFTYPE although it says S_IFREG', async (ctx) => {
    // A sysfs attribute this process may open read-write (root, /sys mounted rw).
    const candidates = ['/sys/kernel/mm/transparent_hugepage/enabled', '/sys/kernel/mm/ksm/run', '/sys/power/state', '/sys/kernel/uevent_helper'];
    const lockPath = candidates.find((p) => {
      try {
        fs.closeSync(fs.openSync(p, 'r+'));
        return true;
      } catch {
        return false;
      }
    });
    if (lockPath === undefined) return ctx.skip('no sysfs file this process may open read-write');
    expect(fs.statSync(lockPath).isFile()).toBe(true);
    expectNotRegular(await refusal(path.join(tempDir(), 's.jsonl'), lockPath), lockPath);
  });
});
