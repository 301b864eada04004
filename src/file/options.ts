import { invalidArgType, outOfRange } from '../core/errors';
import { LOCK_OPTION_KEYS, type LockOptions, optionalBoolean, optionsObject, type ResolvedLockOptions, resolveLockOptions } from '../core/options';
import { lockPathOf, validatePath } from './lock-path';

export interface AcquireOptions extends LockOptions {
  /** Default `${target}.lock`. */
  lockPath?: string;
  /** Write the JSON holder record into the lock file while it is held; default true. */
  record?: boolean;
  /**
   * Remove the lock file at the last release, while still holding it; default false.
   * Only for files that every locker re-checks after locking (session-flock does):
   * flock(1) or fs-ext could then hold a deleted file.
   */
  removeLockFile?: boolean;
  /** Permissions of a new lock file; default 0o600. */
  fileMode?: number;
}

/** A file request's options: the core's, whose `name` is the lock file's path, and the file backend's own. */
export interface ResolvedOptions extends ResolvedLockOptions {
  readonly lockPath: string;
  readonly record: boolean;
  readonly removeLockFile: boolean;
  readonly fileMode: number;
}

const KNOWN_KEYS: ReadonlySet<string> = new Set([...LOCK_OPTION_KEYS, 'lockPath', 'record', 'removeLockFile', 'fileMode']);

function optionalFileMode(o: Record<string, unknown>): number {
  if (o.fileMode === undefined) return 0o600;
  if (typeof o.fileMode !== 'number') throw invalidArgType('options.fileMode', 'of type number', o.fileMode);
  if (!Number.isInteger(o.fileMode) || o.fileMode < 0 || o.fileMode > 0o7777) {
    throw outOfRange('options.fileMode', 'an integer from 0 to 0o7777', o.fileMode);
  }
  return o.fileMode;
}

/** All argument checks of acquire/tryAcquire/withLock; native code trusts what leaves here. */
export function resolveOptions(target: unknown, options: unknown): ResolvedOptions {
  const absoluteTarget = validatePath('target', target);
  const o = optionsObject(options, KNOWN_KEYS);
  const lockPath = o.lockPath === undefined ? lockPathOf(absoluteTarget) : validatePath('options.lockPath', o.lockPath);
  const core = resolveLockOptions(o, absoluteTarget, lockPath);
  // Field by field, not `...core`: on every acquire, a spread here cost more than the
  // acquire's own system calls (V8 builds the copy the slow way).
  return {
    name: core.name,
    target: core.target,
    shared: core.shared,
    timeoutMs: core.timeoutMs,
    signal: core.signal,
    owner: core.owner,
    maxHoldMs: core.maxHoldMs,
    reentrant: core.reentrant,
    lockPath,
    record: optionalBoolean(o, 'record', true),
    removeLockFile: optionalBoolean(o, 'removeLockFile', false),
    fileMode: optionalFileMode(o),
  };
}
