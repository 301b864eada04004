// Drops a held SessionLock and forces garbage collection with whatever the runtime offers
// (Node/Deno: gc() under --expose-gc; Bun: Bun.gc). Prints one JSON line of what happened.
import { acquire, tryAcquireSync } from 'session-flock';

const target = process.argv[2];
const collect = typeof globalThis.gc === 'function' ? () => globalThis.gc() : globalThis.Bun ? () => globalThis.Bun.gc(true) : null;
const warnings = [];
process.on('warning', (w) => warnings.push({ name: w.name, code: w.code, message: w.message }));

async function leak() {
  await acquire(target, { owner: 'leaky' }); // never released
}

if (collect === null) {
  console.log(JSON.stringify({ gc: false }));
} else {
  await leak();
  const whileReferenced = tryAcquireSync(target, { record: false }) === null ? 'held' : 'free';
  let rounds = 0;
  while (rounds < 50 && warnings.length === 0) {
    collect();
    rounds++;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const lock = tryAcquireSync(target, { record: false });
  console.log(JSON.stringify({ gc: true, rounds, whileReferenced, afterGc: lock ? 'free' : 'held', warnings }));
  lock?.releaseSync();
}
