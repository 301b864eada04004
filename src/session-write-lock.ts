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
import * as diagnostics from 'node:diagnostics_channel';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { acquire, releaseAll } from './api';
import { invalidArgType, invalidArgValue, LockTimeoutError } from './errors';
import type { SessionLock } from './session-lock';

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

/** `process.kill(pid, 0)`: true when it succeeds or fails with EPERM (exists, not ours to signal). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One OS hold of one session in this process, shared by its handles when re-entered. */
interface Hold {
  readonly lockPath: string;
  readonly lock: SessionLock;
  /** Live handles. */
  count: number;
  /** Set by releaseAllSessionWriteLocks(): handles of a dead hold are inert. */
  dead: boolean;
}

/** A re-entrant acquire still waiting; it joins the first hold this process gets on the session. */
interface Joiner {
  join(hold: Hold): void;
}

interface State {
  readonly holds: Map<string, Hold>;
  readonly joiners: Map<string, Set<Joiner>>;
}

// On globalThis under a Symbol.for key, like the core's registry: two copies
// of the package in one process count re-entrancy together.
const KEY = Symbol.for('session-flock.session-write-lock.v1');
const state: State = ((globalThis as { [KEY]?: State })[KEY] ??= { holds: new Map(), joiners: new Map() });

const leakChannel = diagnostics.channel('session-flock:leak');

interface Ticket {
  hold: Hold;
  released: boolean;
  site: { stack?: string };
}

function dropTicket(ticket: Ticket): void {
  if (ticket.released) return;
  ticket.released = true;
  const { hold } = ticket;
  if (hold.dead) return;
  if (--hold.count > 0) return;
  hold.dead = true;
  if (state.holds.get(hold.lockPath) === hold) state.holds.delete(hold.lockPath);
  hold.lock.releaseSync();
}

// The map above keeps the SessionLock reachable, so the core's own leak
// finalizer cannot fire; this one does the same job for a dropped handle.
const leaks = new FinalizationRegistry<Ticket>((ticket) => {
  if (ticket.released || ticket.hold.dead) return;
  const acquiredAt = (ticket.site.stack ?? '').split('\n').slice(1).join('\n');
  const { lock } = ticket.hold;
  if (leakChannel.hasSubscribers) {
    leakChannel.publish({ target: lock.target, lockPath: lock.lockPath, mode: 'exclusive', owner: null, heldForMs: Date.now() - lock.acquiredAt, acquiredAt });
  }
  dropTicket(ticket);
  process.emitWarning(
    `session-flock: a session write lock handle for ${lock.lockPath} was garbage-collected without release(), so it was released. Acquired at:\n${acquiredAt}`,
    { type: 'SessionFlockLeakWarning', code: 'SESSION_FLOCK_LEAK' },
  );
});

function handleFor(hold: Hold, sessionFile: string, site: { stack?: string }): SessionWriteLock {
  const ticket: Ticket = { hold, released: false, site };
  const handle: SessionWriteLock = {
    sessionFile,
    lockPath: hold.lockPath,
    get held() {
      return !ticket.released && !hold.dead && hold.lock.held;
    },
    release() {
      try {
        leaks.unregister(ticket);
        dropTicket(ticket);
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(error);
      }
    },
  };
  leaks.register(handle, ticket, ticket);
  return handle;
}

/** A live hold of this process on lockPath, or undefined (forgetting one the core already let go). */
function liveHold(lockPath: string): Hold | undefined {
  const hold = state.holds.get(lockPath);
  if (hold === undefined) return undefined;
  if (!hold.dead && hold.lock.held) return hold;
  hold.dead = true;
  state.holds.delete(lockPath);
  return undefined;
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
  const site: { stack?: string } = {};
  Error.captureStackTrace(site, acquireSessionWriteLock);
  if (typeof params !== 'object' || params === null) throw invalidArgType('params', 'of type object', params);
  const { timeoutMs = 10_000, maxHoldMs, allowReentrant = false, owner } = params;
  if (typeof allowReentrant !== 'boolean') throw invalidArgType('params.allowReentrant', 'of type boolean', allowReentrant);
  const sessionFile = await resolveSessionFile(params.sessionFile);
  const lockPath = `${sessionFile}.lock`;

  if (allowReentrant) {
    const hold = liveHold(lockPath);
    if (hold !== undefined) {
      hold.count++;
      return handleFor(hold, sessionFile, site);
    }
  }

  const abort = new AbortController();
  const joined: { hold: Hold | null } = { hold: null };
  let joiner: Joiner | undefined;
  if (allowReentrant) {
    // While this waits, another acquire of this process may be granted the
    // session first; re-entrant means sharing that hold rather than queueing behind it.
    joiner = {
      join(hold) {
        if (joined.hold !== null) return;
        joined.hold = hold;
        hold.count++;
        abort.abort();
      },
    };
    let set = state.joiners.get(lockPath);
    if (set === undefined) state.joiners.set(lockPath, (set = new Set()));
    set.add(joiner);
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
    if (joined.hold !== null) return handleFor(joined.hold, sessionFile, site);
    if (error instanceof LockTimeoutError) throw new SessionWriteLockTimeoutError(lockPath, timeoutMs, error);
    throw error;
  } finally {
    if (joiner !== undefined) {
      const set = state.joiners.get(lockPath);
      set?.delete(joiner);
      if (set?.size === 0) state.joiners.delete(lockPath);
    }
  }
  if (joined.hold !== null) {
    // Granted in the same turn as the join; the joined hold is the one to use.
    lock.releaseSync();
    return handleFor(joined.hold, sessionFile, site);
  }
  const hold: Hold = { lockPath, lock, count: 1, dead: false };
  const previous = liveHold(lockPath);
  // `previous` can exist only when the core re-entered a withLock() hold; keep the first as the one joiners share.
  if (previous === undefined) state.holds.set(lockPath, hold);
  const waiting = state.joiners.get(lockPath);
  if (waiting !== undefined) for (const j of [...waiting]) j.join(hold);
  return handleFor(hold, sessionFile, site);
}

/**
 * For in-process restarts (same pid, e.g. PID 1 in a container): closes
 * every lock descriptor this process holds (the core's releaseAll()), fails
 * pending acquires, and forgets all re-entrancy counts. Handles from before
 * are dead: their release() does nothing and cannot touch a later holder.
 * Resolves to the number of OS locks closed.
 */
export async function releaseAllSessionWriteLocks(): Promise<number> {
  for (const hold of state.holds.values()) hold.dead = true;
  state.holds.clear();
  return releaseAll();
}
