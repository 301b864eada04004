import * as util from 'node:util';
import { displayText } from './display-text';

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

/** 850ms, 12s, 41m12s, 2h03m04s. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  let s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  s %= 60;
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m${String(s).padStart(2, '0')}s`;
  if (m > 0) return `${m}m${String(s).padStart(2, '0')}s`;
  return `${s}s`;
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
let uvErrnos: Map<string, number> | undefined;

/**
 * libuv's number for a code the OS has none for here (EFTYPE is BSD's; Linux and Windows
 * lack it), so that every fs error carries an `errno` as Node's own do: -4028 for EFTYPE.
 */
export function uvErrno(name: string): number | undefined {
  if (uvErrnos === undefined) {
    uvErrnos = new Map();
    for (const [errno, [errName]] of util.getSystemErrorMap()) if (!uvErrnos.has(errName)) uvErrnos.set(errName, errno);
  }
  return uvErrnos.get(name);
}

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
  error.errno = osErrno === 0 ? uvErrno(name) : process.platform === 'win32' ? osErrno : -osErrno;
  error.syscall = syscall;
  error.path = path;
  Error.captureStackTrace(error, systemError);
  return error;
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
