const settled = Promise.resolve();

/**
 * Runs `fn` as a microtask, like queueMicrotask() but without the AsyncResource
 * that Node creates for every queueMicrotask() call: on a lock handoff that
 * bookkeeping costs more than the work it defers. `fn` must not throw.
 */
export function deferMicrotask(fn: () => void): void {
  void settled.then(fn);
}
