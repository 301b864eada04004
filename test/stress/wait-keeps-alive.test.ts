// REPRO (found by this suite, reported to the core owner): a process whose only pending
// work is `await withLock(p, fn, { timeoutMs: Infinity })` on a contended lock exits with
// status 0 while waiting — fn never runs and nothing reports it. With a finite timeoutMs the
// timeout timer happens to keep the event loop alive, so the bug hides. The native wait
// deliberately does not keep the loop alive; something in the TS layer must, while a
// caller awaits the acquire.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DIST_CJS, run, tempDir } from './helpers';

describe('a pending acquire keeps the process alive', () => {
  for (const timeoutMs of ['Infinity', '60000']) {
    it(`withLock(…, { timeoutMs: ${timeoutMs} }) in a process with nothing else to do still runs fn after the holder lets go`, async () => {
      const target = path.join(tempDir('alive'), 's.jsonl');
      const script = `const L = require(${JSON.stringify(DIST_CJS)});
L.withLock(${JSON.stringify(target)}, () => console.log('RAN'), { timeoutMs: ${timeoutMs} }).then(() => console.log('DONE'), (e) => { console.error(e); process.exit(2); });`;
      // flock(1) holds the lock for 700 ms, then the node process must get it.
      const r = await run('/usr/bin/flock', ['-o', '-x', `${target}.lock`, 'sh', '-c', `"$0" -e "$1" & sleep 0.7`, process.execPath, script], { timeoutMs: 20_000 });
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe('RAN\nDONE\n');
    });
  }
});
