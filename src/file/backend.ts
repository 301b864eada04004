import { GRANTED, type LockBackend, RETRY } from '../core/backend';
import { type HolderAnswer, type HolderInfo, HolderUnknown } from '../core/errors';
import type { Hold } from '../core/hold';
import type { Attempt, LockEntry, Waiter } from '../core/lock-entry';
import { debug } from '../core/observe';
import { pidAlive } from '../core/process-alive';
import { SessionLock } from '../core/session-lock';
import { binding, isHandle, type NativeHandle } from './binding';
import { lockFailure } from './failure';
import { kernelHolders } from './inspect';
import type { ResolvedOptions } from './options';
import { procCommand } from './proc-locks';
import { clearRecord, type HolderRecord, newNonce, readRecord, recordPathFor, recordText, type WrittenRecord, writeRecord } from './record';
import { hostName } from '../core/host';

/** How often an acquire reopens a lock file that was replaced under it before giving up. */
const MAX_REOPENS = 64;


/**
 * True when the attempt now holds the kernel lock through its descriptor, false when
 * another descriptor holds it (the descriptor stays open for the wait). Opens the lock
 * file if needed, and after locking re-checks that the path still names the locked file.
 */
function trySync(_entry: LockEntry<NativeHandle>, attempt: Attempt<NativeHandle>): boolean {
  const options = attempt.options as ResolvedOptions;
  const { lockPath } = options;
  for (let reopens = 0; ; reopens++) {
    if (attempt.handle === null) {
      const opened = binding.open(lockPath, options.fileMode, true);
      if (!isHandle(opened)) throw lockFailure(opened, 'open', lockPath);
      attempt.handle = opened;
    }
    const code = binding.tryLock(attempt.handle, options.shared);
    if (code === binding.WOULD_BLOCK) return false;
    if (code !== 0) throw closing(attempt, lockFailure(code, 'flock', lockPath));
    if (stillNamed(attempt)) return true;
    if (reopens >= MAX_REOPENS) throw lockFailure(binding.REPLACED, 'open', lockPath);
  }
}

function closeHandle(attempt: Attempt<NativeHandle>): void {
  if (attempt.handle !== null) binding.close(attempt.handle);
  attempt.handle = null;
}

/** `error`, once the attempt's descriptor is closed (the contract for a failed try or wait). */
function closing(attempt: Attempt<NativeHandle>, error: Error): Error {
  closeHandle(attempt);
  return error;
}

/**
 * After locking: does the path still name the locked file? If it was
 * unlinked or replaced, the lock protects nothing; close and reopen.
 */
function stillNamed(attempt: Attempt<NativeHandle>): boolean {
  const { lockPath } = attempt.options;
  const code = binding.sameFile(attempt.handle as NativeHandle, lockPath);
  if (code === 0) return true;
  closeHandle(attempt);
  if (code !== binding.REPLACED) throw lockFailure(code, 'stat', lockPath);
  debug('%s was replaced while locking; reopening', lockPath);
  return false;
}

/** The one completion callback of every wait (see binding.waitLock): `this` is the wait's entry. */
function waitEnded(this: LockEntry<NativeHandle>, handle: NativeHandle, code: number, grantedAt: number, path: string | undefined): void {
  if (code === 0) return this.waitSettled(handle, GRANTED, undefined, grantedAt);
  // Closing lets go of a grant on a replaced file (and of a late grant after a cancel).
  binding.close(handle);
  this.waitSettled(handle, code === binding.REPLACED ? RETRY : lockFailure(code, 'flock', path as string));
}

function startWait(entry: LockEntry<NativeHandle>, waiter: Waiter<NativeHandle>): void {
  const { lockPath, shared } = waiter.options;
  const code = binding.waitLock(waiter.handle as NativeHandle, shared, lockPath, entry, waitEnded);
  if (code !== 0) throw closing(waiter, lockFailure(code, 'flock', lockPath));
}

/** The kernel unlock first, with nothing before it; then the record, if this hold wrote one. */
function release(hold: Hold<NativeHandle>): void {
  const { lockPath } = hold.options;
  const code = binding.close(hold.handle);
  if (code !== 0) debug('closing %s reported %s', lockPath, binding.errorName(code) ?? code);
  if (hold.data) clearRecord(hold.data as WrittenRecord);
}

/** Writes the holder record once, while held (diagnostics only; failures are logged). */
function granted(hold: Hold<NativeHandle>): void {
  const options = hold.options as ResolvedOptions;
  if (!options.record || hold.data !== undefined) return;
  const nonce = newNonce();
  const text = recordText(options.owner, options.shared, hold.acquiredAt, nonce);
  hold.data = writeRecord(recordPathFor(options.lockPath), text, nonce, options.fileMode);
}

/**
 * Who holds the lock, for a timeout error (the core describes this process's own holds
 * itself): a record whose writer is alive, else the kernel. Only here, on the error path,
 * is the kernel asked: the record cannot tell when its pid is dead or it is missing (e.g.
 * `session-flock run`'s command inherited the lock and `run` was killed). The record's
 * owner and age are kept only when the kernel says its exited writer took this very lock.
 */
function describeHolder(entry: LockEntry<NativeHandle>): HolderAnswer {
  const record = readRecord(recordPathFor(entry.lockPath));
  const local = record !== null && (record.hostname === undefined || record.hostname === hostName());
  // A local record naming this process, which holds nothing here, was left by an earlier process with our pid.
  if (record !== null && (!local || (record.pid !== process.pid && pidAlive(record.pid)))) return holderFromRecord(record);
  const kernel = kernelHolders(entry.lockPath);
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
 * record as diagnostics. See core/backend.ts for the contract.
 */
export const fileBackend: LockBackend<NativeHandle> = {
  family: 'file',
  adoptableWaits: true,
  lockClass: SessionLock,
  trySync,
  startWait,
  cancelWait: (_entry, handle) => void binding.close(handle),
  release,
  releaseHandle: (_entry, handle) => void binding.close(handle),
  granted,
  describeHolder,
};

/** For `session-flock run`: the hold's OS descriptor, made inheritable by children or not. */
export function inheritableDescriptor(hold: Hold, inheritable: boolean): number {
  return binding.setInheritable(hold.handle as NativeHandle, inheritable);
}
