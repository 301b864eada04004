import { type HolderAnswer, type HolderInfo, HolderUnknown } from '../core/errors';
import { hostName } from '../core/host';
import { pidAlive } from '../core/process-alive';
import { kernelHolders, type LockHolder, type LockStatus } from './inspect';
import { procCommand } from './proc-locks';
import { type HolderRecord, readRecord, writtenOnThisHost } from './record';

// Who holds a lock file, for every reader that names one: LockTimeoutError (describeHolder),
// and, from an inspect() status, `session-flock status` and the session-write-lock adapter
// (namedHolder).

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
