import * as util from 'node:util';
import { displayText, formatDuration } from './display-text';

/** Who holds a lock, as far as this process can tell (diagnostics, never authority). */
export interface HolderInfo {
  pid: number | null;
  hostname: string | null;
  owner: string | null;
  /** argv0 / process title of the holder, from its record; its command name (/proc/<pid>/comm) when the kernel named it. */
  process: string | null;
  mode: 'shared' | 'exclusive' | null;
  acquiredAt: number | null;
  heldForMs: number | null;
  /** The holder is this very process. */
  sameProcess: boolean;
  /** Where this process acquired it (only when sameProcess). */
  acquiredStack?: string;
}

/** A backend's word that it cannot name the holder, and why (for LockTimeoutError's message). */
export class HolderUnknown {
  constructor(readonly why: string) {}
}

/** What a backend can say of a lock's holder: who, why not (HolderUnknown), or nothing (null). */
export type HolderAnswer = HolderInfo | HolderUnknown | null;

/** Record text (owner, argv0, title) is anyone's to write: it is shown through displayText() only. */
export function describeHolder(holder: HolderInfo | HolderUnknown | null): string {
  if (holder === null) return 'holder unknown (no holder record)';
  if (holder instanceof HolderUnknown) return `holder unknown (${holder.why})`;
  const parts: string[] = [];
  if (holder.sameProcess) parts.push(`held by this process (pid ${holder.pid})`);
  else {
    const who = holder.pid === null ? 'held by an unknown process' : `held by pid ${holder.pid}`;
    parts.push(holder.process ? `${who} (${displayText(holder.process)})` : who);
  }
  if (holder.owner) parts.push(`owner ${displayText(holder.owner)}`);
  if (holder.heldForMs !== null) parts.push(`for ${formatDuration(holder.heldForMs)}`);
  return parts.join(', ');
}

export class LockTimeoutError extends Error {
  override readonly name = 'LockTimeoutError';
  readonly code = 'ELOCKTIMEOUT';
  constructor(
    readonly lockPath: string,
    readonly target: string,
    readonly timeoutMs: number,
    holder: HolderInfo | HolderUnknown | null,
  ) {
    super(`timed out after ${timeoutMs}ms waiting for ${lockPath} — ${describeHolder(holder)}`);
    this.holder = holder instanceof HolderUnknown ? null : holder;
  }

  /** Who holds the lock, as far as could be told when it timed out; null when nobody could be named. */
  readonly holder: HolderInfo | null;
}

export class LockAbortedError extends Error {
  override readonly name = 'AbortError';
  readonly code = 'ABORT_ERR';
  constructor(
    readonly lockPath: string,
    readonly target: string,
    why: string,
    cause?: unknown,
  ) {
    super(`gave up waiting for ${lockPath}: ${why}`, cause === undefined ? undefined : { cause });
  }
}

export class LockDeadlockError extends Error {
  override readonly name = 'LockDeadlockError';
  readonly code = 'ELOCKDEADLOCK';
  constructor(
    readonly lockPath: string,
    readonly target: string,
    why: string,
  ) {
    super(`acquiring ${lockPath} would deadlock: ${why}`);
  }
}

/**
 * The lock may have been lost while held: a backend whose holds can die with a live holder
 * (a PostgreSQL connection error, a server restart, an admin terminate) reports it through
 * the lock's `signal`. Never thrown for the file backend, whose kernel lock lasts as long
 * as its descriptor.
 */
export class LockLostError extends Error {
  override readonly name = 'LockLostError';
  readonly code = 'ELOCKLOST';
  constructor(
    readonly lockPath: string,
    readonly target: string,
    why: string,
    cause?: unknown,
  ) {
    super(`lost the lock on ${lockPath}: ${why}`, cause === undefined ? undefined : { cause });
  }
}

function nodeError<E extends Error>(ErrorClass: new (message: string) => E, code: string, message: string): E {
  const error = new ErrorClass(message) as E & { code: string };
  error.code = code;
  return error;
}

function show(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (typeof value === 'object') return `an instance of ${value.constructor?.name ?? 'Object'}`;
  return `type ${typeof value} (${util.inspect(value)})`;
}

export function invalidArgType(name: string, expected: string, actual: unknown): TypeError {
  return nodeError(TypeError, 'ERR_INVALID_ARG_TYPE', `The "${name}" argument must be ${expected}. Received ${show(actual)}`);
}

export function invalidArgValue(name: string, actual: unknown, reason: string): TypeError {
  return nodeError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument '${name}' ${reason}. Received ${util.inspect(actual)}`);
}

export function outOfRange(name: string, range: string, actual: unknown): RangeError {
  return nodeError(RangeError, 'ERR_OUT_OF_RANGE', `The value of "${name}" is out of range. It must be ${range}. Received ${util.inspect(actual)}`);
}
