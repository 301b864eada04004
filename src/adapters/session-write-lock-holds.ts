/**
 * The holds the session-write-lock adapter took, and what may end them besides their
 * handles: the in-process watchdog (a hold older than its `maxHoldMs`) and the
 * release-everything paths (exit, termination signals, test hooks). Only this
 * process's own holds are ever let go: another process's lock is out of reach.
 */
import type { Hold } from '../core/hold';
import { holdOf, type SessionLock } from '../core/session-lock';

/** How often the watchdog looks, as the old module: once a minute. */
const WATCHDOG_INTERVAL_MS = 60_000;

interface Taken {
  readonly lockPath: string;
  readonly maxHoldMs: number;
}

/**
 * On globalThis so that two copies of the package in one process share one watchdog
 * and one list of holds. `handles` are weak so that a dropped handle is still collected
 * and released by the core's leak finalizer (with its warning).
 */
interface HoldsState {
  /** Holds this module took (not joined), until released. */
  readonly taken: Map<Hold, Taken>;
  /** Every view this module gave out, its own holds' and joined ones. */
  readonly handles: Set<WeakRef<SessionLock>>;
  pruneAt: number;
  timer: NodeJS.Timeout | undefined;
}

const KEY = Symbol.for('session-flock.session-write-lock.holds.v1');

const state: HoldsState = ((globalThis as { [KEY]?: HoldsState })[KEY] ??= {
  taken: new Map(),
  handles: new Set(),
  pruneAt: 64,
  timer: undefined,
});

/** The handle shape the adapter returns (see SessionWriteLock). */
export interface HandleView {
  release: () => Promise<void>;
  readonly sessionFile?: string;
  readonly lockPath?: string;
  readonly held?: boolean;
}

function track(view: SessionLock): WeakRef<SessionLock> {
  if (state.handles.size >= state.pruneAt) {
    for (const ref of state.handles) if (ref.deref()?.held !== true) state.handles.delete(ref);
    state.pruneAt = Math.max(64, state.handles.size * 2);
  }
  const ref = new WeakRef(view);
  state.handles.add(ref);
  return ref;
}

/** The hold of a view, or null for a view made by another copy of the package (its class is not ours). */
function holdOrNull(view: SessionLock): Hold | null {
  try {
    return holdOf(view);
  } catch {
    return null;
  }
}

/** The handle of a view, tracked so that the release-everything paths reach it. */
export function handleFor(view: SessionLock, sessionFile: string): HandleView {
  const ref = track(view);
  const hold = holdOrNull(view);
  return {
    sessionFile,
    lockPath: view.lockPath,
    get held() {
      return view.held;
    },
    release: () => {
      state.handles.delete(ref);
      const released = view.release();
      if (hold?.released === true && state.taken.delete(hold) && state.taken.size === 0) {
        // With nothing left to watch the watchdog stops, as the old module's did.
        stopWatchdog();
      }
      return released;
    },
  };
}

/** Records a hold this module took (a fresh acquire, not a join), for the watchdog and the exit paths. */
export function noteTaken(view: SessionLock, maxHoldMs: number): void {
  state.taken.set(holdOf(view), { lockPath: view.lockPath, maxHoldMs });
}

/** Lets a hold go whatever its count: every view of it goes inert, as after releaseAll(). */
function forceRelease(hold: Hold): boolean {
  try {
    return hold.release();
  } catch {
    // Best effort, as the old module's: the descriptor is closed by the kernel at exit anyway.
    return false;
  }
}

/**
 * Releases every hold this module took, and every view it gave out of a hold it joined
 * (the core's own views of such a hold keep it). Synchronous: it runs at exit.
 */
export function releaseAllLocksSync(): void {
  const holds = [...state.taken.keys()];
  state.taken.clear();
  for (const hold of holds) forceRelease(hold);
  const refs = [...state.handles];
  state.handles.clear();
  for (const ref of refs) {
    try {
      ref.deref()?.releaseSync();
    } catch {
      // Best effort, as above.
    }
  }
  stopWatchdog();
}

/** After the core's releaseAll(): nothing of before is held, so nothing is left to track. */
export function forgetAll(): void {
  state.taken.clear();
  state.handles.clear();
  stopWatchdog();
}

/**
 * The watchdog's pass: each hold this module took that has been held longer than its
 * `maxHoldMs` at `nowMs` is let go, with the old module's line on stderr. Resolves to how
 * many were let go.
 */
export async function runLockWatchdogCheck(nowMs: number = Date.now()): Promise<number> {
  let released = 0;
  for (const [hold, taken] of [...state.taken]) {
    if (hold.released) {
      state.taken.delete(hold);
      continue;
    }
    const heldForMs = nowMs - hold.acquiredAt;
    if (heldForMs <= taken.maxHoldMs) continue;
    process.stderr.write(`[session-write-lock] releasing lock held for ${heldForMs}ms (max=${taken.maxHoldMs}ms): ${taken.lockPath}\n`);
    state.taken.delete(hold);
    if (forceRelease(hold)) released++;
  }
  if (state.taken.size === 0) stopWatchdog();
  return released;
}

/** Starts the once-a-minute check unless it runs; it never keeps the process alive. */
export function ensureWatchdogStarted(): void {
  if (state.timer !== undefined) return;
  state.timer = setInterval(() => {
    runLockWatchdogCheck().catch(() => undefined);
  }, WATCHDOG_INTERVAL_MS);
  state.timer.unref?.();
}

export function stopWatchdog(): void {
  if (state.timer === undefined) return;
  clearInterval(state.timer);
  state.timer = undefined;
}
