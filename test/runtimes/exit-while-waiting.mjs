// Starts a kernel wait on a lock another process holds, then exits mid-wait with code 3:
// the blocked addon thread must neither keep the process alive nor crash its exit.
import { acquire } from 'session-flock';

acquire(process.argv[2], { timeoutMs: Infinity }).then(() => {
  console.log('granted');
  process.exit(4);
});
setTimeout(() => process.exit(3), 200);
