import { binding, type NativeHandle } from './binding';

/**
 * The registry key of the lock file open as `handle`: the identity of the file itself
 * ("dev:ino" on POSIX, volume and file id on Windows; open never follows a symlink), so
 * every path that names one lock file (a symlinked folder, `..`, a hard link) is one lock
 * in this process. Read from the descriptor the acquire goes on to lock, so it costs no
 * system call of its own. Falls back to the path on a filesystem without identities.
 */
export function lockKeyOf(handle: NativeHandle, lockPath: string): string {
  const key = binding.fileKey(handle);
  return typeof key === 'string' && key !== '' ? key : lockPath;
}

/** The registry key of an existing lock file, without opening it for locking (null when there is none). */
export function existingLockKey(lockPath: string): string | null {
  const key = binding.pathKey(lockPath);
  if (typeof key === 'string') return key === '' ? lockPath : key;
  const name = binding.errorName(key);
  return name === 'ENOENT' || name === 'ENOTDIR' ? null : lockPath;
}
