// The addon's handles are numbers naming a slot and its occupant's generation: an id
// closed earlier (or one it never gave out) must never reach the handle that took its
// slot. Who holds what is asked of util-linux flock(1), a program we did not write.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDescriptors, tempDir } from './helpers';

const flockBinary = ['/usr/bin/flock', '/bin/flock'].find((p) => spawnSync(p, ['-V']).status === 0) ?? null;
if (flockBinary === null && process.platform === 'linux' && process.env.CI) throw new Error('util-linux flock(1) is not installed');

/** Whether flock(1) -n can take `lockFile` right now (exit 1: another descriptor holds it). */
function freeForFlock(lockFile: string): boolean {
  const { status, stderr } = spawnSync(flockBinary as string, ['-n', lockFile, 'true']);
  if (status !== 0 && status !== 1) throw new Error(`flock(1) failed: ${String(stderr)}`);
  return status === 0;
}

describe.runIf(flockBinary !== null)('native handle ids', () => {
  it('a closed id never reaches the handle that reuses its slot, and ids it never gave out touch nothing', async () => {
    const { loadBinding } = await import('../dist/cjs/file/binding.js');
    const binding = loadBinding();
    const dir = tempDir();
    const first = path.join(dir, 'first.lock');
    const second = path.join(dir, 'second.lock');
    const before = openDescriptors();

    const stale = binding.open(first, 0o600, true);
    expect(stale).toBeGreaterThan(0);
    expect(binding.close(stale)).toBe(0);
    const live = binding.open(second, 0o600, true);
    expect(live).toBeGreaterThan(0);
    expect(live).not.toBe(stale);
    expect(binding.tryLock(live, false, second, null, 0, 0)).toBe(0);
    expect(freeForFlock(second)).toBe(false);

    // Every call with the stale id answers "closed" and leaves the live lock alone.
    expect(binding.tryLock(stale, false, second, null, 0, 0)).toBe(binding.CANCELLED);
    expect(binding.sameFile(stale, second)).toBe(binding.CANCELLED);
    expect(binding.fileKey(stale)).toBe(binding.CANCELLED);
    expect(binding.setInheritable(stale, true)).toBe(binding.CANCELLED);
    expect(binding.waitLock(stale, false, second, {}, () => {}, null, 0)).toBe(binding.CANCELLED);
    expect(binding.writeRecord(stale, '{}')).toBe(binding.CANCELLED);
    expect(binding.release(stale, binding.RELEASE_CLEAR_RECORD, second)).toBe(0);
    expect(binding.unlock(stale)).toBe(0);
    expect(binding.close(stale)).toBe(0);
    for (const bogus of [0, -1, 0.5, live + 0.5, live + 1, 2 ** 52, 2 ** 53, Number.NaN, Infinity]) {
      expect(binding.tryLock(bogus as typeof live, false, second, null, 0, 0), `tryLock(${bogus})`).toBe(binding.CANCELLED);
      expect(binding.close(bogus as typeof live), `close(${bogus})`).toBe(0);
    }
    expect(freeForFlock(second)).toBe(false);
    expect(binding.sameFile(live, second)).toBe(0);

    expect(binding.close(live)).toBe(0);
    expect(freeForFlock(second)).toBe(true);
    expect(binding.tryLock(live, false, second, null, 0, 0)).toBe(binding.CANCELLED);
    expect(openDescriptors()).toBe(before);
  });

  it('many handles open at once get distinct ids, each closing only its own descriptor', async () => {
    const { loadBinding } = await import('../dist/cjs/file/binding.js');
    const binding = loadBinding();
    const dir = tempDir();
    const before = openDescriptors();
    // Past the table's first sizes, so the slots move while handles are open.
    const files = Array.from({ length: 100 }, (_, i) => path.join(dir, `${i}.lock`));
    const ids = files.map((file) => binding.open(file, 0o600, true));
    expect(new Set(ids).size).toBe(files.length);
    for (let i = 0; i < ids.length; i++) expect(binding.tryLock(ids[i], false, files[i], null, 0, 0)).toBe(0);
    for (let i = 0; i < ids.length; i += 2) expect(binding.close(ids[i])).toBe(0);
    for (let i = 0; i < files.length; i += 11) expect(freeForFlock(files[i]), files[i]).toBe(i % 2 === 0);
    for (let i = 1; i < ids.length; i += 2) expect(binding.close(ids[i])).toBe(0);
    for (let i = 0; i < files.length; i += 11) expect(freeForFlock(files[i]), files[i]).toBe(true);
    expect(openDescriptors()).toBe(before);
  });
});
