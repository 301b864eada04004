/**
 * Exit and termination-signal cleanup of the session-write-lock adapter, registered and
 * behaving as the old module's: at exit, and on SIGINT, SIGTERM, SIGQUIT and SIGABRT,
 * this process's holds are released at once (their lock files removed), instead of
 * only when the kernel closes the descriptors after the process is gone.
 *
 * A signal handler changes what the signal does (Node no longer exits on it), so the
 * handler keeps the old rule: when it is the only listener of that signal, it removes
 * itself and raises the signal again, and the process ends as it would have without
 * it; when the application listens too, the application decides.
 */
import { ensureWatchdogStarted, releaseAllLocksSync } from './session-write-lock-holds';

export const CLEANUP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGQUIT', 'SIGABRT'] as const;
export type CleanupSignal = (typeof CLEANUP_SIGNALS)[number];

/** On globalThis: one set of listeners per process, however many copies of the package. */
interface CleanupState {
  exitHandler: (() => void) | undefined;
  readonly signalHandlers: Map<CleanupSignal, () => void>;
}

const KEY = Symbol.for('session-flock.session-write-lock.cleanup.v1');

const state: CleanupState = ((globalThis as { [KEY]?: CleanupState })[KEY] ??= {
  exitHandler: undefined,
  signalHandlers: new Map(),
});

export function handleTerminationSignal(signal: CleanupSignal): void {
  releaseAllLocksSync();
  if (process.listenerCount(signal) !== 1) return;
  const handler = state.signalHandlers.get(signal);
  if (handler !== undefined) {
    process.off(signal, handler);
    state.signalHandlers.delete(signal);
  }
  try {
    process.kill(process.pid, signal);
  } catch {
    // The process is going down anyway.
  }
}

/** At every acquire, as the old module: the exit and signal listeners once each, and the watchdog. */
export function registerCleanupHandlers(): void {
  if (state.exitHandler === undefined) {
    state.exitHandler = () => releaseAllLocksSync();
    process.on('exit', state.exitHandler);
  }
  ensureWatchdogStarted();
  for (const signal of CLEANUP_SIGNALS) {
    if (state.signalHandlers.has(signal)) continue;
    try {
      const handler = (): void => handleTerminationSignal(signal);
      state.signalHandlers.set(signal, handler);
      process.on(signal, handler);
    } catch {
      // A signal this platform cannot listen for.
    }
  }
}

/** For the test hooks: every listener this module added is removed. */
export function unregisterCleanupHandlers(): void {
  if (state.exitHandler !== undefined) {
    process.off('exit', state.exitHandler);
    state.exitHandler = undefined;
  }
  for (const [signal, handler] of state.signalHandlers) process.off(signal, handler);
  state.signalHandlers.clear();
}
