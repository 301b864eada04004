import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { debug } from '../core/observe';
import { pidAlive } from '../core/process-alive';

/*
 * The holder record is written to a temp file beside it and renamed over it.
 * A writer killed between the two leaves the temp file behind (empty, cut off
 * or whole). Its name says who wrote it, `${recordPath}.<place>.<pid>.<nonce>.tmp`,
 * where <place> is a tag of the host and pid namespace: only there does that
 * pid mean that process, so only there can a leftover of a dead writer be
 * told from a live writer's file in progress.
 */

let placeTag: string | undefined;

function place(): string {
  if (placeTag === undefined) {
    let pidNamespace = '';
    try {
      pidNamespace = fs.readlinkSync('/proc/self/ns/pid');
    } catch {
      /* no /proc (not Linux): the host alone */
    }
    placeTag = crypto.createHash('sha256').update(`${os.hostname()}\0${pidNamespace}`).digest('hex').slice(0, 8);
  }
  return placeTag;
}

export function tempPathFor(recordPath: string, nonce: string): string {
  return `${recordPath}.${place()}.${process.pid}.${nonce}.tmp`;
}

export interface TempRecord {
  name: string;
  path: string;
  /** The writer's pid, when its name says so (not for an older session-flock's temp file). */
  pid: number | null;
  /** Whether `pid` is a pid of this host and pid namespace, so it can be checked here. */
  checkable: boolean;
}

const WRITER = /^([0-9a-f]{8})\.(\d+)\.[0-9a-z-]+\.tmp$/;

/** The temp records of `recordPath` among `names` (the entries of its folder). */
export function tempRecordsIn(recordPath: string, names: readonly string[]): TempRecord[] {
  const dir = path.dirname(recordPath);
  const prefix = `${path.basename(recordPath)}.`;
  const temps: TempRecord[] = [];
  for (const name of names) {
    if (!name.startsWith(prefix) || !name.endsWith('.tmp')) continue;
    const writer = WRITER.exec(name.slice(prefix.length));
    temps.push({
      name,
      path: path.join(dir, name),
      pid: writer === null ? null : Number(writer[2]),
      checkable: writer !== null && writer[1] === place(),
    });
  }
  return temps;
}

/** Left by a writer that is gone: nobody will ever rename it. */
export function isStale(temp: TempRecord): boolean {
  return temp.checkable && temp.pid !== null && temp.pid !== process.pid && !pidAlive(temp.pid);
}

/**
 * A holder reads its lock's folder for leftovers at most this often per lock
 * (the first record it writes, then once a minute): a folder of sessions may
 * hold thousands of entries, and a record is written on every acquire.
 */
const SWEEP_EVERY_MS = 60_000;
const lastSweep = new Map<string, number>();

/**
 * Removes the temp records of `recordPath` whose writer has died. Called by a
 * holder right after it wrote its own record. A temp file whose writer is
 * alive, or cannot be checked from here, is left alone. Never throws.
 */
export function sweepStaleTemps(recordPath: string): void {
  const now = Date.now();
  const last = lastSweep.get(recordPath);
  if (last !== undefined && now - last < SWEEP_EVERY_MS) return;
  if (lastSweep.size >= 1024) lastSweep.clear();
  lastSweep.set(recordPath, now);
  let names: string[];
  try {
    names = fs.readdirSync(path.dirname(recordPath));
  } catch (error) {
    debug('could not list %s for stale temp records: %s', path.dirname(recordPath), (error as Error).message);
    return;
  }
  for (const temp of tempRecordsIn(recordPath, names)) {
    if (!isStale(temp)) continue;
    try {
      fs.unlinkSync(temp.path);
      debug('removed %s, left by pid %d, which died while writing it', temp.path, temp.pid);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') debug('could not remove %s: %s', temp.path, (error as Error).message);
    }
  }
}

/** One status note about the temp records beside a record, or null when there are none. */
export function tempRecordsNote(temps: readonly TempRecord[]): string | null {
  if (temps.length === 0) return null;
  const stale = temps.filter(isStale);
  const unknown = temps.filter((t) => !t.checkable);
  const live = temps.filter((t) => t.checkable && !stale.includes(t));
  const parts: string[] = [];
  const pids = (list: TempRecord[]): string => [...new Set(list.map((t) => t.pid))].join(', ');
  if (stale.length > 0) parts.push(`${stale.length} left by a writer killed mid-write (pid ${pids(stale)}; the next holder removes them)`);
  if (live.length > 0) parts.push(`${live.length} being written by running pid ${pids(live)}`);
  if (unknown.length > 0) parts.push(`${unknown.length} whose writer cannot be checked here (another host or pid namespace, or an older session-flock)`);
  return `${temps.length} temp record file(s) beside the record: ${parts.join('; ')}`;
}
