/**
 * `session-flock/session-write-lock`: a drop-in for the OpenClaw gateway's
 * `src/agents/session-write-lock.ts` as of April 2026 (the O_EXCL lock file
 * holding `{pid, createdAt}`): the same exports, parameter names, defaults,
 * option rules and observable behaviour, backed by the kernel lock of the core
 * (flock(2) / LockFileEx).
 *
 * The one thing replaced is the guess: who holds a lock is the kernel's answer,
 * never a pid and an age read from the lock file. Everything else the gateway
 * sees stays: the in-process watchdog that lets go of this process's own hold
 * once it outlives `maxHoldMs`, and the cleanup at exit and on termination
 * signals (session-write-lock-holds.ts, session-write-lock-cleanup.ts).
 */
import { setMaxListeners } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { acquire, joinHeld, releaseAll } from '../file/api';
import { type HolderInfo, invalidArgType, invalidArgValue, LockTimeoutError } from '../core/errors';
import { namedHolder } from '../file/holder';
import { lockPathOf } from '../file/lock-path';
import { inspectMany } from '../file/inspect';
import { writtenOnThisHost } from '../file/record';
import { pidAlive } from '../core/process-alive';
import type { SessionLock } from '../core/session-lock';
import { CLEANUP_SIGNALS, type CleanupSignal, handleTerminationSignal, registerCleanupHandlers, unregisterCleanupHandlers } from './session-write-lock-cleanup';
import { forgetAll, handleFor, noteTaken, releaseAllLocksSync, runLockWatchdogCheck, stopWatchdog } from './session-write-lock-holds';

export { cleanStaleLockFiles, type SessionLockInspection } from './session-write-lock-sweep';

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_HOLD_MS = 5 * 60 * 1000;
const DEFAULT_TIMEOUT_GRACE_MS = 2 * 60 * 1000;
/** Just under setTimeout's ceiling, as the old module capped it. */
const MAX_LOCK_HOLD_MS = 2_147_000_000;

/**
 * The old module's one rule for every duration: a non-number, NaN or a value
 * <= 0 means the default, and so does Infinity unless it is allowed.
 */
function resolvePositiveMs(value: unknown, fallback: number, allowInfinity: boolean): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) return fallback;
  if (value === Infinity && !allowInfinity) return fallback;
  return value;
}

export interface SessionWriteLockParams {
  /** The session transcript, e.g. `sessions/<uuid>.jsonl`. Its directory is created if missing. */
  sessionFile: string;
  /**
   * One budget for the whole acquire. Default 10 000. A non-number, NaN or a
   * value <= 0 means the default (as the old module since February 2026);
   * `Infinity` waits as long as it takes.
   */
  timeoutMs?: number;
  /**
   * Accepted and ignored. The old module used it to guess that a lock file
   * was abandoned; a kernel lock is dropped the moment its holder's descriptor
   * closes or its process dies, so there is nothing stale to guess about, and
   * a live holder is never robbed however old its hold.
   */
  staleMs?: number;
  /**
   * A hold this module took that has lasted longer than this is let go by the
   * in-process watchdog at its next check (once a minute), with a line on
   * stderr; its handles go inert. Default 5 min; same option rule as
   * `timeoutMs` but without `Infinity`. A joined (re-entrant) acquire keeps
   * the limit of the hold it joined.
   */
  maxHoldMs?: number;
  /**
   * Default true: when this process already holds the session, the acquire
   * joins that hold, process-wide, and counts; the OS lock goes with the last
   * release. `false` never joins: it queues behind any holder, this process's
   * own included, like any other contender.
   */
  allowReentrant?: boolean;
  /** Aborting rejects a pending acquire with an `AbortError`; nothing is left held. */
  signal?: AbortSignal;
  /** Free-form label written to the holder record (diagnostics only). */
  owner?: string;
}

/**
 * What an acquire resolves to. Every handle from this module has all the
 * fields; all but `release` are optional in the type so that a stand-in
 * returning `{ release }` (a test mock, another lock) is assignable to it.
 */
export interface SessionWriteLock {
  /** Idempotent; a detached `release` works too. The OS lock goes with the last handle of the hold. */
  release: () => Promise<void>;
  /** Absolute: realpath(dirname(sessionFile)) + '/' + basename(sessionFile). */
  readonly sessionFile?: string;
  /** Absolute path of the lock file whose kernel lock is held: `${sessionFile}.lock`. */
  readonly lockPath?: string;
  /** True until this handle is released, or its hold is let go (watchdog, exit or signal cleanup, a release-everything call). */
  readonly held?: boolean;
}

/** The `code` of a timed-out acquire. */
export const SESSION_WRITE_LOCK_TIMEOUT = 'SESSION_WRITE_LOCK_TIMEOUT';

/**
 * The acquire timed out. The message is the old module's, byte for byte:
 * `session file locked (timeout 10000ms): pid=25358 /s/a.jsonl.lock`, or
 * `... (timeout 10000ms): unknown /s/a.jsonl.lock` when nothing names the
 * holder. The rest is in fields, never in the message.
 */
export class SessionWriteLockTimeoutError extends Error {
  override readonly name = 'SessionWriteLockTimeoutError';
  readonly code = SESSION_WRITE_LOCK_TIMEOUT;
  /**
   * The holder's pid: the kernel's lock table on Linux, else the holder
   * record (diagnostics, never authority); null when nothing names it.
   */
  readonly ownerPid: number | null;
  /** Whether that pid is running; null when the pid is unknown or the holder runs on another host. */
  readonly ownerPidAlive: boolean | null;
  /** How long the holder has held it, when known. */
  readonly ageMs: number | null;
  readonly ownerHostname: string | null;
  readonly owner: string | null;

  constructor(
    readonly lockPath: string,
    readonly timeoutMs: number,
    holder: { pid: number | null; alive: boolean | null; ageMs: number | null; hostname: string | null; owner: string | null },
  ) {
    super(`session file locked (timeout ${timeoutMs}ms): ${holder.pid === null ? 'unknown' : `pid=${holder.pid}`} ${lockPath}`);
    this.ownerPid = holder.pid;
    this.ownerPidAlive = holder.alive;
    this.ageMs = holder.ageMs;
    this.ownerHostname = holder.hostname;
    this.owner = holder.owner;
  }
}

/**
 * True for a timed-out acquire of this module, also one thrown by another
 * copy of the package (it checks `code`, not the class). The old module's
 * plain errors are not recognised: match their `session file locked` prefix.
 *
 * Platform-specific behavior: none.
 */
export function isSessionWriteLockTimeoutError(err: unknown): err is SessionWriteLockTimeoutError {
  return err instanceof Error && (err as { code?: unknown }).code === SESSION_WRITE_LOCK_TIMEOUT;
}

/** The pending acquires of this module, on globalThis so that two copies of the package agree. */
interface AdapterState {
  /** Aborted (and replaced) by the test hooks: fails every acquire still pending. */
  generation: AbortController;
  pending: number;
  idle: (() => void)[];
}

const STATE_KEY = Symbol.for('session-flock.session-write-lock.v3');

function newGeneration(): AbortController {
  const controller = new AbortController();
  // Every pending acquire listens on it; that is not a listener leak.
  setMaxListeners(0, controller.signal);
  return controller;
}

const state: AdapterState = ((globalThis as { [STATE_KEY]?: AdapterState })[STATE_KEY] ??= {
  generation: newGeneration(),
  pending: 0,
  idle: [],
});

function resetError(): Error {
  const error = new Error('the session write lock state was reset (drainSessionWriteLockStateForTest / resetSessionWriteLockStateForTest)');
  error.name = 'AbortError';
  (error as NodeJS.ErrnoException).code = 'ABORT_ERR';
  return error;
}

/** realpath(dirname(sessionFile)) + '/' + basename(sessionFile), creating the directory as the old module did. */
async function resolveSessionFile(sessionFile: unknown): Promise<string> {
  if (typeof sessionFile !== 'string') throw invalidArgType('params.sessionFile', 'of type string', sessionFile);
  if (sessionFile.length === 0 || sessionFile.includes('\0')) {
    throw invalidArgValue('params.sessionFile', sessionFile, 'must be a non-empty path without null bytes');
  }
  const absolute = path.resolve(sessionFile);
  const dir = path.dirname(absolute);
  await fs.promises.mkdir(dir, { recursive: true });
  let realDir = dir;
  try {
    realDir = await fs.promises.realpath(dir);
  } catch {
    // As the old module: fall back to the resolved path (permissions, a transient error).
  }
  return path.join(realDir, path.basename(absolute));
}

/** The holder as the timeout error names it: the kernel's lock table first (Linux), else the core's answer (own hold or record). */
function timeoutHolder(sessionFile: string, lockPath: string, core: HolderInfo | null) {
  let pid = core?.pid ?? null;
  let alive: boolean | null = null;
  let fromKernel = false;
  try {
    const [status] = inspectMany([{ target: sessionFile, lockPath }]);
    const named = namedHolder(status);
    const kernel = named?.source === 'kernel' ? named : undefined;
    if (kernel !== undefined) {
      pid = kernel.pid;
      alive = kernel.alive;
      fromKernel = true;
    }
  } catch {
    // Diagnostics only: the core's answer stands.
  }
  const agrees = core !== null && core.pid === pid;
  const hostname = agrees ? core.hostname : null;
  const foreign = !fromKernel && hostname !== null && !writtenOnThisHost(hostname);
  if (!fromKernel) alive = pid === null || foreign ? null : pidAlive(pid);
  const ageMs = agrees && core.heldForMs !== null ? Math.max(0, Math.round(core.heldForMs)) : null;
  return { pid, alive, ageMs, hostname, owner: agrees ? core.owner : null };
}

function checkedSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined || signal === null) return undefined;
  if (typeof signal !== 'object' || typeof (signal as AbortSignal).aborted !== 'boolean' || typeof (signal as AbortSignal).addEventListener !== 'function') {
    throw invalidArgType('params.signal', 'an instance of AbortSignal', signal);
  }
  return signal as AbortSignal;
}

function abortedError(signal: AbortSignal): Error {
  const error = new Error('the acquire was aborted', { cause: signal.reason });
  error.name = 'AbortError';
  (error as NodeJS.ErrnoException).code = 'ABORT_ERR';
  return error;
}

/**
 * Acquires the write lock of one session file: the kernel lock on
 * `realpath(dirname(sessionFile))/basename(sessionFile).lock`, waiting up to
 * `timeoutMs` (default 10 s) for other holders, in this process (FIFO) and
 * in others (the kernel). The directory is created if missing.
 *
 * Guaranteed: while a handle's hold lasts, no other process holds the
 * session's lock and no acquire of this process gets it except by re-entry
 * (`allowReentrant`, default true, process-wide: see the README for why
 * `withLock` is the safer tool in new code). While held, the lock file holds
 * the holder record, whose `pid` and `createdAt` name this process as the old
 * body did; the last release in this process removes the file while still
 * holding the lock. A lock file nobody holds blocks nobody, whatever it holds
 * (an old `{pid, createdAt}` body, which the record replaces, or anything
 * else, which is never written over): only a kernel lock on it does.
 *
 * Not guaranteed: exclusion against processes still running the old O_EXCL
 * module (they never take a kernel lock), or against anything that does not
 * lock (POSIX locks are advisory).
 *
 * Rejects with SessionWriteLockTimeoutError when the budget runs out, with an
 * `AbortError` when `signal` aborts or a test hook resets the state, and with
 * a TypeError for a bad `sessionFile`, `allowReentrant`, `signal` or `owner`.
 *
 * Released by: the handle's `release()` (the last one of a re-entered hold
 * lets the OS lock go), the watchdog once the hold is older than its
 * `maxHoldMs` (checked once a minute), the exit and termination-signal
 * cleanup, `releaseAllSessionWriteLocks()`, the test hooks, garbage
 * collection of a dropped handle (with a leak warning), and by the kernel
 * when the process exits or dies for any reason. The first acquire installs
 * the exit and signal listeners (SIGINT, SIGTERM, SIGQUIT, SIGABRT) and
 * starts the watchdog, as the old module did.
 *
 * Platform-specific behavior: flock(2) on Linux and macOS, LockFileEx on one
 * byte range far past any data on Windows. On Linux the timeout error's pid
 * comes from the kernel's lock table (/proc/locks); elsewhere from the holder
 * record in the lock file.
 */
export async function acquireSessionWriteLock(params: SessionWriteLockParams): Promise<SessionWriteLock> {
  if (typeof params !== 'object' || params === null) throw invalidArgType('params', 'of type object', params);
  registerCleanupHandlers();
  const timeoutMs = resolvePositiveMs(params.timeoutMs, DEFAULT_TIMEOUT_MS, true);
  const maxHoldMs = resolvePositiveMs(params.maxHoldMs, DEFAULT_MAX_HOLD_MS, false);
  const allowReentrant = params.allowReentrant ?? true;
  if (typeof allowReentrant !== 'boolean') throw invalidArgType('params.allowReentrant', 'of type boolean', allowReentrant);
  const userSignal = checkedSignal(params.signal);
  const { owner } = params;
  if (owner !== undefined && typeof owner !== 'string') throw invalidArgType('params.owner', 'of type string', owner);
  const generation = state.generation.signal;
  state.pending++;
  try {
    const sessionFile = await resolveSessionFile(params.sessionFile);
    if (generation.aborted) throw resetError();
    if (userSignal?.aborted) throw abortedError(userSignal);
    const lockPath = lockPathOf(sessionFile);
    if (allowReentrant) {
      const joined = joinHeld(lockPath);
      if (joined !== null) return handleFor(joined, sessionFile);
    }
    const link = userSignal === undefined ? null : linkSignals(userSignal, generation);
    let view: SessionLock;
    try {
      view = await acquire(sessionFile, {
        lockPath,
        timeoutMs,
        // Not the core's long-hold warning ("never taken away"): the watchdog lets go.
        owner,
        // No lock file is left once this process lets go, as with the old module.
        removeLockFile: true,
        signal: link === null ? generation : link.signal,
        // Inside the core's withLock() of the same session file: re-entrant joins it;
        // non-re-entrant fails at once with LockDeadlockError instead of
        // waiting out its budget for itself.
        reentrant: allowReentrant,
      });
    } catch (error) {
      if (error instanceof LockTimeoutError) {
        throw new SessionWriteLockTimeoutError(lockPath, timeoutMs, timeoutHolder(sessionFile, lockPath, error.holder));
      }
      if (generation.aborted) throw resetError();
      throw error;
    } finally {
      link?.unlink();
    }
    if (generation.aborted) {
      view.releaseSync();
      throw resetError();
    }
    noteTaken(view, maxHoldMs);
    return handleFor(view, sessionFile);
  } finally {
    if (--state.pending === 0) for (const resolve of state.idle.splice(0)) resolve();
  }
}

/** One signal that aborts when either does; unlink() drops the listeners. */
function linkSignals(a: AbortSignal, b: AbortSignal): { signal: AbortSignal; unlink(): void } {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(a.aborted ? a.reason : b.reason);
  a.addEventListener('abort', onAbort, { once: true });
  b.addEventListener('abort', onAbort, { once: true });
  return {
    signal: controller.signal,
    unlink() {
      a.removeEventListener('abort', onAbort);
      b.removeEventListener('abort', onAbort);
    },
  };
}

/**
 * The `maxHoldMs` to pass for work bounded by `timeoutMs`:
 * max(minMs, timeoutMs + graceMs), capped at 2 147 000 000, with a grace of
 * 2 min and a floor of 5 min by default, as the old module computed it.
 * Every argument follows the duration rule (non-number, NaN or <= 0 means the
 * default; for `timeoutMs` the default is `minMs`); `timeoutMs: Infinity` gives the cap.
 * A pure computation: it holds and releases nothing.
 *
 * Platform-specific behavior: none.
 */
export function resolveSessionLockMaxHoldFromTimeout(params: { timeoutMs: number; graceMs?: number; minMs?: number }): number {
  if (typeof params !== 'object' || params === null) throw invalidArgType('params', 'of type object', params);
  const minMs = resolvePositiveMs(params.minMs, DEFAULT_MAX_HOLD_MS, false);
  const timeoutMs = resolvePositiveMs(params.timeoutMs, minMs, true);
  if (timeoutMs === Infinity) return MAX_LOCK_HOLD_MS;
  const graceMs = resolvePositiveMs(params.graceMs, DEFAULT_TIMEOUT_GRACE_MS, false);
  return Math.min(MAX_LOCK_HOLD_MS, Math.max(minMs, timeoutMs + graceMs));
}

/**
 * For in-process restarts (same pid, e.g. PID 1 in a container): closes
 * every lock descriptor this process holds, this module's and the core's
 * (the core's releaseAll()), and fails pending acquires with an AbortError.
 * Handles from before are dead: their release() does nothing and cannot
 * touch a later holder. Resolves to the number of OS locks closed.
 *
 * Platform-specific behavior: none; closing the descriptor is what releases
 * the lock on every platform.
 */
export function releaseAllSessionWriteLocks(): Promise<number> {
  const closed = releaseAll();
  forgetAll();
  return closed;
}

/**
 * Test hook: fails every acquire of this module still pending (AbortError),
 * releases every hold it took and every handle it gave out, stops the
 * watchdog, removes the exit and signal listeners, and resolves once the
 * pending ones have settled, so nothing this module started can hold a lock
 * afterwards. Locks taken through the core's own API are left alone (a hold
 * this module joined stays held while the core's own view of it lives).
 *
 * Platform-specific behavior: none.
 */
export async function drainSessionWriteLockStateForTest(): Promise<void> {
  resetSessionWriteLockStateForTest();
  while (state.pending > 0) await new Promise<void>((resolve) => state.idle.push(resolve));
}

/**
 * Test hook, synchronous: fails every acquire of this module still pending
 * (their promises reject soon after with an AbortError), releases every hold
 * it took and every handle it gave out at once, stops the watchdog and
 * removes the exit and signal listeners, so that none pile up across tests.
 * Locks taken through the core's API are left alone.
 *
 * Platform-specific behavior: none.
 */
export function resetSessionWriteLockStateForTest(): void {
  const old = state.generation;
  state.generation = newGeneration();
  old.abort(resetError());
  releaseAllLocksSync();
  stopWatchdog();
  unregisterCleanupHandlers();
}

/** The old module's test seams, with the old module's behaviour. */
export const __testing = {
  /** The signals the cleanup listens for: SIGINT, SIGTERM, SIGQUIT, SIGABRT. */
  cleanupSignals: [...CLEANUP_SIGNALS] as CleanupSignal[],
  /**
   * What the listener of `signal` does: releases every hold this module took; then, if
   * that listener is the only one for `signal`, removes it and raises `signal` again.
   */
  handleTerminationSignal,
  /** What the exit listener does: releases every hold this module took and every handle it gave out. */
  releaseAllLocksSync,
  /**
   * One pass of the watchdog as of `nowMs`: lets go of each hold this module took that is
   * older than its `maxHoldMs`, with one stderr line each; resolves to how many.
   */
  runLockWatchdogCheck,
};
