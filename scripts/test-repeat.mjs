// `npm run test:repeat -- N`: the whole `npm test` suite N times in a row (default 20),
// stopping at the first failure, to catch races a single run misses. Prints the count.
import { spawnSync } from 'node:child_process';

const arg = process.argv[2] ?? '20';
const runs = Number(arg);
if (!Number.isSafeInteger(runs) || runs < 1) {
  console.error(`test:repeat: N must be a positive integer, not ${JSON.stringify(arg)}`);
  process.exit(64);
}
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const started = Date.now();
for (let run = 1; run <= runs; run++) {
  console.log(`\n==> test:repeat: run ${run} of ${runs}`);
  const result = spawnSync(npm, ['test'], { stdio: 'inherit', shell: process.platform === 'win32' });
  if (result.status !== 0) {
    console.error(`\ntest:repeat: run ${run} of ${runs} FAILED (${result.signal ?? `exit ${result.status}`}); ${run - 1} passed before it`);
    process.exit(1);
  }
}
console.log(`\ntest:repeat: ${runs} of ${runs} runs passed in ${Math.round((Date.now() - started) / 1000)}s`);
