// Type-checked with moduleResolution node10 (TypeScript's old "node"), which reads
// "typesVersions" instead of "exports": every public subpath must resolve to its types.
import { acquire, type SessionLock } from 'session-flock';
import * as adapter from 'session-flock/session-write-lock';

export async function touch(target: string): Promise<boolean> {
  const lock: SessionLock = await acquire(target, { timeoutMs: 1_000 });
  await lock.release();
  return typeof adapter.acquireSessionWriteLock === 'function';
}
