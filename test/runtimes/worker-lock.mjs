// Worker body: acquires workerData.target and tells the parent once it holds the lock
// ('held') or once its acquire is waiting ('waiting'); then idles until terminated.
import { acquire } from 'session-flock';
import { parentPort, workerData } from 'node:worker_threads';

const pending = acquire(workerData.target, { timeoutMs: Infinity, owner: 'worker' });
if (workerData.mode === 'wait') parentPort.postMessage('waiting');
else {
  globalThis.heldByWorker = await pending; // referenced, so no GC release: only the termination may free it
  parentPort.postMessage('held');
}
setInterval(() => {}, 1000);
