import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import { hostName } from '../core/host';

/**
 * The holder record: the lock file's own content while it is held, one line of JSON
 * written by the holder through the descriptor that holds the lock and emptied when it
 * lets go. Diagnostics only: nothing decides ownership from it, and readers tolerate
 * anything in it. A record read back has a valid pid; any other field is there only if
 * it had the right type on disk, and unknown fields are dropped.
 *
 * `pid` and `createdAt` are the fields of the body the OpenClaw gateway's older lock
 * files held, so tools that read those see a live holder.
 */
export interface HolderRecord {
  pid: number;
  /** ISO 8601 time of the grant. */
  createdAt: string;
  hostname: string;
  owner: string | null;
  mode: 'shared' | 'exclusive';
  /** Epoch ms of the grant. */
  acquiredAt: number;
  /** argv0 and title only — never the full argv, which may hold secrets. */
  process: { argv0: string; title: string };
  node: string;
  nonce: string;
}

/** A lock file larger than this is not read: a record is a few hundred bytes. */
export const MAX_RECORD_BYTES = 64 * 1024;

// Unique per hold without a syscall per acquire: a random per-process prefix and a serial.
const noncePrefix = crypto.randomBytes(6).toString('hex');
let nonceSerial = 0;

/** The serial of the next record's nonce (the addon appends it to the fixed fields). */
export function nextSerial(): number {
  return ++nonceSerial;
}

/** The last fixed part made, reused while the owner, mode and title stay the same. */
let lastFields: { owner: string | null; shared: boolean; title: string; bytes: Buffer } | undefined;

/**
 * The fixed part of this process's record for one owner and mode, as the addon takes it:
 * from `{` through the opening quote of the nonce's text. The addon appends the serial,
 * `createdAt` and `acquiredAt` of the grant, so the record can be written on a wait
 * thread the moment the kernel grants the lock. Built again only when the owner, the
 * mode or the title (which a process may change) differs from the last one.
 */
export function recordFields(owner: string | null, shared: boolean): Buffer {
  const title = process.title;
  const last = lastFields;
  if (last !== undefined && last.owner === owner && last.shared === shared && last.title === title) return last.bytes;
  const text =
    `{"pid":${process.pid},"hostname":${JSON.stringify(hostName())},"owner":${JSON.stringify(owner)},` +
    `"mode":"${shared ? 'shared' : 'exclusive'}","process":{"argv0":${JSON.stringify(process.argv0)},"title":${JSON.stringify(title)}},` +
    `"node":${JSON.stringify(process.version)},"nonce":"${noncePrefix}-`;
  const bytes = Buffer.from(text, 'utf8');
  lastFields = { owner, shared, title, bytes };
  return bytes;
}

/** The whole record of a grant at `acquiredAt`, as the addon writes it (for a record written from JavaScript). */
export function recordText(owner: string | null, shared: boolean, acquiredAt: number, serial: number): string {
  return `${recordFields(owner, shared).toString('utf8')}${serial}","createdAt":"${new Date(acquiredAt).toISOString()}","acquiredAt":${acquiredAt}}\n`;
}

/** The body the OpenClaw gateway's older lock files held. */
export interface LegacyBody {
  pid: number;
  createdAt: string;
}

/** What a lock file holds, as a reader sees it. */
export type LockFileContent =
  | { kind: 'record'; record: HolderRecord }
  | { kind: 'legacy'; body: LegacyBody }
  | { kind: 'empty' }
  | { kind: 'missing' }
  /** Stable content that is neither: another tool's. Never written over. */
  | { kind: 'foreign'; detail: string }
  /** Changing under every read (a holder mid-write), too large, or not readable. */
  | { kind: 'unreadable'; detail: string };

/**
 * The known fields of a parsed record, each only if it has its type; null without a
 * valid pid. Nothing else of what was on disk is kept, so a hostile record (deeply
 * nested, huge, odd types) cannot reach a reader's output.
 */
function knownFields(r: Record<string, unknown>): HolderRecord | null {
  if (r.owner !== null && r.owner !== undefined && typeof r.owner !== 'string') return null;
  const record: Partial<HolderRecord> = { pid: r.pid as number };
  if (typeof r.createdAt === 'string') record.createdAt = r.createdAt;
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

/**
 * What `text` is: a record of ours (it has a nonce), the legacy body (a pid and a
 * createdAt, no nonce), empty, or null when it is none of these (torn or foreign).
 */
export function classifyContent(text: string): LockFileContent | null {
  if (text.length === 0) return { kind: 'empty' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return null;
  const r = parsed as Record<string, unknown>;
  if (!Number.isSafeInteger(r.pid) || (r.pid as number) <= 0) return null;
  if (typeof r.nonce === 'string') {
    const record = knownFields(r);
    return record === null ? null : { kind: 'record', record };
  }
  if (typeof r.createdAt === 'string') return { kind: 'legacy', body: { pid: r.pid as number, createdAt: r.createdAt } };
  return null;
}

/** Whether a holder may write its record over this content: ours, the legacy body, or nothing. */
export function replaceable(content: LockFileContent): boolean {
  return content.kind === 'record' || content.kind === 'legacy' || content.kind === 'empty';
}

/** How often a reader reads again content that is neither a record nor stable. */
const READS = 3;

/**
 * Reads the lock file's content: at most MAX_RECORD_BYTES, never through a symlink,
 * never throws. Content that is not a complete record is read again: the same bytes twice
 * are another tool's ('foreign'); bytes that change under every read are a holder
 * mid-write, reported as 'unreadable'.
 */
export function readLockFile(lockPath: string): LockFileContent {
  let fd: number;
  try {
    fd = fs.openSync(lockPath, fs.constants.O_RDONLY | (fs.constants.O_NOFOLLOW ?? 0) | (fs.constants.O_NONBLOCK ?? 0));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'unreadable', detail: `lock file unreadable (${code})` };
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return { kind: 'unreadable', detail: 'lock file is not a regular file' };
    const buffer = Buffer.allocUnsafe(MAX_RECORD_BYTES + 1);
    let previous: string | null = null;
    for (let read = 0; read < READS; read++) {
      const length = fs.readSync(fd, buffer, 0, buffer.length, 0);
      if (length > MAX_RECORD_BYTES) return { kind: 'unreadable', detail: `lock file is over the ${MAX_RECORD_BYTES}-byte cap of a record` };
      const text = buffer.toString('utf8', 0, length);
      const content = classifyContent(text);
      if (content !== null) return content;
      if (text === previous) return { kind: 'foreign', detail: 'the lock file holds data that is not a session-flock record (another tool\'s); it is never written over' };
      previous = text;
    }
    return { kind: 'unreadable', detail: 'the holder record changed under every read (a holder mid-write)' };
  } catch (error) {
    return { kind: 'unreadable', detail: `lock file unreadable (${(error as NodeJS.ErrnoException).code})` };
  } finally {
    fs.closeSync(fd);
  }
}

/** The holder record in the lock file, or null (no record, the legacy body, or anything else). */
export function readRecord(lockPath: string): HolderRecord | null {
  const content = readLockFile(lockPath);
  return content.kind === 'record' ? content.record : null;
}

/** Whether a record's hostname names this machine (a record without one is taken as local): only then do its pids mean anything here. */
export function writtenOnThisHost(hostname: unknown): boolean {
  return typeof hostname !== 'string' || hostname === hostName();
}
