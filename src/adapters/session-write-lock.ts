/**
 * `session-flock/session-write-lock`: a drop-in replacement for the
 * `acquireSessionWriteLock({ sessionFile, timeoutMs, staleMs, maxHoldMs, allowReentrant })`
 * that agent gateways already call, backed by the kernel lock of the core
 * (flock(2) / LockFileEx) instead of an O_EXCL lock file holding `{pid, createdAt}`.
 *
 * What changes for callers: nothing in the call shape. What changes in
 * behavior: a dead holder (SIGKILL, OOM, crash) frees the session at once;
 * no pid or age is ever guessed, so `staleMs` has nothing left to decide.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { acquire, joinHeld, releaseAll } from '../file/api';
import { invalidArgType, invalidArgValue, LockTimeoutError } from '../core/errors';
import type { SessionLock } from '../core/session-lock';
import { pidAlive } from '../core/process-alive';

export interface SessionWriteLockParams {
  /** The session transcript, e.g. `sessions/<uuid>.jsonl`. Its directory is created if missing. */
  sessionFile: string;
  /** One budget for the whole acquire. Default 10 000; 0 = one attempt; Infinity = wait as long as it takes. */
  timeoutMs?: number;
  /**
   * Accepted for compatibility and ignored. The old design used it to guess
   * that a lock file whose owner looked alive was abandoned anyway. Here the
   * kernel drops the lock the moment its holder's descriptor closes or its
   * process dies, so there is nothing stale to detect — and a live holder is
   * never robbed, however old its hold (use `maxHoldMs` to hear about it).
   */
  staleMs?: number;
  /**
   * After this long, publish a long-hold report (diagnostics channel
   * `session-flock:long-hold` and one process warning). Never takes the lock away.
   */
  maxHoldMs?: number;
  /**
   * Default false: a second acquire of the same session in this process
   * waits (and times out) like any other contender. With true, it joins the
   * hold this process has (or is first to get) on that session, process-wide,
   * and counts; the OS lock is released with the last handle.
   */
  allowReentrant?: boolean;
  /** Free-form label written to the holder record (diagnostics only). */
  owner?: string;
}

export interface SessionWriteLock {
  /** Absolute: realpath(dirname(sessionFile)) + '/' + basename(sessionFile). */
  readonly sessionFile: string;
  /** Absolute path of the lock file whose kernel lock is held: `${sessionFile}.lock`. */
  readonly lockPath: string;
  /** True until this handle is released (or releaseAllSessionWriteLocks() ran). */
  readonly held: boolean;
  /** Idempotent. Releases the OS lock when this is the last handle of the hold. */
  release(): Promise<void>;
}

/**
 * The acquire timed out. The message keeps the old design's prefix so that
 * log searches and error matchers keep working:
 * `session file locked (timeout 10000ms): pid=25358 alive=true ageMs=41234 /s/a.jsonl.lock`,
 * or `... owner=unknown /s/a.jsonl.lock` when nothing names the holder.
 */
export class SessionWriteLockTimeoutError extends Error {
  override readonly name = 'SessionWriteLockTimeoutError';
  readonly code = 'SESSION_WRITE_LOCK_TIMEOUT';
  /** Holder pid from its holder record (diagnostics, never authority); null when unknown. */
  readonly ownerPid: number | null;
  /**
   * `process.kill(pid, 0)` semantics (EPERM counts as alive); null when the
   * pid is unknown or the holder runs on another host.
   */
  readonly ownerPidAlive: boolean | null;
  /** How long the holder has held it, from its record; null when unknown. */
  readonly ageMs: number | null;
  readonly ownerHostname: string | null;
  readonly owner: string | null;

  constructor(
    readonly lockPath: string,
    readonly timeoutMs: number,
    cause: LockTimeoutError,
  ) {
    const holder = cause.holder;
    const ownerPid = holder?.pid ?? null;
    const foreignHost = holder?.hostname != null && holder.hostname !== os.hostname();
    const ownerPidAlive = ownerPid === null || foreignHost ? null : pidAlive(ownerPid);
    const ageMs = holder?.heldForMs == null ? null : Math.max(0, Math.round(holder.heldForMs));
    let who: string;
    if (ownerPid === null) who = 'owner=unknown';
    else {
      who = `pid=${ownerPid} alive=${ownerPidAlive === null ? 'unknown' : ownerPidAlive} ageMs=${ageMs === null ? 'unknown' : ageMs}`;
      if (foreignHost) who += ` host=${holder?.hostname}`;
    }
    super(`session file locked (timeout ${timeoutMs}ms): ${who} ${lockPath}`, { cause });
    this.ownerPid = ownerPid;
    this.ownerPidAlive = ownerPidAlive;
    this.ageMs = ageMs;
    this.ownerHostname = holder?.hostname ?? null;
    this.owner = holder?.owner ?? null;
  }
}


/**
 * Re-entrant acquires still waiting, by lock path: when this process is
 * granted the session, they join that hold instead of queueing behind it.
 * On globalThis so that two copies of the package agree.
 */
const KEY = Symbol.for('session-flock.session-write-lock.v1');
const joiners: Map<string, Set<() => void>> = ((globalThis as { [KEY]?: Map<string, Set<() => void>> })[KEY] ??= new Map());

/**
 * Each handle is a core SessionLock view of its own: the core counts the
 * views of one OS hold, releases it with the last one, makes them inert
 * after releaseAll(), and releases a dropped one with a leak warning.
 */
function handleFor(lock: SessionLock, sessionFile: string): SessionWriteLock {
  return {
    sessionFile,
    lockPath: lock.lockPath,
    get held() {
      return lock.held;
    },
    release: () => lock.release(),
  };
}

/** The lock path: realpath(dirname(sessionFile)) + '/' + basename(sessionFile) + '.lock'. */
async function resolveSessionFile(sessionFile: unknown): Promise<string> {
  if (typeof sessionFile !== 'string') throw invalidArgType('params.sessionFile', 'of type string', sessionFile);
  if (sessionFile.length === 0 || sessionFile.includes('\0')) {
    throw invalidArgValue('params.sessionFile', sessionFile, 'must be a non-empty path without null bytes');
  }
  const absolute = path.resolve(sessionFile);
  const dir = path.dirname(absolute);
  // The old design created the sessions directory; so does this one.
  await fs.promises.mkdir(dir, { recursive: true });
  return path.join(await fs.promises.realpath(dir), path.basename(absolute));
}

/**
 * Acquires the write lock of one session file: the kernel lock on
 * `realpath(dirname(sessionFile))/basename(sessionFile).lock`, waiting up to
 * `timeoutMs` (default 10 s). Rejects with SessionWriteLockTimeoutError when
 * the budget runs out. A lock file left by the old O_EXCL design (holding
 * `{pid, createdAt}`) is opened as is, never truncated or deleted, and does
 * not block: only a kernel lock on it does.
 */
export async function acquireSessionWriteLock(params: SessionWriteLockParams): Promise<SessionWriteLock> {
  if (typeof params !== 'object' || params === null) throw invalidArgType('params', 'of type object', params);
  const { timeoutMs = 10_000, maxHoldMs, allowReentrant = false, owner } = params;
  if (typeof allowReentrant !== 'boolean') throw invalidArgType('params.allowReentrant', 'of type boolean', allowReentrant);
  const sessionFile = await resolveSessionFile(params.sessionFile);
  const lockPath = `${sessionFile}.lock`;

  if (allowReentrant) {
    const view = joinHeld(lockPath);
    if (view !== null) return handleFor(view, sessionFile);
  }

  // While a re-entrant acquire waits, another acquire of this process may be
  // granted the session first: re-entrant means sharing that hold, not queueing behind it.
  const abort = new AbortController();
  let joined: SessionLock | null = null;
  const join = (): void => {
    if (joined !== null) return;
    joined = joinHeld(lockPath);
    if (joined !== null) abort.abort();
  };
  if (allowReentrant) {
    let waiting = joiners.get(lockPath);
    if (waiting === undefined) joiners.set(lockPath, (waiting = new Set()));
    waiting.add(join);
  }
  let lock: SessionLock;
  try {
    lock = await acquire(sessionFile, {
      lockPath,
      timeoutMs,
      maxHoldMs,
      owner,
      signal: allowReentrant ? abort.signal : undefined,
      // Inside the core's withLock() of the same session, re-entrant joins
      // that hold; non-re-entrant fails at once with LockDeadlockError
      // instead of waiting out the budget for itself.
      reentrant: allowReentrant,
    });
  } catch (error) {
    if (joined !== null) return handleFor(joined, sessionFile);
    if (error instanceof LockTimeoutError) throw new SessionWriteLockTimeoutError(lockPath, timeoutMs, error);
    throw error;
  } finally {
    const waiting = joiners.get(lockPath);
    waiting?.delete(join);
    if (waiting?.size === 0) joiners.delete(lockPath);
  }
  // A join that raced the grant made a second view of a hold; one view is enough.
  (joined as SessionLock | null)?.releaseSync();
  for (const waiter of [...(joiners.get(lockPath) ?? [])]) waiter();
  return handleFor(lock, sessionFile);
}

/**
 * For in-process restarts (same pid, e.g. PID 1 in a container): closes
 * every lock descriptor this process holds (the core's releaseAll()), fails
 * pending acquires, and forgets all re-entrancy counts. Handles from before
 * are dead: their release() does nothing and cannot touch a later holder.
 * Resolves to the number of OS locks closed.
 */
export function releaseAllSessionWriteLocks(): Promise<number> {
  return releaseAll();
}
