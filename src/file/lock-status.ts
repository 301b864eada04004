import type { HolderRecord, LockFileContent } from './record';

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

/** A status before anything is known of the lock: 'unknown', no holder, no lock file read. */
export function emptyStatus(target: string, lockPath: string): LockStatus {
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
