import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArgType } from '../core/errors';
import { isLockPath, lockPathOf, targetOf, validatePath } from './lock-path';
import {
  findDescriptorHolders,
  type KernelLock,
  matches,
  procPidAlive,
  procSelfPid,
  type ProcLocksRead,
  readProcLocks,
} from './proc-locks';
import { type HolderRecord, type LockFileContent, readLockFile, writtenOnThisHost } from './record';
import { heldLockOf } from '../core/locks';
import { networkFilesystem } from './filesystem';
import { existingLockKey } from './lock-key';
import { binding, isHandle } from './binding';
import { pidAlive } from '../core/process-alive';

export type LockState = 'free' | 'held' | 'missing' | 'unknown';
export type LockMode = 'shared' | 'exclusive';

export interface LockHolder {
  /** null when it cannot be named here (outside this pid namespace, or a remote lock). */
  pid: number | null;
  /** 'kernel': the OS lock table says so (Linux /proc); 'record': only the holder record says so. */
  source: 'kernel' | 'record';
  /** Whether that pid is running now; null when it cannot be told (another host, no pid). */
  alive: boolean | null;
  /** The holder is this very process. */
  sameProcess: boolean;
  mode: LockMode | null;
}

export interface LockWaiter {
  pid: number | null;
  mode: LockMode | null;
}

export interface LockStatus {
  /** Absolute path of the protected file. */
  target: string;
  /** Absolute path of the lock file. */
  lockPath: string;
  /**
   * 'free': nobody holds it; 'held': somebody does; 'missing': the lock file
   * does not exist (nobody can hold it); 'unknown': it could not be told (the
   * lock path is a symlink or not a regular file, or the probe could not open it).
   */
  state: LockState;
  /** The held mode; null unless held. */
  mode: LockMode | null;
  /** Who holds it. Empty when free, or held by a holder that cannot be named. */
  holders: LockHolder[];
  /** Processes blocked in the kernel waiting for it (Linux); null when the OS does not tell. */
  waiters: LockWaiter[] | null;
  /** Owner label from the record, when the record agrees with the holder. */
  owner: string | null;
  /** Epoch ms the lock was taken, when known (this process's own hold, or a record that agrees with the holder). */
  acquiredAt: number | null;
  heldForMs: number | null;
  /**
   * The holder record in the lock file, or null (none, torn, hostile, too large). The
   * OpenClaw gateway's older `{pid, createdAt}` body shows here with those two fields.
   */
  record: HolderRecord | null;
  /**
   * What the lock file holds: a 'record' of session-flock, the 'legacy' `{pid, createdAt}`
   * body, nothing ('empty'), another tool's data ('foreign', never written over), or
   * 'unreadable' (changing under every read, too large, or not readable); 'missing' when
   * there is no lock file.
   */
  content: LockFileContent['kind'];
  /** How the state was found: 'proc-locks' (Linux, read-only) or 'probe' (a brief non-blocking try-lock). */
  method: 'proc-locks' | 'probe' | 'none';
  /** Human-readable observations: stale records, mismatches, why something is unknown. */
  notes: string[];
}

export interface InspectOptions {
  /** Default `${target}.lock`. */
  lockPath?: string;
}

export interface ListLocksOptions {
  /** Descend into subfolders (symlinked folders are not followed). Default false. */
  recursive?: boolean;
}


/** Shared by one listLocks() call: the lock table is read once. */
interface Context {
  procRoot: string;
  table: ProcLocksRead;
  /** This process's pid as procfs numbers it (differs from process.pid when /proc belongs to another pid namespace). */
  selfPid: number | null;
}

function newContext(procRoot = '/proc'): Context {
  const table = readProcLocks(procRoot);
  return { procRoot, table, selfPid: table.ok ? procSelfPid(procRoot) : null };
}


function modeOf(access: string): LockMode | null {
  if (access === 'READ') return 'shared';
  if (access === 'WRITE') return 'exclusive';
  return null;
}


function recordLocal(record: HolderRecord): boolean {
  return writtenOnThisHost(record.hostname);
}

/** This process's own hold of `lockPath`, from the shared registry. */
function ownHold(lockPath: string): { acquiredAt: number; owner: string | null; mode: LockMode; waiters: number } | null {
  const key = existingLockKey(lockPath);
  const held = key === null ? null : heldLockOf(key);
  return held === null ? null : { acquiredAt: held.acquiredAt, owner: held.owner, mode: held.mode, waiters: held.waiters };
}

/** A non-blocking probe: shared try-lock, then (only if that succeeded) exclusive; released at once. Never creates the file. */
function probe(lockPath: string): { state: 'free' | 'held' | 'unknown'; mode: LockMode | null; note?: string } {
  const handle = binding.open(lockPath, 0o600, false);
  if (!isHandle(handle)) {
    const name = binding.errorName(handle) ?? String(handle);
    if (name === 'ENOENT') return { state: 'unknown', mode: null, note: 'the lock file vanished while it was inspected' };
    return { state: 'unknown', mode: null, note: `could not open the lock file to probe it (${name})` };
  }
  try {
    const shared = binding.tryLock(handle, true, lockPath, null, 0, 0);
    if (shared === binding.WOULD_BLOCK) return { state: 'held', mode: 'exclusive' };
    if (shared < 0) return { state: 'unknown', mode: null, note: probeFailure(shared) };
    binding.unlock(handle);
    const exclusive = binding.tryLock(handle, false, lockPath, null, 0, 0);
    if (exclusive === binding.WOULD_BLOCK) return { state: 'held', mode: 'shared' };
    if (exclusive < 0) return { state: 'unknown', mode: null, note: probeFailure(exclusive) };
    return { state: 'free', mode: null };
  } finally {
    binding.close(handle);
  }
}

function probeFailure(code: number): string {
  if (code === binding.REPLACED) return 'the lock file was removed or replaced while it was inspected';
  return `probe failed (${binding.errorName(code) ?? code})`;
}

function emptyStatus(target: string, lockPath: string): LockStatus {
  return {
    target,
    lockPath,
    state: 'unknown',
    mode: null,
    holders: [],
    waiters: null,
    owner: null,
    acquiredAt: null,
    heldForMs: null,
    record: null,
    content: 'missing',
    method: 'none',
    notes: [],
  };
}

function inspectSync(target: string, lockPath: string, context: Context): LockStatus {
  const status = emptyStatus(target, lockPath);
  const { notes } = status;

  const content = readLockFile(lockPath);
  status.content = content.kind;
  if (content.kind === 'record') status.record = content.record;
  else if (content.kind === 'legacy') {
    status.record = { pid: content.body.pid, createdAt: content.body.createdAt } as HolderRecord;
    notes.push(`the lock file holds the older {pid, createdAt} body (pid ${content.body.pid}, created ${content.body.createdAt}); the next holder writes its record over it`);
  } else if (content.kind === 'foreign' || content.kind === 'unreadable') notes.push(content.detail);
  const record = status.record;
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

  const own = ownHold(lockPath);

  if (context.table.ok) {
    status.method = 'proc-locks';
    inspectKernel(status, context.table.locks, stat, context, own !== null);
  } else {
    status.method = 'probe';
    // Elsewhere the probe is the normal method (see `method`); on Linux it is a fallback worth saying.
    if (process.platform === 'linux') notes.push(`${context.table.reason}; probed with a brief non-blocking try-lock`);
    const result = probe(lockPath);
    status.state = result.state;
    status.mode = result.mode;
    if (result.note !== undefined) notes.push(result.note);
    if (status.state === 'held') {
      if (own !== null) {
        status.holders.push({ pid: process.pid, source: 'record', alive: true, sameProcess: true, mode: own.mode });
      } else if (record !== null && recordLocal(record) && record.pid === process.pid) {
        notes.push(`record names this process (pid ${record.pid}), which does not hold the lock: it was left by an earlier process with the same pid; the real holder is unknown`);
      } else if (record !== null) {
        const local = recordLocal(record);
        status.holders.push({
          pid: record.pid,
          source: 'record',
          alive: local ? pidAlive(record.pid) : null,
          sameProcess: local && record.pid === process.pid,
          mode: record.mode === 'shared' || record.mode === 'exclusive' ? record.mode : null,
        });
        if (local && !pidAlive(record.pid)) {
          notes.push(`record names pid ${record.pid}, which is not running: the real holder is unknown (an inherited descriptor, or a holder that wrote no record)`);
        }
      } else {
        notes.push('holder unknown: no holder record (it was written with record: false, or by another flock user)');
      }
    }
  }

  // Who, since when: this process's own hold first, else a record that agrees with the holder.
  if (status.state === 'held') {
    if (own !== null) {
      status.owner = own.owner;
      status.acquiredAt = own.acquiredAt;
      if (own.waiters > 0) notes.push(`${own.waiters} acquire(s) in this process queued behind it`);
    } else if (record !== null && recordAgrees(status, record)) {
      status.owner = typeof record.owner === 'string' ? record.owner : null;
      status.acquiredAt = acquiredAtOf(record);
    }
    if (status.acquiredAt !== null) status.heldForMs = Math.max(0, Date.now() - status.acquiredAt);
  } else if (status.state === 'free' && record !== null) {
    notes.push(staleNote(record));
  }
  return status;
}

/** When the record says the lock was taken: its acquiredAt, else (the older body) its createdAt. */
function acquiredAtOf(record: HolderRecord): number | null {
  if (typeof record.acquiredAt === 'number' && Number.isFinite(record.acquiredAt)) return record.acquiredAt;
  const created = typeof record.createdAt === 'string' ? Date.parse(record.createdAt) : NaN;
  return Number.isFinite(created) ? created : null;
}

/** The record describes the current hold: its pid is among the holders (or, for a probe, it is the only identity there is). */
function recordAgrees(status: LockStatus, record: HolderRecord): boolean {
  return recordLocal(record) && status.holders.some((h) => h.pid === record.pid);
}

function staleNote(record: HolderRecord): string {
  if (!recordLocal(record)) return `record left by pid ${record.pid} on host ${String(record.hostname)}; the lock is free here`;
  if (record.pid === process.pid) return `record left by this process (pid ${record.pid}), which no longer holds the lock`;
  return pidAlive(record.pid)
    ? `record left by pid ${record.pid}, which is running but does not hold the lock (pid reused, or it released without removing the record)`
    : `record left by pid ${record.pid}, which is not running`;
}

function inspectKernel(status: LockStatus, table: KernelLock[], stat: fs.BigIntStats, context: Context, ownHeld: boolean): void {
  const { notes } = status;
  const mine = table.filter((lock) => matches(lock, stat.dev, stat.ino));
  const granted = mine.filter((lock) => lock.kind === 'FLOCK' && !lock.blocked);
  const blocked = mine.filter((lock) => lock.kind === 'FLOCK' && lock.blocked);
  const others = mine.filter((lock) => lock.kind !== 'FLOCK');
  if (others.length > 0) {
    const kinds = [...new Set(others.map((lock) => lock.kind))].join(', ');
    notes.push(`the file also has ${kinds} lock(s) (fcntl/OFD/lease), which do not conflict with flock`);
  }
  const selfPid = context.selfPid;
  if (selfPid !== null && selfPid !== process.pid) {
    notes.push(`/proc belongs to another pid namespace (it calls this process ${selfPid}, not ${process.pid}): its pids are not this process's pids`);
  }
  const name = (pid: number): number | null => (pid > 0 ? pid : null);
  status.waiters = blocked.map((lock) => ({ pid: name(lock.pid), mode: modeOf(lock.access) }));
  if (blocked.length > 0) {
    const who = status.waiters.map((w) => `pid ${w.pid ?? '?'} (${w.mode ?? 'unknown mode'})`).join(', ');
    notes.push(`${blocked.length} waiting in the kernel: ${who}`);
  }
  if (granted.length === 0) {
    status.state = 'free';
    if (ownHeld) notes.push('this process has a hold of it in its registry, but the kernel lists no lock (released behind its back?)');
    return;
  }
  status.state = 'held';
  status.mode = granted.some((lock) => lock.access === 'WRITE') ? 'exclusive' : 'shared';
  const kernelPids: number[] = [];
  const exited: number[] = [];
  let unnamed = 0;
  for (const lock of granted) {
    const mode = modeOf(lock.access);
    if (lock.pid <= 0) {
      unnamed++;
      status.holders.push({ pid: null, source: 'kernel', alive: null, sameProcess: false, mode });
      continue;
    }
    kernelPids.push(lock.pid);
    const alive = procPidAlive(lock.pid, context.procRoot);
    if (!alive) exited.push(lock.pid);
    status.holders.push({ pid: lock.pid, source: 'kernel', alive, sameProcess: lock.pid === selfPid, mode });
  }
  if (unnamed > 0) {
    notes.push(
      `the kernel's holder is not visible from this pid namespace (pid 0 in /proc/locks): another container or the host, ` +
        `or a process that has exited while its descriptor lives on`,
    );
  }
  if (exited.length > 0 || unnamed > 0) {
    // The process that took the lock is gone but the lock is not: its open
    // descriptor lives on in another process (fork, or `session-flock run`'s command).
    const found = findDescriptorHolders(stat.dev, stat.ino, context.procRoot);
    const seen = new Set(status.holders.map((h) => h.pid));
    for (const holder of found.holders) {
      if (seen.has(holder.pid)) continue;
      seen.add(holder.pid);
      status.holders.push({ pid: holder.pid, source: 'kernel', alive: true, sameProcess: holder.pid === selfPid, mode: modeOf(holder.access) });
    }
    const heirs = found.holders.map((h) => h.pid).filter((pid, i, all) => all.indexOf(pid) === i);
    for (const pid of exited) {
      notes.push(
        heirs.length > 0
          ? `pid ${pid} took the lock and has exited; it is held through its inherited descriptor by pid ${heirs.join(', ')}`
          : `pid ${pid} took the lock and has exited; another process still has its descriptor open${found.skipped > 0 ? ' (some processes could not be examined)' : ''}`,
      );
    }
  }
  const record = status.record;
  if (record !== null && recordLocal(record) && kernelPids.length > 0 && !kernelPids.includes(record.pid)) {
    notes.push(`record pid ${record.pid} differs from the kernel's holder (pid ${kernelPids.join(', ')})`);
  } else if (record !== null && !recordLocal(record)) {
    notes.push(`record written on host ${String(record.hostname)}, not this one`);
  }
}

export type KernelHolders =
  | { ok: true; holders: LockHolder[]; lockers: number[] }
  | { ok: false; reason: string };

/**
 * @internal for LockTimeoutError, where the record cannot name the holder:
 * what the kernel says of `lockPath` with the code inspect() uses (Linux
 * /proc/locks, and /proc/<pid>/fd when the process that took the lock has
 * exited and its descriptor lives on). `holders` are the live processes that
 * hold it; `lockers` the exited ones that took it. Otherwise why it cannot tell.
 */
export function kernelHolders(lockPath: string, procRoot = '/proc'): KernelHolders {
  const context = newContext(procRoot);
  if (!context.table.ok) return { ok: false, reason: context.table.reason };
  if (context.selfPid !== null && context.selfPid !== process.pid) {
    return { ok: false, reason: 'the kernel lock table belongs to another pid namespace' };
  }
  let stat: fs.BigIntStats;
  try {
    stat = fs.lstatSync(lockPath, { bigint: true });
  } catch (error) {
    return { ok: false, reason: `cannot stat the lock file (${(error as NodeJS.ErrnoException).code})` };
  }
  const status = emptyStatus(targetOf(lockPath), lockPath);
  inspectKernel(status, context.table.locks, stat, context, false);
  const holders = status.holders.filter((h) => h.pid !== null && h.alive === true);
  if (holders.length === 0) {
    // /proc/locks lists only the locks taken in this pid namespace (or it has just been released).
    return { ok: false, reason: 'the kernel lists no holder visible from this process' };
  }
  const lockers = status.holders.filter((h) => h.pid !== null && h.alive === false).map((h) => h.pid as number);
  return { ok: true, holders, lockers };
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
    return Promise.resolve(inspectResolved(target, options, newContext()));
  } catch (error) {
    return Promise.reject(error);
  }
}

function inspectResolved(target: string, options: InspectOptions | undefined, context: Context): LockStatus {
  const absolute = validatePath('target', target);
  if (options !== undefined && (typeof options !== 'object' || options === null)) throw invalidArgType('options', 'of type object', options);
  const lockPath = options?.lockPath === undefined ? lockPathOf(absolute) : validatePath('options.lockPath', options.lockPath);
  return inspectSync(absolute, lockPath, context);
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
  const context = newContext();
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
  return [...lockPaths].sort().map((lockPath) => inspectOrNote(targetOf(lockPath), lockPath, context));
}

/** One lock that cannot be inspected must not hide the others: it becomes an 'unknown' status with the reason. */
function inspectOrNote(target: string, lockPath: string, context: Context): LockStatus {
  try {
    return inspectSync(target, lockPath, context);
  } catch (error) {
    const status = emptyStatus(target, lockPath);
    status.notes.push(`could not be inspected: ${(error as Error).message}`);
    return status;
  }
}

/** @internal for tests: inspect() reading the lock table from another procfs root (or none). */
export function inspectWithProcRoot(target: string, options: InspectOptions | undefined, procRoot: string): LockStatus {
  return inspectResolved(target, options, newContext(procRoot));
}

/** @internal for the CLI: inspect with a shared lock-table read. */
export function inspectMany(items: { target: string; lockPath?: string }[]): LockStatus[] {
  const context = newContext();
  return items.map((item) => inspectResolved(item.target, { lockPath: item.lockPath }, context));
}
