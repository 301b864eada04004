import { binding } from './binding';
import { filesystemType } from './filesystem';
import { systemError } from './system-error';

export class LockUnsupportedError extends Error {
  override readonly name = 'LockUnsupportedError';
  readonly code = 'ELOCKUNSUPPORTED';
  constructor(
    readonly lockPath: string,
    readonly filesystem: string | null,
    override readonly cause: NodeJS.ErrnoException,
  ) {
    super(
      `file locks are not supported for ${lockPath}` +
        (filesystem ? ` on its ${filesystem} filesystem` : '') +
        ` (${cause.code} from ${cause.syscall})`,
    );
  }
}

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
