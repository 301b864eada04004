import * as fs from 'node:fs';
import { type HolderAnswer, type HolderInfo, HolderUnknown } from '../core/errors';
import { hostName } from '../core/host';
import { heldLockOf } from '../core/locks';
import { pidAlive } from '../core/process-alive';
import { existingLockKey } from './lock-key';
import { targetOf } from './lock-path';
import { emptyStatus, type LockHolder, type LockMode, type LockStatus } from './lock-status';
import { probe } from './probe';
import { findDescriptorHolders, type KernelLock, matches, procCommand, procPidAlive, procSelfPid, type ProcLocksRead, readProcLocks } from './proc-locks';
import { type HolderRecord, readRecord, writtenOnThisHost } from './record';

// Who holds a lock file, for every reader that names one: inspect() and `session-flock
// status` (identifyHolders), LockTimeoutError (describeHolder), and the session-write-lock
// adapter (namedHolder and localRecord, from an inspect() status).

/** The kernel's lock table as read once, shared by every lock one inspect or listLocks call looks at. */
export interface KernelView {
  procRoot: string;
  table: ProcLocksRead;
  /** This process's pid as procfs numbers it (differs from process.pid when /proc belongs to another pid namespace). */
  selfPid: number | null;
}

export function readKernelView(procRoot = '/proc'): KernelView {
  const table = readProcLocks(procRoot);
  return { procRoot, table, selfPid: table.ok ? procSelfPid(procRoot) : null };
}

function modeOf(access: string): LockMode | null {
  if (access === 'READ') return 'shared';
  if (access === 'WRITE') return 'exclusive';
  return null;
}

/** This process's own hold of `lockPath`, from the shared registry. */
function ownHold(lockPath: string): { acquiredAt: number; owner: string | null; mode: LockMode; waiters: number } | null {
  const key = existingLockKey(lockPath);
  const held = key === null ? null : heldLockOf(key);
  return held === null ? null : { acquiredAt: held.acquiredAt, owner: held.owner, mode: held.mode, waiters: held.waiters };
}

/**
 * Who holds the lock file `status` describes, and in which mode, into `status`: its state,
 * mode, holders, waiters, owner and age, with notes on what disagrees. The kernel says who
 * holds it (Linux /proc/locks, `view`); elsewhere a brief try-lock says whether it is held
 * and the record who by. `status` already has the file's content and `stat` its identity.
 */
export function identifyHolders(status: LockStatus, stat: fs.BigIntStats, view: KernelView): void {
  const { lockPath, notes, record } = status;
  const own = ownHold(lockPath);

  if (view.table.ok) {
    status.method = 'proc-locks';
    inspectKernel(status, view.table.locks, stat, view, own !== null);
  } else {
    status.method = 'probe';
    // Elsewhere the probe is the normal method (see `method`); on Linux it is a fallback worth saying.
    if (process.platform === 'linux') notes.push(`${view.table.reason}; probed with a brief non-blocking try-lock`);
    const result = probe(lockPath);
    status.state = result.state;
    status.mode = result.mode;
    if (result.note !== undefined) notes.push(result.note);
    if (status.state === 'held') {
      if (own !== null) {
        status.holders.push({ pid: process.pid, source: 'record', alive: true, sameProcess: true, mode: own.mode });
      } else if (record !== null && writtenOnThisHost(record.hostname) && record.pid === process.pid) {
        notes.push(`record names this process (pid ${record.pid}), which does not hold the lock: it was left by an earlier process with the same pid; the real holder is unknown`);
      } else if (record !== null) {
        const local = writtenOnThisHost(record.hostname);
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
}

/** When the record says the lock was taken: its acquiredAt, else (the older body) its createdAt. */
function acquiredAtOf(record: HolderRecord): number | null {
  if (typeof record.acquiredAt === 'number' && Number.isFinite(record.acquiredAt)) return record.acquiredAt;
  const created = typeof record.createdAt === 'string' ? Date.parse(record.createdAt) : NaN;
  return Number.isFinite(created) ? created : null;
}

/** The record describes the current hold: its pid is among the holders (or, for a probe, it is the only identity there is). */
function recordAgrees(status: LockStatus, record: HolderRecord): boolean {
  return writtenOnThisHost(record.hostname) && status.holders.some((h) => h.pid === record.pid);
}

function staleNote(record: HolderRecord): string {
  if (!writtenOnThisHost(record.hostname)) return `record left by pid ${record.pid} on host ${String(record.hostname)}; the lock is free here`;
  if (record.pid === process.pid) return `record left by this process (pid ${record.pid}), which no longer holds the lock`;
  return pidAlive(record.pid)
    ? `record left by pid ${record.pid}, which is running but does not hold the lock (pid reused, or it released without removing the record)`
    : `record left by pid ${record.pid}, which is not running`;
}

function inspectKernel(status: LockStatus, table: KernelLock[], stat: fs.BigIntStats, view: KernelView, ownHeld: boolean): void {
  const { notes } = status;
  const mine = table.filter((lock) => matches(lock, stat.dev, stat.ino));
  const granted = mine.filter((lock) => lock.kind === 'FLOCK' && !lock.blocked);
  const blocked = mine.filter((lock) => lock.kind === 'FLOCK' && lock.blocked);
  const others = mine.filter((lock) => lock.kind !== 'FLOCK');
  if (others.length > 0) {
    const kinds = [...new Set(others.map((lock) => lock.kind))].join(', ');
    notes.push(`the file also has ${kinds} lock(s) (fcntl/OFD/lease), which do not conflict with flock`);
  }
  const selfPid = view.selfPid;
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
    const alive = procPidAlive(lock.pid, view.procRoot);
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
    const found = findDescriptorHolders(stat.dev, stat.ino, view.procRoot);
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
  if (record !== null && writtenOnThisHost(record.hostname) && kernelPids.length > 0 && !kernelPids.includes(record.pid)) {
    notes.push(`record pid ${record.pid} differs from the kernel's holder (pid ${kernelPids.join(', ')})`);
  } else if (record !== null && !writtenOnThisHost(record.hostname)) {
    notes.push(`record written on host ${String(record.hostname)}, not this one`);
  }
}

type KernelHolders =
  | { ok: true; holders: LockHolder[]; lockers: number[] }
  | { ok: false; reason: string };

/**
 * @internal for LockTimeoutError, where the record cannot name the holder:
 * what the kernel says of `lockPath` with the code inspect() uses (Linux
 * /proc/locks, and /proc/<pid>/fd when the process that took the lock has
 * exited and its descriptor lives on). `holders` are the live processes that
 * hold it; `lockers` the exited ones that took it. Otherwise why it cannot tell.
 */
function kernelHolders(lockPath: string, procRoot = '/proc'): KernelHolders {
  const view = readKernelView(procRoot);
  if (!view.table.ok) return { ok: false, reason: view.table.reason };
  if (view.selfPid !== null && view.selfPid !== process.pid) {
    return { ok: false, reason: 'the kernel lock table belongs to another pid namespace' };
  }
  let stat: fs.BigIntStats;
  try {
    stat = fs.lstatSync(lockPath, { bigint: true });
  } catch (error) {
    return { ok: false, reason: `cannot stat the lock file (${(error as NodeJS.ErrnoException).code})` };
  }
  const status = emptyStatus(targetOf(lockPath), lockPath);
  inspectKernel(status, view.table.locks, stat, view, false);
  const holders = status.holders.filter((h) => h.pid !== null && h.alive === true);
  if (holders.length === 0) {
    // /proc/locks lists only the locks taken in this pid namespace (or it has just been released).
    return { ok: false, reason: 'the kernel lists no holder visible from this process' };
  }
  const lockers = status.holders.filter((h) => h.pid !== null && h.alive === false).map((h) => h.pid as number);
  return { ok: true, holders, lockers };
}

/**
 * Who holds the lock, for a timeout error (the core describes this process's own holds
 * itself): a record whose writer is alive, else the kernel. Only here, on the error path,
 * is the kernel asked: the record cannot tell when its pid is dead or it is missing (e.g.
 * `session-flock run`'s command inherited the lock and `run` was killed). The record's
 * owner and age are kept only when the kernel says its exited writer took this very lock.
 */
export function describeHolder(lockPath: string): HolderAnswer {
  const record = readRecord(lockPath);
  const local = record !== null && writtenOnThisHost(record.hostname);
  // A local record naming this process, which holds nothing here, was left by an earlier process with our pid.
  if (record !== null && (!local || (record.pid !== process.pid && pidAlive(record.pid)))) return holderFromRecord(record);
  const kernel = kernelHolders(lockPath);
  if (!kernel.ok) {
    const said =
      record === null
        ? 'no holder record'
        : record.pid === process.pid
          ? `the record names this process (pid ${record.pid}), which does not hold it`
          : `the record names pid ${record.pid}, which is not running`;
    return new HolderUnknown(`${said}; ${kernel.reason}`);
  }
  const [live] = kernel.holders;
  const pid = live.pid as number;
  const told = record !== null && kernel.lockers.includes(record.pid) ? holderFromRecord(record) : null;
  return {
    pid,
    hostname: hostName(),
    owner: told?.owner ?? null,
    process: procCommand(pid),
    mode: live.mode,
    acquiredAt: told?.acquiredAt ?? null,
    heldForMs: told?.heldForMs ?? null,
    sameProcess: live.sameProcess,
  };
}

export function holderFromRecord(record: HolderRecord): HolderInfo {
  const acquiredAt = typeof record.acquiredAt === 'number' ? record.acquiredAt : null;
  const names = [record.process?.argv0, record.process?.title].filter((n, i, all) => typeof n === 'string' && n && all.indexOf(n) === i);
  return {
    pid: record.pid,
    hostname: typeof record.hostname === 'string' ? record.hostname : null,
    owner: typeof record.owner === 'string' ? record.owner : null,
    process: names.length > 0 ? names.join(' ') : null,
    mode: record.mode === 'shared' || record.mode === 'exclusive' ? record.mode : null,
    acquiredAt,
    heldForMs: acquiredAt === null ? null : Date.now() - acquiredAt,
    sameProcess: false,
  };
}

/**
 * The holder a status names first: one the kernel lists with a pid (Linux /proc), else
 * one the record names; undefined when it names none.
 */
export function namedHolder(status: LockStatus): LockHolder | undefined {
  return status.holders.find((h) => h.pid !== null && h.source === 'kernel') ?? status.holders.find((h) => h.pid !== null);
}

/** A status's record, if it was written on this host (only there do its pids mean anything). */
export function localRecord(status: LockStatus): HolderRecord | null {
  return status.record !== null && writtenOnThisHost(status.record.hostname) ? status.record : null;
}
