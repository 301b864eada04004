// REPRO (found by this suite, reported to the core owner): a process whose only pending
// work is `await withLock(p, fn, { timeoutMs: Infinity })` on a contended lock exits with
// status 0 while waiting — fn never runs and nothing reports it. With a finite timeoutMs the
// timeout timer happens to keep the event loop alive, so the bug hides. The native wait
// deliberately does not keep the loop alive; something in the TS layer must, while a
// caller awaits the acquire.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DIST_CJS, blockedInFlock, exited, lines, tempDir, untilChild } from './helpers';

describe('a pending acquire keeps the process alive', () => {
  for (const timeoutMs of ['Infinity', '60000']) {
    it(`withLock(…, { timeoutMs: ${timeoutMs} }) in a process with nothing else to do still runs fn after the holder lets go`, async () => {
      const target = path.join(tempDir('alive'), 's.jsonl');
      const script = `const L = require(${JSON.stringify(DIST_CJS)});
L.withLock(${JSON.stringify(target)}, () => console.log('RAN'), { timeoutMs: ${timeoutMs} }).then(() => console.log('DONE'), (e) => { console.error(e); process.exit(2); });`;
      // flock(1) holds the lock until the node process is queued behind it in the kernel
      // (or has exited: the bug), then lets go; the node process must then get it.
      const holder = spawn('/usr/bin/flock', ['-x', `${target}.lock`, '-c', 'echo HELD; read x'], { stdio: ['pipe', 'pipe', 'inherit'] });
      await lines(holder).next((l) => l === 'HELD');
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d) => (stdout += d));
      child.stderr!.on('data', (d) => (stderr += d));
      const gone = new Promise((r) => child.once('close', r)); // after its output is all read
      await untilChild(child, 'queued in flock', () => blockedInFlock(child.pid), 15_000).catch((e: Error) => {
        if (!/exited/.test(e.message)) throw e;
      });
      holder.stdin!.end('release\n');
      await exited(holder);
      await gone;
      expect(stderr).toBe('');
      expect(stdout).toBe('RAN\nDONE\n');
    });
  }
});
