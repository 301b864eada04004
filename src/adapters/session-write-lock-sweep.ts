/**
 * The old module's `cleanStaleLockFiles`, with kernel truth: a lock file is
 * stale when nobody holds its lock, and it is removed only by a sweeper that
 * holds that lock itself, so no holder's lock file ever disappears.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { tryAcquireSync } from '../file/api';
import { invalidArgType, LockDeadlockError } from '../core/errors';
import { localRecord, namedHolder } from '../file/holder';
import { targetOf } from '../file/lock-path';
import { inspectMany, type LockStatus } from '../file/inspect';
import { pidAlive } from '../core/process-alive';
import type { SessionLock } from '../core/session-lock';

/** One `*.jsonl.lock` file, as the old module reported it. */
export type SessionLockInspection = {
  /** `path.join(path.resolve(sessionsDir), name)`, as before. */
  lockPath: string;
  /** The holder's pid: the kernel's on Linux, else the holder record's; for a free lock, whoever the record or an old-format body names. */
  pid: number | null;
  pidAlive: boolean;
  /** ISO time the lock was taken (holder record), or an old-format body's `createdAt`. */
  createdAt: string | null;
  ageMs: number | null;
  /** Nobody holds the lock. A held lock is never stale, however old. */
  stale: boolean;
  /** Why it is stale: always `not-held`, then `old-format` and `dead-pid` when they apply. */
  staleReasons: string[];
  /** This call removed it (while holding its lock). */
  removed: boolean;
};

/** At most this much of a lock file is read: an old-format body is a few dozen bytes. */
const MAX_BODY_BYTES = 4096;

/** The `{pid, createdAt}` body the old O_EXCL module wrote, or null (the new design writes no body). */
function readOldFormatBody(lockPath: string): { pid: number | null; createdAt: string | null } | null {
  let fd: number;
  try {
    fd = fs.openSync(lockPath, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
  } catch {
    return null;
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return null;
    const buffer = Buffer.alloc(MAX_BODY_BYTES);
    const length = fs.readSync(fd, buffer, 0, MAX_BODY_BYTES, 0);
    if (length === 0 || length === MAX_BODY_BYTES) return null;
    const parsed = JSON.parse(buffer.toString('utf8', 0, length)) as Record<string, unknown>;
    if (typeof parsed !== 'object' || parsed === null || !('pid' in parsed || 'createdAt' in parsed)) return null;
    const pid = Number.isSafeInteger(parsed.pid) && (parsed.pid as number) > 0 ? (parsed.pid as number) : null;
    return { pid, createdAt: typeof parsed.createdAt === 'string' ? parsed.createdAt : null };
  } catch {
    return null;
  } finally {
    fs.closeSync(fd);
  }
}

function ageOf(createdAt: string | null, nowMs: number): number | null {
  const at = createdAt === null ? NaN : Date.parse(createdAt);
  return Number.isFinite(at) ? Math.max(0, nowMs - at) : null;
}


/** Kernel truth (or the probe, off Linux) turned into the old report's shape. */
function describe(status: LockStatus, reportedPath: string, nowMs: number): SessionLockInspection {
  const record = localRecord(status);
  if (status.state === 'held') {
    const named = namedHolder(status);
    const pid = named?.pid ?? record?.pid ?? null;
    const alive = named !== undefined ? named.alive === true : pid !== null && pidAlive(pid);
    const createdAt = status.acquiredAt === null ? null : new Date(status.acquiredAt).toISOString();
    return { lockPath: reportedPath, pid, pidAlive: alive, createdAt, ageMs: ageOf(createdAt, nowMs), stale: false, staleReasons: [], removed: false };
  }
  // Free: nobody holds it. Whatever names a pid is a leftover.
  const body = status.content === 'legacy' ? readOldFormatBody(status.lockPath) : null;
  const pid = record?.pid ?? body?.pid ?? null;
  const createdAt =
    record !== null && typeof record.acquiredAt === 'number' && Number.isFinite(record.acquiredAt)
      ? new Date(record.acquiredAt).toISOString()
      : (body?.createdAt ?? null);
  const alive = pid !== null && pidAlive(pid);
  const staleReasons = ['not-held'];
  if (body !== null) staleReasons.push('old-format');
  if (pid !== null && !alive) staleReasons.push('dead-pid');
  return { lockPath: reportedPath, pid, pidAlive: alive, createdAt, ageMs: ageOf(createdAt, nowMs), stale: true, staleReasons, removed: false };
}

type Removal = { removed: true } | { removed: false; held: true } | { removed: false; held: false; error: Error };

/**
 * Takes the lock (one attempt, no record), and only while holding it removes
 * the leftover record and the lock file. The core's try-lock checks after
 * locking that the path still names the locked file; a waiter elsewhere that
 * gets the lock on the removed file re-checks the same way and reopens, so
 * it can never end up holding a file that has no name.
 */
function removeWhileHolding(target: string, lockPath: string): Removal {
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
 * unless `removeStale` is false removes those that nobody holds: old-format
 * `{pid, createdAt}` files as well as the empty ones this library leaves.
 * Resolves to `{ locks: [] , cleaned: [] }` when the folder does not exist;
 * rejects for any other error reading it.
 *
 * Guaranteed: a lock file is removed only while this call holds its kernel
 * lock, so a file that anyone holds is never removed, and a process waiting
 * on a removed file reopens the new one instead of holding a nameless file.
 * A lock file that cannot be locked or removed is reported (and logged
 * through `log.warn`), never thrown for. Entries that are not regular files
 * are reported as not stale and never touched. Each removal is logged through
 * `log.warn`, as before.
 *
 * Not guaranteed: exclusion against processes still running the old O_EXCL
 * module, which delete lock files without any lock. `staleMs` is accepted and
 * decides nothing: age never makes a held lock stale. `nowMs` only sets `ageMs`.
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
    let info = describe(status, reportedPath, nowMs);
    if (info.stale && removeStale) {
      const removal = removeWhileHolding(items[i].target, items[i].lockPath);
      if (removal.removed) {
        info.removed = true;
        cleaned.push(info);
        warn(`removed stale session lock: ${reportedPath} (${info.staleReasons.join(', ')})`);
      } else if (removal.held) {
        // Taken since it was inspected: report who has it now.
        status = inspectMany([items[i]])[0];
        if (status.state === 'held' || status.state === 'free') info = describe(status, reportedPath, nowMs);
      } else {
        warn(`could not remove stale session lock ${reportedPath}: ${removal.error.message}`);
      }
    }
    locks.push(info);
  }
  return { locks, cleaned };
}
