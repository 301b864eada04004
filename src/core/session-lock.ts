import { setImmediate } from 'node:timers';
import { channels } from './observe';
import { formatCallSite, type Hold } from './hold';

interface Ticket {
  readonly hold: Hold;
  released: boolean;
  /** Registered with `leaks` (most locks are released before they would be). */
  watched: boolean;
}

function onLeak(ticket: Ticket): void {
  const { hold } = ticket;
  if (ticket.released || hold.released) return;
  const acquiredAt = formatCallSite(hold.site);
  if (channels.leak.hasSubscribers) {
    channels.leak.publish({ target: hold.options.target, lockPath: hold.options.name, mode: hold.mode, owner: hold.options.owner, heldForMs: hold.heldForMs, acquiredAt });
  }
  hold.unref();
  process.emitWarning(
    `session-flock: a SessionLock for ${hold.options.name} was garbage-collected while held, so it was released. ` +
      `Call release() (or use withLock / await using). Acquired at:\n${acquiredAt}`,
    { type: 'SessionFlockLeakWarning', code: 'SESSION_FLOCK_LEAK' },
  );
}

const leaks = new FinalizationRegistry<Ticket>(onLeak);

/**
 * Locks not yet registered with `leaks`. Registering (and unregistering at release)
 * costs more than the rest of an uncontended acquire, and a lock released before the
 * next turn of the event loop cannot have leaked: the ones still held then are
 * registered. Until then this list keeps them alive, so a leak is reported one turn
 * later, never missed. A run of acquires that never yields registers in batches.
 */
let unwatched: SessionLock[] = [];
let watchScheduled = false;
const WATCH_BATCH = 64;

function watchSoon(lock: SessionLock): void {
  unwatched.push(lock);
  if (unwatched.length >= WATCH_BATCH) watchUnreleased();
  else if (!watchScheduled) {
    watchScheduled = true;
    // Ref'd: an unref'd immediate may wait in the poll phase for unrelated I/O, and the
    // list keeps its locks alive until it runs. It keeps the loop for one iteration at most.
    setImmediate(watchOnNextTurn);
  }
}

function watchOnNextTurn(): void {
  watchScheduled = false;
  watchUnreleased();
}

function watchUnreleased(): void {
  const locks = unwatched;
  unwatched = [];
  for (const lock of locks) {
    const ticket = ticketOf(lock);
    if (ticket.released || ticket.hold.released) continue;
    ticket.watched = true;
    leaks.register(lock, ticket, ticket);
  }
}

let ticketOf: (lock: SessionLock) => Ticket;

/** What release() returns when the backend let go at once (one promise serves every caller). */
const releasedAtOnce: Promise<void> = Promise.resolve();

/**
 * A held lock. Dropping it without release() releases it at garbage
 * collection with a warning; release() is idempotent and never touches a
 * later holder (after releaseAll() it does nothing).
 */
export class SessionLock {
  readonly #ticket: Ticket;
  /** Absolute path of the protected file. */
  readonly target: string;
  /** Absolute path of the lock file whose kernel lock is held. */
  readonly lockPath: string;
  readonly shared: boolean;
  /** Epoch ms when the kernel lock was taken (for a re-entered lock, the outer acquire). */
  readonly acquiredAt: number;

  static {
    ticketOf = (lock) => lock.#ticket;
  }

  /**
   * @internal Locks are made by acquire(), tryAcquire(), tryAcquireSync() and withLock().
   * With `watch` false the caller must call watchForLeak(lock) soon (the
   * handoff path does it once the acquirer has resumed).
   */
  constructor(hold: Hold, watch = true) {
    this.#ticket = { hold, released: false, watched: false };
    // The request's own paths: another path to the same file (a hard link, a symlinked
    // folder) shares the entry, and so may a new file that reuses a removed one's inode.
    this.target = hold.options.target;
    this.lockPath = hold.options.name;
    this.shared = hold.shared;
    this.acquiredAt = hold.acquiredAt;
    if (watch) watchSoon(this);
  }

  /** True until this lock is released (by release(), releaseAll() or its last re-entrant view). */
  get held(): boolean {
    return !this.#ticket.released && !this.#ticket.hold.released;
  }

  /** Releases synchronously. Idempotent. */
  releaseSync(): void {
    const ticket = this.#ticket;
    if (ticket.released) return;
    ticket.released = true;
    // The unlock first (a waiting process wakes sooner); the leak watch is moot once
    // `released` is set, so forgetting it can wait.
    try {
      ticket.hold.unref();
    } finally {
      if (ticket.watched) leaks.unregister(ticket);
    }
  }

  /** Releases. Idempotent; resolves once the backend has let go (the descriptor is closed). */
  release(): Promise<void> {
    try {
      this.releaseSync();
      return this.#ticket.hold.releasing ?? releasedAtOnce;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  [Symbol.dispose](): void {
    this.releaseSync();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

/** The class of the public locks one API hands out (SessionLock, PostgresLock). */
export type LockClass = new (hold: Hold, watch?: boolean) => SessionLock;

/** @internal Starts the leak watch of a lock made with `watch` false (unless already released). */
export function watchForLeak(lock: SessionLock): void {
  if (!ticketOf(lock).released) watchSoon(lock);
}

/** @internal */
export function holdOf(lock: SessionLock): Hold {
  return ticketOf(lock).hold;
}
