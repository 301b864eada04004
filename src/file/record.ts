import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { debug } from '../core/observe';
import { sweepStaleTemps, tempPathFor } from './record-temps';
import { hostName } from '../core/host';
import { binding } from './binding';

/**
 * The JSON sidecar a holder writes after it holds the lock. Diagnostics only:
 * nothing decides ownership from it, and readers tolerate anything in it.
 * A record read back has a valid pid; any other field is there only if it
 * had the right type on disk, and unknown fields are dropped.
 */
export interface HolderRecord {
  pid: number;
  hostname: string;
  owner: string | null;
  mode: 'shared' | 'exclusive';
  acquiredAt: number;
  /** argv0 and title only — never the full argv, which may hold secrets. */
  process: { argv0: string; title: string };
  node: string;
  nonce: string;
}

export const MAX_RECORD_BYTES = 64 * 1024;

export function recordPathFor(lockPath: string): string {
  return `${lockPath}.json`;
}


// Unique per hold without a syscall per acquire: a random per-process prefix and a counter.
const noncePrefix = crypto.randomBytes(6).toString('hex');
let nonceCounter = 0;

export function newNonce(): string {
  return `${noncePrefix}-${(++nonceCounter).toString(36)}`;
}

/** The fields of a record that a process does not change while it runs, as JSON. */
let fixedFields: { pid: string; hostname: string; argv0: string; node: string } | undefined;
let lastTitle: { raw: string; json: string } = { raw: '', json: '""' };

/**
 * A HolderRecord of this process as one line of JSON, without building the object or
 * escaping the same strings again on every acquire: only the owner, the title (which a
 * process may change) and the grant's own fields are formatted each time.
 */
export function recordText(owner: string | null, shared: boolean, acquiredAt: number, nonce: string): string {
  fixedFields ??= {
    pid: JSON.stringify(process.pid),
    hostname: JSON.stringify(hostName()),
    argv0: JSON.stringify(process.argv0),
    node: JSON.stringify(process.version),
  };
  const title = process.title;
  if (title !== lastTitle.raw) lastTitle = { raw: title, json: JSON.stringify(title) };
  const fixed = fixedFields;
  return (
    `{"pid":${fixed.pid},"hostname":${fixed.hostname},"owner":${owner === null ? 'null' : JSON.stringify(owner)},` +
    `"mode":"${shared ? 'shared' : 'exclusive'}","acquiredAt":${JSON.stringify(acquiredAt)},` +
    `"process":{"argv0":${fixed.argv0},"title":${lastTitle.json}},"node":${fixed.node},"nonce":${JSON.stringify(nonce)}}\n`
  );
}

/** The record a holder wrote, as the file it became: what clearRecord() checks before removing. */
export interface WrittenRecord {
  readonly path: string;
  /** The written file's identity (binding.replaceFile()). */
  readonly key: string;
}

/**
 * Replaces the record atomically (temp file + rename, in one addon call), then removes temp
 * records that dead writers left beside it (see sweepStaleTemps). Failures are logged, never
 * thrown: the lock is held either way. Returns the written file's identity, or null.
 */
export function writeRecord(recordPath: string, text: string, nonce: string, fileMode: number): WrittenRecord | null {
  const key = binding.replaceFile(tempPathFor(recordPath, nonce), recordPath, text, fileMode);
  if (typeof key !== 'string') {
    debug('could not write holder record %s: %s', recordPath, binding.errorName(key) ?? key);
    return null;
  }
  sweepStaleTemps(recordPath);
  return { path: recordPath, key };
}

/**
 * Clears a holder's own record once its lock is let go: the release puts no file I/O
 * before the kernel unlock, so the next holder (here or in another process) is woken
 * first. The record is removed only while the path still names the very file this holder
 * wrote (a later holder, or another shared holder, replaces it with a new file through
 * rename). On POSIX, a later holder that renames its record in between the check and the
 * unlink loses it: its hold then shows without a record (inspect and status name it from
 * the kernel), which is incomplete but never false. Never throws.
 */
export function clearRecord(written: WrittenRecord): void {
  const code = binding.removeIfSame(written.path, written.key);
  if (code !== 0 && code !== binding.REPLACED) {
    debug('could not remove holder record %s: %s', written.path, binding.errorName(code) ?? code);
  }
}

export type RecordRead =
  | { ok: true; record: HolderRecord }
  | { ok: false; problem: 'missing' | 'unreadable' | 'too-large' | 'malformed'; detail: string };

/**
 * The known fields of a parsed record, each only if it has its type; null
 * without a valid pid. Nothing else of what was on disk is kept, so a hostile
 * record (deeply nested, huge, odd types) cannot reach a reader's output.
 */
function knownFields(value: unknown): HolderRecord | null {
  if (typeof value !== 'object' || value === null) return null;
  const r = value as Record<string, unknown>;
  if (!Number.isSafeInteger(r.pid) || (r.pid as number) <= 0) return null;
  if (r.owner !== null && r.owner !== undefined && typeof r.owner !== 'string') return null;
  const record: Partial<HolderRecord> = { pid: r.pid as number };
  if (typeof r.hostname === 'string') record.hostname = r.hostname;
  if (r.owner !== undefined) record.owner = r.owner as string | null;
  if (r.mode === 'shared' || r.mode === 'exclusive') record.mode = r.mode;
  if (typeof r.acquiredAt === 'number' && Number.isFinite(r.acquiredAt)) record.acquiredAt = r.acquiredAt;
  if (typeof r.process === 'object' && r.process !== null) {
    const { argv0, title } = r.process as Record<string, unknown>;
    const names: Partial<HolderRecord['process']> = {};
    if (typeof argv0 === 'string') names.argv0 = argv0;
    if (typeof title === 'string') names.title = title;
    record.process = names as HolderRecord['process'];
  }
  if (typeof r.node === 'string') record.node = r.node;
  if (typeof r.nonce === 'string') record.nonce = r.nonce;
  return record as HolderRecord;
}

/** Reads at most MAX_RECORD_BYTES, never follows a symlink, never throws. */
export function readRecordDetailed(recordPath: string): RecordRead {
  let fd: number;
  try {
    fd = fs.openSync(recordPath, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, problem: 'missing', detail: 'no holder record' };
    return { ok: false, problem: 'unreadable', detail: `holder record unreadable (${code})` };
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) return { ok: false, problem: 'unreadable', detail: 'holder record is not a regular file' };
    if (stat.size > MAX_RECORD_BYTES) return { ok: false, problem: 'too-large', detail: `holder record is ${stat.size} bytes, over the ${MAX_RECORD_BYTES}-byte cap` };
    const buffer = Buffer.alloc(MAX_RECORD_BYTES + 1);
    const length = fs.readSync(fd, buffer, 0, buffer.length, 0);
    if (length > MAX_RECORD_BYTES) return { ok: false, problem: 'too-large', detail: `holder record is over the ${MAX_RECORD_BYTES}-byte cap` };
    let parsed: unknown;
    try {
      parsed = JSON.parse(buffer.toString('utf8', 0, length));
    } catch {
      return { ok: false, problem: 'malformed', detail: length === 0 ? 'holder record is empty' : 'holder record is not valid JSON (torn or foreign)' };
    }
    const record = knownFields(parsed);
    if (record === null) return { ok: false, problem: 'malformed', detail: 'holder record has no valid pid' };
    return { ok: true, record };
  } catch (error) {
    return { ok: false, problem: 'unreadable', detail: `holder record unreadable (${(error as NodeJS.ErrnoException).code})` };
  } finally {
    fs.closeSync(fd);
  }
}

export function readRecord(recordPath: string): HolderRecord | null {
  const result = readRecordDetailed(recordPath);
  return result.ok ? result.record : null;
}
