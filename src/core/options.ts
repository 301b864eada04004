import * as path from 'node:path';
import { invalidArgType, invalidArgValue, outOfRange } from './errors';

export interface AcquireOptions {
  /** Shared (reader) lock; default exclusive. */
  shared?: boolean;
  /** Budget for the whole acquire. Default 10 000; 0 = one attempt; Infinity = no limit. */
  timeoutMs?: number;
  /** Aborting rejects a pending acquire with LockAbortedError; nothing is left held. */
  signal?: AbortSignal;
  /** Free-form label written to the holder record, e.g. "agent:main". */
  owner?: string;
  /** Default `${target}.lock`. */
  lockPath?: string;
  /** Write the JSON holder record `${lockPath}.json`; default true. */
  record?: boolean;
  /** After this long, report a long hold (never steals the lock). */
  maxHoldMs?: number;
  /** Default true: a nested acquire inside withLock() of the same lock re-enters. */
  reentrant?: boolean;
  /** Permissions of a new lock file and of the record; default 0o600. */
  fileMode?: number;
}

export interface ResolvedOptions {
  target: string;
  lockPath: string;
  shared: boolean;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  owner: string | null;
  record: boolean;
  maxHoldMs: number;
  reentrant: boolean;
  fileMode: number;
}

export const DEFAULT_TIMEOUT_MS = 10_000;

export function validatePath(name: string, value: unknown): string {
  if (typeof value !== 'string') throw invalidArgType(name, 'of type string', value);
  if (value.length === 0) throw invalidArgValue(name, value, 'must be a non-empty path');
  if (value.includes('\0')) throw invalidArgValue(name, value, 'must be a string without null bytes');
  return path.resolve(value);
}

function optionalBoolean(options: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArgType(`options.${key}`, 'of type boolean', value);
  return value;
}

function optionalDuration(options: Record<string, unknown>, key: string, fallback: number, allowZero: boolean): number {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw invalidArgType(`options.${key}`, 'of type number', value);
  if (Number.isNaN(value) || value < 0 || (!allowZero && value === 0)) {
    throw outOfRange(`options.${key}`, allowZero ? '>= 0 (or Infinity)' : '> 0 (or Infinity)', value);
  }
  return value;
}

function isAbortSignal(value: unknown): value is AbortSignal {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as AbortSignal).aborted === 'boolean' &&
    typeof (value as AbortSignal).addEventListener === 'function'
  );
}

const KNOWN_KEYS = new Set(['shared', 'timeoutMs', 'signal', 'owner', 'lockPath', 'record', 'maxHoldMs', 'reentrant', 'fileMode']);

/** All argument checks of acquire/tryAcquire/withLock; native code trusts what leaves here. */
export function resolveOptions(target: unknown, options: unknown): ResolvedOptions {
  const absoluteTarget = validatePath('target', target);
  if (options === undefined || options === null) options = {};
  if (typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!KNOWN_KEYS.has(key) && o[key] !== undefined) {
      throw invalidArgValue('options', key, `has no option named "${key}" (known: ${[...KNOWN_KEYS].join(', ')})`);
    }
  }
  const lockPath = o.lockPath === undefined ? `${absoluteTarget}.lock` : validatePath('options.lockPath', o.lockPath);
  if (o.signal !== undefined && !isAbortSignal(o.signal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', o.signal);
  if (o.owner !== undefined && typeof o.owner !== 'string') throw invalidArgType('options.owner', 'of type string', o.owner);
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
    signal: o.signal as AbortSignal | undefined,
    owner: (o.owner as string | undefined) ?? null,
    record: optionalBoolean(o, 'record', true),
    maxHoldMs: optionalDuration(o, 'maxHoldMs', Infinity, false),
    reentrant: optionalBoolean(o, 'reentrant', true),
    fileMode,
  };
}
