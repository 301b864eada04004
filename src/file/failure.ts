import * as util from 'node:util';
import { binding } from './binding';
import { filesystemType } from './filesystem';

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

let descriptions: Map<string, string> | undefined;

const ownDescriptions: Record<string, string> = {
  EFTYPE: 'lock path is not a regular file (a FIFO, device, socket, or a file under /proc or /sys)',
  ELOOP: 'lock path is a symbolic link, which is never followed',
  ECANCELED: 'operation canceled',
};

function describeCode(name: string): string {
  if (ownDescriptions[name]) return ownDescriptions[name];
  if (descriptions === undefined) {
    descriptions = new Map();
    for (const [, [errName, message]] of util.getSystemErrorMap()) descriptions.set(errName, message);
  }
  return descriptions.get(name) ?? 'unknown error';
}

/** A Node-style fs error: `ENOENT: no such file or directory, open '/x.lock'`, with code, errno, syscall, path. */
export function systemError(
  name: string,
  osErrno: number,
  syscall: string,
  path: string,
): NodeJS.ErrnoException {
  const error = new Error(`${name}: ${describeCode(name)}, ${syscall} '${path}'`) as NodeJS.ErrnoException;
  error.code = name;
  error.errno = osErrno === 0 ? undefined : process.platform === 'win32' ? osErrno : -osErrno;
  error.syscall = syscall;
  error.path = path;
  Error.captureStackTrace(error, systemError);
  return error;
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
