import { GRANTED, type GrantedLock, type LockBackend, type LockRequest, RETRY, type WaitReport } from '../core/backend';
import { debug } from '../core/observe';
import { binding, isHandle, type NativeHandle } from './binding';
import { lockFailure } from './failure';
import type { ResolvedOptions } from './options';
import { describeHolder } from './holder';
import { nextSerial, readLockFile, recordFields, recordText, replaceable } from './record';

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
    // The grant's time on the application's clock (Date.now(), which tests may fake), so
    // that the record and the lock's acquiredAt say the same.
    const now = Date.now();
    const result = binding.tryLock(attempt.handle, options.shared, lockPath, fields, fields === null ? 0 : nextSerial(), now);
    if (result === 0 || result === binding.NOT_EMPTY) {
      attempt.grantedAt = now;
      attempt.grantData = result === binding.NOT_EMPTY ? recordOverContent(attempt.handle, options, now) : fields === null ? undefined : RECORD_WRITTEN;
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
  if (code === 0) this.waitSettled(handle, GRANTED, RECORD_WRITTEN, grantedAt);
  else if (code === binding.AFTER_GRANT) this.afterGrant();
  else if (code === binding.NOT_EMPTY) grantedOverContent(this, handle, grantedAt);
  else settleWithout(this, handle, code, path);
}

/** A wait that ended without a grant to keep: its handle closed, and the core told why. */
function settleWithout(report: FileReport, handle: NativeHandle, code: number, path: string | undefined): void {
  // Closing lets go of a grant on a replaced file (and of a late grant after a cancel).
  binding.close(handle);
  report.waitSettled(handle, code === binding.REPLACED ? RETRY : lockFailure(code, 'flock', path as string));
}

/** A wait granted on a lock file that holds data: see recordOverContent(). */
function grantedOverContent(report: FileReport, handle: NativeHandle, grantedAt: number): void {
  const options = report.requestOf(handle)?.options;
  const data = options?.record ? recordOverContent(handle, options, grantedAt) : undefined;
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
  if (code === 0 || code === binding.NOT_EMPTY) this.waitSettled(handle, GRANTED, undefined, grantedAt);
  else if (code === binding.AFTER_GRANT) this.afterGrant();
  else settleWithout(this, handle, code, path);
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
 * Kernel file locks: one descriptor per hold or wait, from the addon; waits on an
 * addon-owned thread (a cancelled one releases its late grant itself); the holder
 * record, written and emptied by the addon in the calls that lock and unlock, as
 * diagnostics. See core/backend.ts for the contract.
 */
export const fileBackend: LockBackend<NativeHandle, ResolvedOptions> = {
  adoptableWaits: true,
  callsAfterGrant: true,
  trySync,
  startWait,
  cancelWait: (handle) => void binding.close(handle),
  release,
  releaseHandle: (handle) => void binding.close(handle),
  describeHolder: (_key, options) => describeHolder(options.lockPath),
};

/** For `session-flock run`: the hold's OS descriptor, made inheritable by children or not. */
export function inheritableDescriptor(hold: GrantedLock, inheritable: boolean): number {
  return binding.setInheritable(hold.handle as NativeHandle, inheritable);
}
