import type { RequestOptions } from './backend';
import { invalidArgType, invalidArgValue, outOfRange } from './errors';

/** The options every backend takes (the file backend adds lockPath, record and fileMode). */
export interface LockOptions {
  /** Shared (reader) lock; default exclusive. */
  shared?: boolean;
  /** Budget for the whole acquire. Default 10 000; 0 = one attempt; Infinity = no limit. */
  timeoutMs?: number;
  /** Aborting rejects a pending acquire with LockAbortedError; nothing is left held. */
  signal?: AbortSignal;
  /** Free-form label written to the holder's diagnostics, e.g. "agent:main". */
  owner?: string;
  /** After this long, report a long hold (never steals the lock). */
  maxHoldMs?: number;
  /** Default true: a nested acquire inside withLock() of the same lock re-enters. */
  reentrant?: boolean;
}

/** What the core reads of a request; a backend's resolved options extend it. */
export interface ResolvedLockOptions extends RequestOptions {
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
  readonly maxHoldMs: number;
  readonly reentrant: boolean;
}

export const DEFAULT_TIMEOUT_MS = 10_000;

/** The names of LockOptions, for a backend's unknown-option check. */
export const LOCK_OPTION_KEYS = ['shared', 'timeoutMs', 'signal', 'owner', 'maxHoldMs', 'reentrant'] as const;

export function optionalBoolean(options: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw invalidArgType(`options.${key}`, 'of type boolean', value);
  return value;
}

export function optionalDuration(options: Record<string, unknown>, key: string, fallback: number, allowZero: boolean): number {
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

/** `options` as an object whose every key is in `known`, or a TypeError naming the stray one. */
export function optionsObject(options: unknown, known: ReadonlySet<string>): Record<string, unknown> {
  if (options === undefined || options === null) return {};
  if (typeof options !== 'object') throw invalidArgType('options', 'of type object', options);
  const o = options as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!known.has(key) && o[key] !== undefined) {
      throw invalidArgValue('options', key, `has no option named "${key}" (known: ${[...known].join(', ')})`);
    }
  }
  return o;
}

export function optionalSignal(o: Record<string, unknown>): AbortSignal | undefined {
  if (o.signal !== undefined && !isAbortSignal(o.signal)) throw invalidArgType('options.signal', 'an instance of AbortSignal', o.signal);
  return o.signal as AbortSignal | undefined;
}

export function optionalOwner(o: Record<string, unknown>): string | null {
  if (o.owner !== undefined && typeof o.owner !== 'string') throw invalidArgType('options.owner', 'of type string', o.owner);
  return (o.owner as string | undefined) ?? null;
}

/** The core's options of one request, from an options object already checked by optionsObject(). */
export function resolveLockOptions(o: Record<string, unknown>, target: string, name: string): ResolvedLockOptions {
  return {
    name,
    target,
    shared: optionalBoolean(o, 'shared', false),
    timeoutMs: optionalDuration(o, 'timeoutMs', DEFAULT_TIMEOUT_MS, true),
    signal: optionalSignal(o),
    owner: optionalOwner(o),
    maxHoldMs: optionalDuration(o, 'maxHoldMs', Infinity, false),
    reentrant: optionalBoolean(o, 'reentrant', true),
  };
}
