import type { HolderAnswer } from './errors';
import type { Hold } from './hold';
import type { Attempt, LockEntry, Waiter } from './lock-entry';
import type { SessionLock } from './session-lock';

/**
 * The seam between the core and a backend.
 *
 * The core (this folder) owns everything that does not depend on where a lock lives: the
 * in-process FIFO per lock, re-entrancy (AsyncLocalStorage), one budget for timeout and
 * AbortSignal, releaseAll, the leak and long-hold watch, the error classes, diagnostics
 * channels and debuglog, and the registry on globalThis. A backend (src/file: the addon's
 * descriptors, with the holder record as the lock file's content; src/postgres: advisory
 * locks on its connections) only
 * does what its kind of lock needs, through these methods. `H` is the backend's handle:
 * whatever holds, or waits for, one lock on its side (a descriptor, a connection).
 *
 * A backend names each lock by a key, unique across every backend in the process (the file
 * backend's keys are the lock file's "dev:ino", or its absolute path when that is unknown,
 * so every path to one file is one lock; another backend prefixes its own, e.g. with its
 * scheme and an instance id, so two servers' locks never share an entry). The core keeps one
 * LockEntry per key in the registry, and re-entrancy matches on it.
 *
 * The core calls them for one LockEntry (one lock, identified by the backend's key), never
 * two at once for one entry except as noted, and never on a waiter it has settled:
 *
 * - `trySync(entry, attempt)` (optional): one attempt now, for a waiter or for a request
 *   that has none yet (an attempt is a handle and the request's options). Returns true when
 *   `attempt.handle` now holds the lock; false when another holder has it (the backend may
 *   leave `attempt.handle` open, ready for `startWait`). Throws a typed error for a real
 *   failure, after closing the handle and setting `attempt.handle` to null. A backend
 *   without it (PostgreSQL, whose try is a round trip) gets every attempt as a wait: a
 *   wait with `remainingMs` 0 is a single try (pg_try_advisory_lock), and the core
 *   reports BUSY from it as a timeout (or null from tryAcquire).
 * - `startWait(entry, waiter, remainingMs)`: starts one blocking wait, sets
 *   `waiter.handle` (if trySync did not), and reports exactly once, later, through
 *   `entry.waitSettled(handle, outcome, grantData?, grantedAt?)`: GRANTED (the handle holds
 *   the lock; `grantData` goes to `hold.data`, e.g. a fencing token; `grantedAt`, epoch ms
 *   of the grant where the backend knows it, spares the core a clock read), BUSY (not granted within
 *   `remainingMs`: PostgreSQL's lock_timeout), RETRY (the backend closed the handle, start
 *   over: the file was replaced under the wait), or an Error (the backend closed the
 *   handle). `remainingMs` is what is left of the acquire's one budget (Infinity when
 *   unlimited); the core's own timer is the authority, so a backend without a server-side
 *   timeout may ignore it. Throws a typed error when the wait cannot start (handle closed).
 * - `cancelWait(entry, handle)`: the waiter gave up (timeout, abort, releaseAll). Best
 *   effort: the wait may still win the race and report GRANTED; the core then releases that
 *   late grant at once with `releaseHandle`. The core starts no other wait of an
 *   incompatible mode on the entry until the cancelled one has reported.
 * - `release(hold)`: lets go of the hold's lock and handle (the file backend empties its
 *   holder record in the same addon call, just before the unlock). Called once per hold. May return a promise (PostgreSQL's
 *   unlock round trip); `release()` of the lock resolves when it settles. Must not throw.
 * - `releaseHandle(entry, handle)`: closes a handle that holds nothing the core keeps (a
 *   late grant, a probe that failed). Idempotent, must not throw.
 * - `granted(hold)` (optional): work once the acquirer has resumed (PostgreSQL watches the
 *   connection that holds it); skipped when the hold was released first. Must not throw.
 *   A trySync or a wait reports its grant's time and data through the attempt
 *   (`attempt.grantedAt`, `attempt.grantData`) or waitSettled's arguments.
 * - `describeHolder(entry)`: who holds the lock as the backend can tell (holder record,
 *   pg_locks), for LockTimeoutError; null when it cannot tell, or a HolderUnknown that
 *   says why. May be async (the timeout error is then built once it settles). The core describes its own holds itself.
 *
 * A backend may call `hold.lose(error)` when a live hold's lock may be gone (a PostgreSQL
 * connection error): the hold is released, `hold.signal` aborts with that error
 * (LockLostError), and the next waiter of this process may proceed.
 *
 * `adoptableWaits`: a cancelled wait may be handed to the next queued waiter of the same
 * mode instead of being cancelled (true for the file backend, whose kernel wait carries no
 * budget; false for PostgreSQL, whose wait runs under the first waiter's lock_timeout).
 * `lockClass` is the SessionLock subclass the core makes for this backend's grants.
 */
export interface LockBackend<H = unknown> {
  /** Groups entries for heldLocks()/releaseAll() of one public API ('file', or one postgres instance). */
  readonly family: unknown;
  readonly adoptableWaits: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a SessionLock subclass takes any backend's hold
  readonly lockClass: new (hold: Hold<any>, watch?: boolean) => SessionLock;
  trySync?(entry: LockEntry<H>, attempt: Attempt<H>): boolean;
  startWait(entry: LockEntry<H>, waiter: Waiter<H>, remainingMs: number): void;
  cancelWait(entry: LockEntry<H>, handle: H): void;
  release(hold: Hold<H>): void | Promise<void>;
  releaseHandle(entry: LockEntry<H>, handle: H): void;
  granted?(hold: Hold<H>): void;
  describeHolder(entry: LockEntry<H>): HolderAnswer | Promise<HolderAnswer>;
}

/** Outcomes of a wait, reported through LockEntry.waitSettled (an Error is the fourth). */
export const GRANTED = 0;
export const BUSY = 1;
export const RETRY = 2;
export type WaitOutcome = typeof GRANTED | typeof BUSY | typeof RETRY | Error;
