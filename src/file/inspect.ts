import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArgType } from '../core/errors';
import { networkFilesystem } from './filesystem';
import { identifyHolders, type KernelView, readKernelView } from './holder';
import { isLockPath, lockPathOf, targetOf, validatePath } from './lock-path';
import { emptyStatus, type LockStatus } from './lock-status';
import { type HolderRecord, readLockFile } from './record';

export type { LockHolder, LockMode, LockState, LockStatus, LockWaiter } from './lock-status';

export interface InspectOptions {
  /** Default `${target}.lock`. */
  lockPath?: string;
}

export interface ListLocksOptions {
  /** Descend into subfolders (symlinked folders are not followed). Default false. */
  recursive?: boolean;
}

function inspectSync(target: string, lockPath: string, view: KernelView): LockStatus {
  const status = emptyStatus(target, lockPath);
  const { notes } = status;

  const content = readLockFile(lockPath);
  status.content = content.kind;
  if (content.kind === 'record') status.record = content.record;
  else if (content.kind === 'legacy') {
    status.record = { pid: content.body.pid, createdAt: content.body.createdAt } as HolderRecord;
    notes.push(`the lock file holds the older {pid, createdAt} body (pid ${content.body.pid}, created ${content.body.createdAt}); the next holder writes its record over it`);
  } else if (content.kind === 'foreign' || content.kind === 'unreadable') notes.push(content.detail);
  const network = networkFilesystem(lockPath);
  if (network !== null) {
    notes.push(`on a network filesystem (${network}): the lock is the server's, holders on other hosts are not listed here, and a dead host's lock can outlive it (see Limitations in the README)`);
  }

  let stat: fs.BigIntStats;
  try {
    stat = fs.lstatSync(lockPath, { bigint: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      status.state = 'missing';
    } else {
      notes.push(`cannot stat the lock file (${code})`);
    }
    return status;
  }
  if (stat.isSymbolicLink()) {
    notes.push('lock path is a symbolic link, which session-flock never follows (acquire fails with ELOOP)');
    return status;
  }
  if (!stat.isFile()) {
    notes.push('lock path is not a regular file');
    return status;
  }

  identifyHolders(status, stat, view);
  return status;
}

/**
 * Who holds the lock of `target` (`${target}.lock` unless `options.lockPath`
 * says otherwise), since when, and whether that holder is alive.
 *
 * Guaranteed: it never creates, writes, truncates or deletes a lock file; it
 * never throws because of the lock file's contents (a torn, empty, hostile,
 * foreign or oversized record becomes a note); on Linux with a readable /proc
 * it takes no lock at all.
 *
 * Not guaranteed: the answer is a snapshot that may be stale by the time it is
 * read; identity from a record is only what a holder wrote.
 *
 * Platform-specific behavior: on Linux the holders come from /proc/locks
 * (kernel truth, pids in the pid namespace /proc was mounted for). Elsewhere,
 * or when /proc/locks cannot be read, it probes: a non-blocking shared
 * try-lock and, if that succeeds, a non-blocking exclusive one, released at
 * once. A probe is a brief real lock: a concurrent tryAcquire may fail during
 * it. Holder identity then comes from the record.
 */
export function inspect(target: string, options?: InspectOptions): Promise<LockStatus> {
  try {
    return Promise.resolve(inspectResolved(target, options, readKernelView()));
  } catch (error) {
    return Promise.reject(error);
  }
}

function inspectResolved(target: string, options: InspectOptions | undefined, view: KernelView): LockStatus {
  const absolute = validatePath('target', target);
  if (options !== undefined && (typeof options !== 'object' || options === null)) throw invalidArgType('options', 'of type object', options);
  const lockPath = options?.lockPath === undefined ? lockPathOf(absolute) : validatePath('options.lockPath', options.lockPath);
  return inspectSync(absolute, lockPath, view);
}

/**
 * Every lock in `dir`: each `*.lock` file, sorted by path. With
 * `recursive`, subfolders too (symlinked folders are not followed).
 * Rejects when `dir` cannot be read.
 */
export async function listLocks(dir: string, options?: ListLocksOptions): Promise<LockStatus[]> {
  const root = validatePath('dir', dir);
  if (options !== undefined && (typeof options !== 'object' || options === null)) throw invalidArgType('options', 'of type object', options);
  const recursive = options?.recursive ?? false;
  if (typeof recursive !== 'boolean') throw invalidArgType('options.recursive', 'of type boolean', recursive);
  const lockPaths = new Set<string>();
  const view = readKernelView();
  const walk = (folder: string, top: boolean): void => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(folder, { withFileTypes: true });
    } catch (error) {
      if (top) throw error;
      return;
    }
    for (const entry of entries) {
      const full = path.join(folder, entry.name);
      if (entry.isDirectory()) {
        if (recursive) walk(full, false);
      } else if (isLockPath(entry.name)) {
        lockPaths.add(full);
      }
    }
  };
  walk(root, true);
  return [...lockPaths].sort().map((lockPath) => inspectOrNote(targetOf(lockPath), lockPath, view));
}

/** One lock that cannot be inspected must not hide the others: it becomes an 'unknown' status with the reason. */
function inspectOrNote(target: string, lockPath: string, view: KernelView): LockStatus {
  try {
    return inspectSync(target, lockPath, view);
  } catch (error) {
    const status = emptyStatus(target, lockPath);
    status.notes.push(`could not be inspected: ${(error as Error).message}`);
    return status;
  }
}

/** @internal for tests: inspect() reading the lock table from another procfs root (or none). */
export function inspectWithProcRoot(target: string, options: InspectOptions | undefined, procRoot: string): LockStatus {
  return inspectResolved(target, options, readKernelView(procRoot));
}

/** @internal for the CLI: inspect with a shared lock-table read. */
export function inspectMany(items: { target: string; lockPath?: string }[]): LockStatus[] {
  const view = readKernelView();
  return items.map((item) => inspectResolved(item.target, { lockPath: item.lockPath }, view));
}
