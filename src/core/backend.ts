import type { HolderAnswer } from './errors';

/**
 * The seam between the core and a backend: the one file a backend author reads.
 *
 * The core (this folder) owns everything that does not depend on where a lock lives: the
 * in-process FIFO per lock, re-entrancy, one budget for timeout and AbortSignal,
 * releaseAll, the leak and long-hold watch, the error classes and diagnostics. A backend
 * (src/file: kernel file locks; src/postgres: advisory locks) only does what its kind of
 * lock needs, through the methods of LockBackend. It never sees the core's queue, entries
 * or holds: it gets small plain requests and reports through the callbacks it is given.
 *
 * `H` is the backend's handle: whatever holds, or waits for, one lock on its side (a
 * descriptor, a connection's attempt). `O` is the backend's own resolved options of a
 * request (its public API resolves them and hands them to the core, which passes them
 * back untouched).
 *
 * A backend names each lock by a key, unique across every backend in the process (the
 * file backend's keys are the lock file's "dev:ino", so every path to one file is one
 * lock; PostgreSQL prefixes its own with an instance id). The core keeps one queue per
 * key, and re-entrancy matches on it.
 *
 * For one key the core never calls two of these at once, and never for a request it has
 * settled:
 *
 * - `trySync(request)` (optional): one attempt now. Returns true when `request.handle` now
 *   holds the lock (setting `request.grantedAt`, epoch ms of the grant where the backend
 *   knows it, and `request.grantData`, kept for release()); false when another holder has
 *   it (the backend may leave `request.handle` open, ready for startWait). Throws a typed
 *   error for a real failure, after closing the handle and setting `request.handle` to
 *   null. A backend without it (PostgreSQL, whose try is a round trip) gets every attempt
 *   as a wait: a wait with `remainingMs` 0 is a single try, and the core reports BUSY from
 *   it as a timeout (or null from tryAcquire).
 * - `startWait(request, remainingMs, report)`: starts one blocking wait, sets
 *   `request.handle` (if trySync did not), and reports exactly once, later, through
 *   `report.waitSettled(handle, outcome, grantData?, grantedAt?)`: GRANTED, BUSY (not
 *   granted within `remainingMs`), RETRY (start over, e.g. the file was replaced under the
 *   wait), or an Error. Every outcome but GRANTED means the backend closed the handle.
 *   `remainingMs` is what is left of the acquire's one budget (Infinity when unlimited);
 *   the core's own timer is the authority, so a backend without a server-side timeout
 *   may ignore it. Throws a typed error, with the handle closed, when the wait cannot
 *   start. Until it reports, `report.requestOf(handle)` names the request the wait now
 *   serves (see adoptableWaits), or null once it was given up.
 * - `cancelWait(handle)`: the request gave up (timeout, abort, releaseAll). Best effort:
 *   the wait may still win the race and report GRANTED; the core then releases that late
 *   grant at once with releaseHandle. The core starts no other wait on the key until the
 *   cancelled one has reported.
 * - `release(lock, lastInProcess)`: lets go of a granted lock and its handle, once per
 *   grant. `lastInProcess`: no other hold or queued acquire of this process is on the key.
 *   May return a promise (an unlock round trip); the public release() resolves when it
 *   settles. Must not throw.
 * - `releaseHandle(handle)`: closes a handle that holds nothing the core keeps (a late
 *   grant, an attempt that lost). Idempotent, must not throw.
 * - `granted(lock)` (optional): work once the acquirer has resumed (PostgreSQL watches
 *   the connection that holds it); skipped when the lock was released first. Must not
 *   throw. A backend may call `lock.lose(error)` from then on when the lock may be gone
 *   (a connection error): the core releases it and aborts the public lock's `signal`.
 * - `describeHolder(key, options)`: who holds the lock as the backend can tell, for
 *   LockTimeoutError; null when it cannot tell, or a HolderUnknown that says why. May be
 *   async. The core describes this process's own holds itself.
 *
 * `adoptableWaits`: a given-up wait may be handed to the next queued request of the same
 * mode instead of being cancelled (true for the file backend, whose kernel wait carries
 * no budget; false for PostgreSQL, whose wait runs under the first request's timeout).
 *
 * `callsAfterGrant`: after each GRANTED it reports, the backend calls `report.afterGrant()`
 * once the acquirer's code, and every promise it chained, has run. The core's bookkeeping of
 * a grant (the acquire event, the leak and long-hold watch, the waiter's timer and abort
 * listener) waits for that call instead of a setImmediate of its own, which costs more than
 * the rest of a handoff on an event loop that just woke up (true for the file backend, whose
 * addon calls again in the same dispatch; false for PostgreSQL).
 */
export interface LockBackend<H = unknown, O extends RequestOptions = RequestOptions> {
  readonly adoptableWaits: boolean;
  readonly callsAfterGrant: boolean;
  trySync?(request: LockRequest<H, O>): boolean;
  startWait(request: LockRequest<H, O>, remainingMs: number, report: WaitReport<H, O>): void;
  cancelWait(handle: H): void;
  release(lock: GrantedLock<H, O>, lastInProcess: boolean): void | Promise<void>;
  releaseHandle(handle: H): void;
  granted?(lock: GrantedLock<H, O>): void;
  describeHolder(key: string, options: O): HolderAnswer | Promise<HolderAnswer>;
}

/** What the core reads of every request's options; a backend's own resolved options extend it. */
export interface RequestOptions {
  /** The lock as messages name it (a lock file's path, `postgres:namespace/key`). */
  readonly name: string;
  /** The protected thing as messages name it (a session file's path, a PostgreSQL key). */
  readonly target: string;
  readonly shared: boolean;
  /** Free-form label of the holder, for its diagnostics. */
  readonly owner: string | null;
}

/** One acquire, as a backend sees it. */
export interface LockRequest<H = unknown, O extends RequestOptions = RequestOptions> {
  /** The lock's key (the backend chose it). */
  readonly key: string;
  readonly options: O;
  /** The backend's handle for this request: null until the backend opens one. */
  handle: H | null;
  /** Set by a trySync that granted: epoch ms of the grant, where the backend knows it. */
  grantedAt?: number;
  /** Set by a trySync that granted: the backend's data for the grant (GrantedLock.data). */
  grantData?: unknown;
}

/** Where a backend reports the end of a wait that startWait() began. */
export interface WaitReport<H = unknown, O extends RequestOptions = RequestOptions> {
  waitSettled(handle: H, outcome: WaitOutcome, grantData?: unknown, grantedAt?: number): void;
  /** For a backend that callsAfterGrant: the acquirer of the grant it reported last has resumed. */
  afterGrant(): void;
  /** The request a wait in flight serves now (another than its starter's once adopted), or null once given up. */
  requestOf(handle: H): LockRequest<H, O> | null;
}

/** A granted lock, as a backend sees it. */
export interface GrantedLock<H = unknown, O extends RequestOptions = RequestOptions> {
  readonly handle: H;
  readonly options: O;
  /** What the grant reported (grantData). */
  readonly data: unknown;
  /** The lock may be gone while held: releases it, and aborts the lock's `signal` with `error`. */
  lose(error: Error): void;
}

/** Outcomes of a wait, reported through WaitReport.waitSettled (an Error is the fourth). */
export const GRANTED = 0;
export const BUSY = 1;
export const RETRY = 2;
export type WaitOutcome = typeof GRANTED | typeof BUSY | typeof RETRY | Error;
