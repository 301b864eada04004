import { GRANTED, type GrantedLock, type LockBackend, type LockRequest, RETRY, type WaitReport } from '../core/backend';
import { type HolderAnswer, type HolderInfo, HolderUnknown } from '../core/errors';
import { debug } from '../core/observe';
import { pidAlive } from '../core/process-alive';
import { binding, isHandle, type NativeHandle } from './binding';
import { lockFailure } from './failure';
import { kernelHolders } from './inspect';
import type { ResolvedOptions } from './options';
import { procCommand } from './proc-locks';
import { type HolderRecord, nextSerial, readLockFile, readRecord, recordFields, recordText, replaceable } from './record';
import { hostName } from '../core/host';

type FileRequest = LockRequest<NativeHandle, ResolvedOptions>;
type FileReport = WaitReport<NativeHandle, ResolvedOptions>;

/** How often an acquire reopens a lock file that was replaced under it before giving up. */
const MAX_REOPENS = 64;


/** What a file hold keeps for its release (Hold.data): whether it wrote the record. */
const RECORD_WRITTEN = true;

/**
 * True when the attempt now holds the kernel lock through its descriptor, false when
 * another descriptor holds it (the descriptor stays open for the wait). Opens the lock
 * file if needed; the addon re-checks after locking that the path still names the locked
 * file and writes the holder record, in the same call.
 */
function trySync(attempt: FileRequest): boolean {
  const { options } = attempt;
  const { lockPath } = options;
  const fields = options.record ? recordFields(options.owner, options.shared) : null;
  for (let reopens = 0; ; reopens++) {
    if (attempt.handle === null) {
      const opened = binding.open(lockPath, options.fileMode, true);
      if (!isHandle(opened)) throw lockFailure(opened, 'open', lockPath);
      attempt.handle = opened;
    }
    const serial = fields === null ? 0 : nextSerial();
    const result = binding.tryLock(attempt.handle, options.shared, lockPath, fields, serial);
    if (result >= 0) {
      attempt.grantedAt = result;
      attempt.grantData = fields === null ? undefined : RECORD_WRITTEN;
      return true;
    }
    if (result === binding.NOT_EMPTY) {
      attempt.grantedAt = Date.now();
      attempt.grantData = recordOverContent(attempt.handle, options, attempt.grantedAt);
      return true;
    }
    if (result === binding.WOULD_BLOCK) return false;
    closeHandle(attempt);
    if (result !== binding.REPLACED) throw lockFailure(result, 'flock', lockPath);
    debug('%s was replaced while locking; reopening', lockPath);
    if (reopens >= MAX_REOPENS) throw lockFailure(binding.REPLACED, 'open', lockPath);
  }
}

/**
 * The record of a holder that found its lock file not empty: written over a record of
 * ours (a holder that died holding it, or another shared holder) or the OpenClaw gateway's
 * legacy body; anything else is another tool's data and stays as it is.
 */
function recordOverContent(handle: NativeHandle, options: ResolvedOptions, grantedAt: number): boolean | undefined {
  const content = readLockFile(options.lockPath);
  if (!replaceable(content)) {
    debug('%s holds data that is not a holder record; no record written', options.lockPath);
    return undefined;
  }
  const code = binding.writeRecord(handle, recordText(options.owner, options.shared, grantedAt, nextSerial()));
  if (code !== 0) debug('could not write the holder record into %s: %s', options.lockPath, binding.errorName(code) ?? code);
  return RECORD_WRITTEN;
}

function closeHandle(attempt: FileRequest): void {
  if (attempt.handle !== null) binding.close(attempt.handle);
  attempt.handle = null;
}

/** `error`, once the attempt's descriptor is closed (the contract for a failed try or wait). */
function closing(attempt: FileRequest, error: Error): Error {
  closeHandle(attempt);
  return error;
}

/** The one completion callback of every wait (see binding.waitLock): `this` is the wait's report. */
function waitEnded(this: FileReport, handle: NativeHandle, code: number, grantedAt: number, path: string | undefined): void {
  if (code === 0) return this.waitSettled(handle, GRANTED, RECORD_WRITTEN, grantedAt);
  if (code === binding.NOT_EMPTY) return grantedOverContent(this, handle, grantedAt);
  // Closing lets go of a grant on a replaced file (and of a late grant after a cancel).
  binding.close(handle);
  this.waitSettled(handle, code === binding.REPLACED ? RETRY : lockFailure(code, 'flock', path as string));
}

/** A wait granted on a lock file that holds data: see recordOverContent(). */
function grantedOverContent(report: FileReport, handle: NativeHandle, grantedAt: number): void {
  const options = report.requestOf(handle)?.options ?? null;
  const data = options !== null && options.record ? recordOverContent(handle, options, grantedAt) : undefined;
  report.waitSettled(handle, GRANTED, data, grantedAt);
}

function startWait(waiter: FileRequest, _remainingMs: number, report: FileReport): void {
  const { options } = waiter;
  const fields = options.record ? recordFields(options.owner, options.shared) : null;
  const code = binding.waitLock(waiter.handle as NativeHandle, options.shared, options.lockPath, report, fields === null ? waitEndedWithout : waitEnded, fields, fields === null ? 0 : nextSerial());
  if (code !== 0) throw closing(waiter, lockFailure(code, 'flock', options.lockPath));
}

/** waitEnded() of a wait that writes no record: a grant leaves nothing to clear. */
function waitEndedWithout(this: FileReport, handle: NativeHandle, code: number, grantedAt: number, path: string | undefined): void {
  if (code === 0 || code === binding.NOT_EMPTY) return this.waitSettled(handle, GRANTED, undefined, grantedAt);
  binding.close(handle);
  this.waitSettled(handle, code === binding.REPLACED ? RETRY : lockFailure(code, 'flock', path as string));
}

/**
 * One addon call: the record emptied (or, with removeLockFile and no other acquire of
 * this process on it, whose next acquire would make the file anew, the lock file
 * unlinked) while still held, then the descriptor closed, which lets go of the lock.
 */
function release(hold: GrantedLock<NativeHandle, ResolvedOptions>, lastInProcess: boolean): void {
  const { options } = hold;
  let how = hold.data === RECORD_WRITTEN ? binding.RELEASE_CLEAR_RECORD : 0;
  if (options.removeLockFile && lastInProcess) how |= binding.RELEASE_REMOVE_FILE;
  if (how !== 0 && options.shared) how |= binding.RELEASE_SHARED;
  const code = binding.release(hold.handle, how, options.lockPath);
  if (code !== 0) debug('closing %s reported %s', options.lockPath, binding.errorName(code) ?? code);
}

/**
 * Who holds the lock, for a timeout error (the core describes this process's own holds
 * itself): a record whose writer is alive, else the kernel. Only here, on the error path,
 * is the kernel asked: the record cannot tell when its pid is dead or it is missing (e.g.
 * `session-flock run`'s command inherited the lock and `run` was killed). The record's
 * owner and age are kept only when the kernel says its exited writer took this very lock.
 */
function describeHolder(_key: string, options: ResolvedOptions): HolderAnswer {
  const { lockPath } = options;
  const record = readRecord(lockPath);
  const local = record !== null && (record.hostname === undefined || record.hostname === hostName());
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

function holderFromRecord(record: HolderRecord): HolderInfo {
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
 * Kernel file locks: one descriptor per hold or wait, from the addon; waits on an
 * addon-owned thread (a cancelled one releases its late grant itself); the holder
 * record, written and emptied by the addon in the calls that lock and unlock, as
 * diagnostics. See core/backend.ts for the contract.
 */
export const fileBackend: LockBackend<NativeHandle, ResolvedOptions> = {
  adoptableWaits: true,
  trySync,
  startWait,
  cancelWait: (handle) => void binding.close(handle),
  release,
  releaseHandle: (handle) => void binding.close(handle),
  describeHolder,
};

/** For `session-flock run`: the hold's OS descriptor, made inheritable by children or not. */
export function inheritableDescriptor(hold: GrantedLock, inheritable: boolean): number {
  return binding.setInheritable(hold.handle as NativeHandle, inheritable);
}
