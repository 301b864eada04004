import { resolve, sep } from 'node:path';
import { invalidArgType, invalidArgValue } from '../core/errors';

/** The suffix that turns a protected file's path into its lock file's. */
const SUFFIX = '.lock';

/** A path argument, checked and made absolute. */
export function validatePath(name: string, value: unknown): string {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value);
  if (value.length === 0) throw invalidArgValue(name, value, 'must be a non-empty path');
  if (value.includes('\0')) throw invalidArgValue(name, value, 'must be a string without null bytes');
  return isResolvedPosixPath(value) ? value : resolve(value);
}

/**
 * Whether path.resolve() would return `value` unchanged on POSIX: absolute, with no empty,
 * `.` or `..` segment and no trailing slash. The common case (a caller's own absolute
 * path) then skips the normalizing scan.
 */
function isResolvedPosixPath(value: string): boolean {
  return POSIX && value.charCodeAt(0) === 47 && !UNRESOLVED_POSIX.test(value);
}

const POSIX = sep === '/';
const UNRESOLVED_POSIX = /\/\/|\/\.\.?(?:\/|$)|.\/$/;

/** The lock file of `target`: `${target}.lock`. */
export function lockPathOf(target: string): string {
  return `${target}${SUFFIX}`;
}

/** Whether `path` names a lock file by the rule of lockPathOf() (`a.jsonl.lock`, not a bare `.lock`). */
export function isLockPath(path: string): boolean {
  return path.endsWith(SUFFIX) && path.length > SUFFIX.length && !/[\\/]$/.test(path.slice(0, -SUFFIX.length));
}

/** `a.jsonl.lock` -> `a.jsonl`; any other path is its own target. */
export function targetOf(lockPath: string): string {
  return isLockPath(lockPath) ? lockPath.slice(0, -SUFFIX.length) : lockPath;
}
