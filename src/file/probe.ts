import { binding, isHandle } from './binding';
import type { LockMode } from './lock-status';

/** A non-blocking probe: shared try-lock, then (only if that succeeded) exclusive; released at once. Never creates the file. */
export function probe(lockPath: string): { state: 'free' | 'held' | 'unknown'; mode: LockMode | null; note?: string } {
  const handle = binding.open(lockPath, 0o600, false);
  if (!isHandle(handle)) {
    const name = binding.errorName(handle) ?? String(handle);
    if (name === 'ENOENT') return { state: 'unknown', mode: null, note: 'the lock file vanished while it was inspected' };
    return { state: 'unknown', mode: null, note: `could not open the lock file to probe it (${name})` };
  }
  try {
    const shared = binding.tryLock(handle, true, lockPath, null, 0, 0);
    if (shared === binding.WOULD_BLOCK) return { state: 'held', mode: 'exclusive' };
    if (shared < 0) return { state: 'unknown', mode: null, note: probeFailure(shared) };
    binding.unlock(handle);
    const exclusive = binding.tryLock(handle, false, lockPath, null, 0, 0);
    if (exclusive === binding.WOULD_BLOCK) return { state: 'held', mode: 'shared' };
    if (exclusive < 0) return { state: 'unknown', mode: null, note: probeFailure(exclusive) };
    return { state: 'free', mode: null };
  } finally {
    binding.close(handle);
  }
}

function probeFailure(code: number): string {
  if (code === binding.REPLACED) return 'the lock file was removed or replaced while it was inspected';
  return `probe failed (${binding.errorName(code) ?? code})`;
}
