import * as fs from 'node:fs';
import { binding } from './binding';
import { lockFailure } from './failure';

/**
 * The identity of the file at `lockPath` as a registry key ("dev:ino" of the lock file
 * itself, never of a symlink's target): every path that names one lock file (a symlinked
 * folder, `..`, a hard link) is one lock in this process. undefined when there is no
 * such file; null when it cannot tell (an error the acquire itself will report, or a
 * filesystem without inode numbers).
 */
function identity(lockPath: string): string | null | undefined {
  let stats: fs.BigIntStats | undefined;
  try {
    stats = fs.lstatSync(lockPath, { bigint: true, throwIfNoEntry: false });
  } catch {
    return null;
  }
  if (stats === undefined) return undefined;
  return stats.ino === 0n ? null : `${stats.dev}:${stats.ino}`;
}

/**
 * The registry key of the lock at `lockPath`, creating the lock file first if it is
 * missing (an acquire creates it anyway; a file's identity needs the file). Falls back to
 * the path when the identity cannot be told; the attempt then reports any error.
 */
export function lockKey(lockPath: string, fileMode: number): string {
  let key = identity(lockPath);
  if (key === undefined) {
    const opened = binding.open(lockPath, fileMode, true);
    if (typeof opened === 'number') throw lockFailure(opened, 'open', lockPath);
    binding.close(opened);
    key = identity(lockPath);
  }
  return key ?? lockPath;
}

/** The registry key of an existing lock file, without creating it (null when there is none). */
export function existingLockKey(lockPath: string): string | null {
  const key = identity(lockPath);
  return key === undefined ? null : (key ?? lockPath);
}
