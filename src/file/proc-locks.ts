import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * Linux kernel lock table, read from /proc (never locks anything).
 *
 * /proc/locks lines look like
 *   1: FLOCK  ADVISORY  WRITE 7726 fe:00:2146773 0 EOF
 *   1: -> FLOCK  ADVISORY  WRITE 7739 fe:00:2146773 0 EOF      (a blocked waiter)
 * with the device as hex major:minor and the inode in decimal. The pid is
 * translated by the kernel into the pid namespace procfs was mounted for:
 * 0 when the locker is outside it (or, outside the initial namespace, when it
 * has exited), negative for remote (NFS/CIFS) locks, -1 for OFD locks.
 */

export interface KernelLock {
  /** FLOCK, POSIX, OFDLCK, LEASE, DELEG, ... */
  kind: string;
  /** A blocked request (`->` line) rather than a granted lock. */
  blocked: boolean;
  /** READ (shared) or WRITE (exclusive), or for leases BREAKING/ACCESS etc. */
  access: string;
  /** As printed: 0 / negative values mean "not resolvable here". */
  pid: number;
  major: number;
  minor: number;
  inode: bigint;
}

const LINE = /^\s*\d+:\s+(->\s+)?(\S+)\s+(\S+)\s+(\S+)\s+(-?\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/i;

/** Parses the text of /proc/locks (or the `lock:` lines of /proc/<pid>/fdinfo/<fd>). Unknown lines are skipped. */
export function parseProcLocks(text: string): KernelLock[] {
  const result: KernelLock[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.startsWith('lock:') ? raw.slice(5) : raw;
    const m = LINE.exec(line);
    if (m === null) continue;
    // Lease lines read "LEASE  ACTIVE    READ" / "DELEG ...": kind, then a flag column, then access.
    result.push({
      kind: m[2].toUpperCase(),
      blocked: m[1] !== undefined,
      access: m[4].toUpperCase(),
      pid: Number(m[5]),
      major: parseInt(m[6], 16),
      minor: parseInt(m[7], 16),
      inode: BigInt(m[8]),
    });
  }
  return result;
}

/** glibc's gnu_dev_major/gnu_dev_minor over the dev_t Node reports. */
export function devMajorMinor(dev: bigint): { major: number; minor: number } {
  const major = Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn));
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn));
  return { major, minor };
}

export function matches(lock: KernelLock, dev: bigint, ino: bigint): boolean {
  const { major, minor } = devMajorMinor(dev);
  return lock.major === major && lock.minor === minor && lock.inode === ino;
}

export type ProcLocksRead = { ok: true; locks: KernelLock[] } | { ok: false; reason: string };

/**
 * /proc/locks with each record (a granted lock and the `->` lines of its
 * waiters) once. The kernel produces the text over several read() calls and
 * resumes each at a record index; a lock taken or released anywhere in
 * between shifts the records, so one can come out twice (measured here: about
 * 1 read in 500 while another process takes and drops a flock in a loop).
 * Two records that are truly alike (one process holding a file shared through
 * two descriptors) are shown once too: they cannot be told apart.
 */
export function withoutRepeatedRecords(text: string): string {
  const seen = new Set<string>();
  const kept: string[] = [];
  let record: string[] = [];
  const flush = (): void => {
    const key = record.map((line) => line.replace(/^\s*\d+:/, '')).join('\n');
    if (record.length > 0 && !seen.has(key)) {
      seen.add(key);
      kept.push(...record);
    }
    record = [];
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (!/^\s*\d+:\s*->/.test(line)) flush();
    record.push(line);
  }
  flush();
  return kept.join('\n');
}

/** Reads /proc/locks; on anything but Linux, or when it cannot be read, says why. */
export function readProcLocks(procRoot = '/proc'): ProcLocksRead {
  if (process.platform !== 'linux') return { ok: false, reason: `no /proc/locks on ${process.platform}` };
  try {
    return { ok: true, locks: parseProcLocks(withoutRepeatedRecords(fs.readFileSync(path.join(procRoot, 'locks'), 'utf8'))) };
  } catch (error) {
    return { ok: false, reason: `${procRoot}/locks is unreadable (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})` };
  }
}

/**
 * The pid namespace procfs speaks for. `/proc/self` is a link to this
 * process's pid as seen by that procfs; if it differs from process.pid,
 * /proc was mounted for another pid namespace (a host /proc bind-mounted into
 * a container, say) and its pids are not this process's pids.
 */
export function procSelfPid(procRoot = '/proc'): number | null {
  try {
    const pid = Number(fs.readlinkSync(path.join(procRoot, 'self')));
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

/** Whether a pid (in procfs's namespace) exists: /proc/<pid> is there. Zombies count as exited. */
export function procPidAlive(pid: number, procRoot = '/proc'): boolean {
  try {
    const stat = fs.readFileSync(path.join(procRoot, String(pid), 'stat'), 'utf8');
    // "<pid> (<comm>) <state> ..." — comm may contain spaces and parentheses.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** A process's command name as the kernel keeps it (/proc/<pid>/comm, at most 15 bytes), or null. */
export function procCommand(pid: number, procRoot = '/proc'): string | null {
  try {
    return fs.readFileSync(path.join(procRoot, String(pid), 'comm'), 'utf8').replace(/\n$/, '') || null;
  } catch {
    return null;
  }
}

export interface DescriptorHolder {
  pid: number;
  fd: number;
  access: string;
}

/**
 * Processes whose open descriptors own a FLOCK lock on (dev, ino), found
 * through /proc/<pid>/fd and the `lock:` lines of /proc/<pid>/fdinfo/<fd>
 * (the kernel lists there only the locks owned by that open file
 * description). This finds a holder that inherited the descriptor after the
 * process that took the lock exited. Processes this user may not inspect are
 * skipped and counted. Bounded by `maxDescriptors` stats.
 */
export function findDescriptorHolders(
  dev: bigint,
  ino: bigint,
  procRoot = '/proc',
  maxDescriptors = 200_000,
): { holders: DescriptorHolder[]; skipped: number; truncated: boolean } {
  const holders: DescriptorHolder[] = [];
  let skipped = 0;
  let budget = maxDescriptors;
  let pids: string[];
  try {
    pids = fs.readdirSync(procRoot).filter((name) => /^\d+$/.test(name));
  } catch {
    return { holders, skipped, truncated: false };
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(path.join(procRoot, pid, 'fd'));
    } catch {
      skipped++;
      continue;
    }
    for (const fd of fds) {
      if (--budget < 0) return { holders, skipped, truncated: true };
      let stat: fs.BigIntStats;
      try {
        stat = fs.statSync(path.join(procRoot, pid, 'fd', fd), { bigint: true });
      } catch {
        continue;
      }
      if (stat.dev !== dev || stat.ino !== ino) continue;
      let info: string;
      try {
        info = fs.readFileSync(path.join(procRoot, pid, 'fdinfo', fd), 'utf8');
      } catch {
        continue;
      }
      for (const lock of parseProcLocks(info.split('\n').filter((l) => l.startsWith('lock:')).join('\n'))) {
        if (lock.kind === 'FLOCK' && !lock.blocked) holders.push({ pid: Number(pid), fd: Number(fd), access: lock.access });
      }
    }
  }
  return { holders, skipped, truncated: false };
}
