import { invalidArgType, outOfRange } from '../core/errors';
import {
  DEFAULT_TIMEOUT_MS,
  LOCK_OPTION_KEYS,
  type LockOptions,
  optionalBoolean,
  optionalDuration,
  optionalOwner,
  optionalSignal,
  optionsObject,
  type ResolvedLockOptions,
  validatePath,
} from '../core/options';

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

export interface ResolvedOptions extends ResolvedLockOptions {
  record: boolean;
  removeLockFile: boolean;
  fileMode: number;
}

const KNOWN_KEYS: ReadonlySet<string> = new Set([...LOCK_OPTION_KEYS, 'lockPath', 'record', 'removeLockFile', 'fileMode']);

/** All argument checks of acquire/tryAcquire/withLock; native code trusts what leaves here. */
export function resolveOptions(target: unknown, options: unknown): ResolvedOptions {
  const absoluteTarget = validatePath('target', target);
  const o = optionsObject(options, KNOWN_KEYS);
  const lockPath = o.lockPath === undefined ? `${absoluteTarget}.lock` : validatePath('options.lockPath', o.lockPath);
  const signal = optionalSignal(o);
  const owner = optionalOwner(o);
  let fileMode = 0o600;
  if (o.fileMode !== undefined) {
    if (typeof o.fileMode !== 'number') throw invalidArgType('options.fileMode', 'of type number', o.fileMode);
    if (!Number.isInteger(o.fileMode) || o.fileMode < 0 || o.fileMode > 0o7777) {
      throw outOfRange('options.fileMode', 'an integer from 0 to 0o7777', o.fileMode);
    }
    fileMode = o.fileMode;
  }
  return {
    target: absoluteTarget,
    lockPath,
    shared: optionalBoolean(o, 'shared', false),
    timeoutMs: optionalDuration(o, 'timeoutMs', DEFAULT_TIMEOUT_MS, true),
    signal,
    owner,
    record: optionalBoolean(o, 'record', true),
    removeLockFile: optionalBoolean(o, 'removeLockFile', false),
    maxHoldMs: optionalDuration(o, 'maxHoldMs', Infinity, false),
    reentrant: optionalBoolean(o, 'reentrant', true),
    fileMode,
  };
}
