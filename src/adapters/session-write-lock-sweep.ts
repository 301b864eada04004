/**
 * The old module's `cleanStaleLockFiles`, with kernel truth first: a lock file
 * anyone holds is never stale, and one is removed only by a sweeper that holds
 * its lock itself. A free one is judged by what it names, as before.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tryAcquireSync } from '../file/api';
import { invalidArgType, LockDeadlockError } from '../core/errors';
import { inspectMany, type LockStatus } from '../file/inspect';
import { localRecord, namedHolder } from '../file/holder';
import { targetOf } from '../file/lock-path';
import { readLockFile, writtenOnThisHost } from '../file/record';
import { isLivePid, processStartTime } from './legacy-pid';
import type { SessionLock } from '../core/session-lock';

/** One `*.jsonl.lock` file, as the old module reported it. */
export type SessionLockInspection = {
  /** `path.join(path.resolve(sessionsDir), name)`, as before. */
  lockPath: string;
  /** The holder's pid (the kernel's on Linux) when held; else the pid the file names, if any. */
  pid: number | null;
  /** Whether that pid is a live process of this host (a zombie is not). */
  pidAlive: boolean;
  /** ISO time the lock was taken, or the `createdAt` the file names. */
  createdAt: string | null;
  ageMs: number | null;
  /** It may be removed: nobody holds it and what it names is gone or old. A held lock is never stale, however old. */
  stale: boolean;
  /** The old module's words: `missing-pid`, `dead-pid`, `recycled-pid`, `invalid-createdAt`, `too-old`. */
  staleReasons: string[];
  /** This call removed it (while holding its lock). */
  removed: boolean;
};

/** The old module's default age past which a lock file is stale whatever it names. */
const DEFAULT_STALE_MS = 30 * 60 * 1000;

/** At most this much of a lock file is read: an old-format body is a few dozen bytes. */
const MAX_BODY_BYTES = 4096;

/** Who a lock file says holds it: a holder record of ours, or the old module's `{pid, createdAt}` body. */
interface Named {
  pid: number | null;
  createdAt: string | null;
  /** The record's host; null for an old-format body, which names a process of this host. */
  hostname: string | null;
  /** The old module's `starttime` (Linux clock ticks), to tell a recycled pid. */
  starttime: number | null;
}

const NOBODY: Named = { pid: null, createdAt: null, hostname: null, starttime: null };

/**
 * The lock file's JSON read as the old module read it: a positive integer `pid`, a string
 * `createdAt` and an integer `starttime`, each where present. NOBODY for anything else.
 */
function readOldFormatBody(lockPath: string): Named {
  let fd: number;
  try {
    fd = fs.openSync(lockPath, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
  } catch {
    return NOBODY;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return NOBODY;
    const buffer = Buffer.alloc(MAX_BODY_BYTES);
    const length = fs.readSync(fd, buffer, 0, MAX_BODY_BYTES, 0);
    if (length === 0 || length === MAX_BODY_BYTES) return NOBODY;
    const parsed = JSON.parse(buffer.toString('utf8', 0, length)) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return NOBODY;
    const body = parsed as Record<string, unknown>;
    return {
      pid: Number.isSafeInteger(body.pid) && (body.pid as number) > 0 ? (body.pid as number) : null,
      createdAt: typeof body.createdAt === 'string' ? body.createdAt : null,
      hostname: null,
      starttime: Number.isSafeInteger(body.starttime) && (body.starttime as number) >= 0 ? (body.starttime as number) : null,
    };
  } catch {
    return NOBODY;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * What the lock file names: a holder record of ours (with its host), else whatever an
 * old-format body or another JSON body gives as the old module read it. An empty,
 * missing or unreadable file names nobody.
 */
function readNamed(lockPath: string): Named {
  const content = readLockFile(lockPath);
  if (content.kind === 'record') {
    const { record } = content;
    const acquiredAt = typeof record.acquiredAt === 'number' ? new Date(record.acquiredAt).toISOString() : null;
    return { pid: record.pid, createdAt: record.createdAt ?? acquiredAt, hostname: record.hostname ?? null, starttime: null };
  }
  return content.kind === 'legacy' || content.kind === 'foreign' ? readOldFormatBody(lockPath) : NOBODY;
}

function ageOf(createdAt: string | null, nowMs: number): number | null {
  const at = createdAt === null ? NaN : Date.parse(createdAt);
  return Number.isFinite(at) ? Math.max(0, nowMs - at) : null;
}

/**
 * A lock file nobody holds, judged by what it names as the old module judged it. A live
 * local process younger than `staleMs` keeps it: that may be a gateway still running
 * the old module, whose exclusion is the file's existence. A pid of another host cannot
 * be checked from here, so only age makes such a file stale.
 */
function judgeFree(named: Named, reportedPath: string, staleMs: number, nowMs: number): SessionLockInspection {
  const local = named.hostname === null || writtenOnThisHost(named.hostname);
  const { pid } = named;
  const alive = pid !== null && local && isLivePid(pid);
  const staleReasons: string[] = [];
  if (pid === null) staleReasons.push('missing-pid');
  else if (local && !alive) staleReasons.push('dead-pid');
  else if (alive && named.starttime !== null) {
    const starttime = processStartTime(pid);
    if (starttime !== null && starttime !== named.starttime) staleReasons.push('recycled-pid');
  }
  const ageMs = ageOf(named.createdAt, nowMs);
  if (ageMs === null) staleReasons.push('invalid-createdAt');
  else if (ageMs > staleMs) staleReasons.push('too-old');
  return { lockPath: reportedPath, pid, pidAlive: alive, createdAt: named.createdAt, ageMs, stale: staleReasons.length > 0, staleReasons, removed: false };
}

function describe(status: LockStatus, reportedPath: string, staleMs: number, nowMs: number): SessionLockInspection {
  return status.state === 'held' ? describeHeld(status, reportedPath, nowMs) : judgeFree(readNamed(status.lockPath), reportedPath, staleMs, nowMs);
}

/** A held lock: never stale. Its holder as the kernel names it (Linux), else as its record does. */
function describeHeld(status: LockStatus, reportedPath: string, nowMs: number): SessionLockInspection {
  const record = localRecord(status);
  const named = namedHolder(status);
  const pid = named?.pid ?? record?.pid ?? null;
  const alive = named !== undefined ? named.alive === true : pid !== null && isLivePid(pid);
  const createdAt = status.acquiredAt === null ? null : new Date(status.acquiredAt).toISOString();
  return { lockPath: reportedPath, pid, pidAlive: alive, createdAt, ageMs: ageOf(createdAt, nowMs), stale: false, staleReasons: [], removed: false };
}

type Removal = { removed: true } | { removed: false; held: true } | { removed: false; kept: SessionLockInspection } | { removed: false; held: false; error: Error };

/**
 * Takes the lock (one attempt, no record), and only while holding it reads the file
 * again, judges it again (an old-module gateway may have written a fresh body since it
 * was inspected) and removes it if it is still stale. The core's try-lock checks after
 * locking that the path still names the locked file; a waiter elsewhere that gets the
 * lock on the removed file re-checks the same way and reopens, so it can never end up
 * holding a file that has no name.
 */
function removeWhileHolding(target: string, lockPath: string, reportedPath: string, staleMs: number, nowMs: number): Removal {
  let lock: SessionLock | null;
  try {
    lock = tryAcquireSync(target, { lockPath, record: false, reentrant: false, timeoutMs: 0 });
  } catch (error) {
    // Inside this process's own withLock() of that session: held.
    if (error instanceof LockDeadlockError) return { removed: false, held: true };
    return { removed: false, held: false, error: error as Error };
  }
  if (lock === null) return { removed: false, held: true };
  try {
    const again = judgeFree(readNamed(lockPath), reportedPath, staleMs, nowMs);
    if (!again.stale) return { removed: false, kept: again };
    fs.unlinkSync(lockPath);
    return { removed: true };
  } catch (error) {
    return { removed: false, held: false, error: error as Error };
  } finally {
    lock.releaseSync();
  }
}

/**
 * Reports every `*.jsonl.lock` file in `sessionsDir` (sorted by name), and
 * unless `removeStale` is false removes the stale ones. A lock file is stale
 * when nobody holds its kernel lock and what it names (a holder record, or
 * the old module's `{pid, createdAt}` body) is no reason to keep it: no pid
 * (`missing-pid`), a pid that is not a live process (`dead-pid`) or was
 * recycled (`recycled-pid`), no valid time (`invalid-createdAt`), or older
 * than `staleMs` (`too-old`; default 30 min, with the old module's duration
 * rule). Resolves to `{ locks: [] , cleaned: [] }` when the folder does not
 * exist; rejects for any other error reading it.
 *
 * Guaranteed: a lock file is removed only while this call holds its kernel
 * lock and after it judged the file stale again while holding it, so a file
 * that anyone holds is never removed, and neither is one that names a live
 * local process younger than `staleMs` (a gateway still running the old
 * module, which takes no kernel lock). A process waiting on a removed file
 * reopens the new one instead of holding a nameless file. A lock file that
 * cannot be locked or removed is reported (and logged through `log.warn`),
 * never thrown for. Entries that are not regular files are reported as not
 * stale and never touched. Each removal is logged through `log.warn`, as
 * before.
 *
 * Not guaranteed: exclusion against processes still running the old O_EXCL
 * module, which delete lock files without any lock. Age never makes a held
 * lock stale.
 *
 * Platform-specific behavior: on Linux, `pid` and `pidAlive` of a held lock
 * come from the kernel's lock table (/proc/locks), which takes no lock; the
 * free ones are then try-locked only to be removed. Elsewhere each file is
 * probed with a brief non-blocking try-lock, and the pid comes from the
 * holder record. On Windows a removed file that another process still has
 * open disappears when that process closes it.
 */
export async function cleanStaleLockFiles(params: {
  sessionsDir: string;
  staleMs?: number;
  removeStale?: boolean;
  nowMs?: number;
  log?: { warn?: (message: string) => void; info?: (message: string) => void };
}): Promise<{ locks: SessionLockInspection[]; cleaned: SessionLockInspection[] }> {
  if (typeof params !== 'object' || params === null) throw invalidArgType('params', 'of type object', params);
  if (typeof params.sessionsDir !== 'string' || params.sessionsDir.length === 0) {
    throw invalidArgType('params.sessionsDir', 'a non-empty string', params.sessionsDir);
  }
  const sessionsDir = path.resolve(params.sessionsDir);
  const removeStale = params.removeStale !== false;
  const staleMs =
    typeof params.staleMs === 'number' && params.staleMs > 0 && Number.isFinite(params.staleMs) ? params.staleMs : DEFAULT_STALE_MS;
  const nowMs = typeof params.nowMs === 'number' && Number.isFinite(params.nowMs) ? params.nowMs : Date.now();
  const warn = (message: string): void => {
    if (typeof params.log?.warn === 'function') params.log.warn(message);
  };

  let entries: fs.Dirent[];
  try {
    entries = await fs.promises.readdir(sessionsDir, { withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { locks: [], cleaned: [] };
    throw error;
  }
  // Lock under the real folder, as acquireSessionWriteLock names its locks.
  let realDir = sessionsDir;
  try {
    realDir = await fs.promises.realpath(sessionsDir);
  } catch {
    // Report and lock under the resolved path.
  }
  const names = entries
    .filter((entry) => entry.name.endsWith('.jsonl.lock'))
    .map((entry) => entry.name)
    .sort((a, b) => a.localeCompare(b));

  const locks: SessionLockInspection[] = [];
  const cleaned: SessionLockInspection[] = [];
  const items = names.map((name) => ({ target: targetOf(path.join(realDir, name)), lockPath: path.join(realDir, name) }));
  const statuses = inspectMany(items);
  for (let i = 0; i < names.length; i++) {
    const reportedPath = path.join(sessionsDir, names[i]);
    let status = statuses[i];
    if (status.state === 'missing') continue; // gone since the folder was read
    if (status.state === 'unknown') {
      warn(`session lock ${reportedPath} left alone: ${status.notes.join('; ') || 'its state could not be told'}`);
      locks.push({ lockPath: reportedPath, pid: null, pidAlive: false, createdAt: null, ageMs: null, stale: false, staleReasons: [], removed: false });
      continue;
    }
    let info = describe(status, reportedPath, staleMs, nowMs);
    if (info.stale && removeStale) {
      const removal = removeWhileHolding(items[i].target, items[i].lockPath, reportedPath, staleMs, nowMs);
      if (removal.removed) {
        info.removed = true;
        cleaned.push(info);
        warn(`removed stale session lock: ${reportedPath} (${info.staleReasons.join(', ')})`);
      } else if ('kept' in removal) {
        info = removal.kept;
      } else if (removal.held) {
        // Taken since it was inspected: report who has it now.
        status = inspectMany([items[i]])[0];
        if (status.state === 'held' || status.state === 'free') info = describe(status, reportedPath, staleMs, nowMs);
      } else {
        warn(`could not remove stale session lock ${reportedPath}: ${removal.error.message}`);
      }
    }
    locks.push(info);
  }
  return { locks, cleaned };
}
