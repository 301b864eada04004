import { LockUnsupportedError, systemError } from '../core/errors';
import { binding } from './binding';
import { filesystemType } from './filesystem';

const UNSUPPORTED = new Set(['ENOLCK', 'EOPNOTSUPP', 'ENOTSUP', 'ENOSYS']);

/** Turns a negative code from the addon into the error the public API throws. */
export function lockFailure(code: number, syscall: string, lockPath: string): Error {
  const name = binding.errorName(code) ?? `EUNKNOWN(${code})`;
  const error = systemError(name, binding.errorErrno(code), syscall, lockPath);
  if (syscall === 'flock' && UNSUPPORTED.has(name)) {
    return new LockUnsupportedError(lockPath, filesystemType(lockPath), error);
  }
  return error;
}
