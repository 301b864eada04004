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
  /** Write the JSON holder record `${lockPath}.json`; default true. */
  record?: boolean;
  /** Permissions of a new lock file and of the record; default 0o600. */
  fileMode?: number;
}

export interface ResolvedOptions extends ResolvedLockOptions {
  record: boolean;
  fileMode: number;
}

const KNOWN_KEYS: ReadonlySet<string> = new Set([...LOCK_OPTION_KEYS, 'lockPath', 'record', 'fileMode']);

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
    maxHoldMs: optionalDuration(o, 'maxHoldMs', Infinity, false),
    reentrant: optionalBoolean(o, 'reentrant', true),
    fileMode,
  };
}
