/**
 * Whether a pid named in a lock file is a live process of this host, judged as the
 * OpenClaw gateway judged it: the sweep keeps a young lock file that names one, since a
 * gateway still running the old module may be its holder without any kernel lock.
 */
import * as fs from 'node:fs';
import { pidAlive } from '../core/process-alive';

/** A zombie has exited (its descriptors are closed): it holds nothing. Linux only. */
function isZombie(pid: number): boolean {
  if (process.platform !== 'linux') return false;
  try {
    return /^State:\s+Z/m.test(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

export function isLivePid(pid: number): boolean {
  return Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid) && !isZombie(pid);
}

/**
 * Field 22 of /proc/<pid>/stat (the start time, in clock ticks since boot), which the
 * old module wrote as `starttime` to tell a recycled pid; null off Linux or when unreadable.
 */
export function processStartTime(pid: number): number | null {
  if (process.platform !== 'linux' || !Number.isSafeInteger(pid) || pid <= 0) return null;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const commEnd = stat.lastIndexOf(')');
    if (commEnd < 0) return null;
    // The command name may hold spaces and parentheses; the fields after its last ')' start at field 3.
    const value = Number(stat.slice(commEnd + 1).trim().split(/\s+/)[22 - 3]);
    return Number.isSafeInteger(value) && value >= 0 ? value : null;
  } catch {
    return null;
  }
}
