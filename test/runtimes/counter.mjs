// Read-increment-write under the lock, N times (ESM, by package name); a lost update shows
// in the final count.  Usage: <runtime> counter.mjs <counter-file> <iterations>
import { withLock } from 'session-flock';
import { readFileSync, writeFileSync } from 'node:fs';

const [counterFile, iterations] = process.argv.slice(2);
for (let i = 0; i < Number(iterations); i++) {
  await withLock(counterFile, async () => {
    const value = Number(readFileSync(counterFile, 'utf8'));
    await new Promise((resolve) => setImmediate(resolve)); // widen the race window
    writeFileSync(counterFile, String(value + 1));
  }, { timeoutMs: 60_000, owner: 'counter-esm' });
}
