import { registry } from '../core/registry';
import { binding, type NativeHandle } from './binding';

/**
 * The registry key of the lock file open as `handle`: the identity of the file itself
 * ("dev:ino", as Node's lstat gives them on every platform; open never follows a symlink), so
 * every path that names one lock file (a symlinked folder, `..`, a hard link) is one lock
 * in this process. Read from the descriptor the acquire goes on to lock, so it costs no
 * system call of its own. Falls back to the path on a filesystem without identities.
 */
export function lockKeyOf(handle: NativeHandle, lockPath: string): string {
  const key = binding.fileKey(handle);
  return typeof key === 'string' && key !== '' ? key : lockPath;
}

/**
 * The key this process's registry would know an existing lock file by, without opening it
 * for locking: null when there is no such file, or when the registry is empty (nothing
 * could match, and `session-flock status` then needs no addon at all).
 */
export function existingLockKey(lockPath: string): string | null {
  if (registry.entries.size === 0) return null;
  const key = binding.pathKey(lockPath);
  if (typeof key === 'string') return key === '' ? lockPath : key;
  const name = binding.errorName(key);
  return name === 'ENOENT' || name === 'ENOTDIR' ? null : lockPath;
}
