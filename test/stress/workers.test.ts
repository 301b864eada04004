// Worker threads at scale (issue 10): many worker-only processes whose wait
// thread outlives the module's last env, and thousands of workers terminated at
// random moments of withLock. Every child must exit 0; the lock must then be
// free for util-linux flock(1). The main suite runs one of each, smaller.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, has, run, saveResult, scale, tempDir } from './helpers';

const fixture = (name: string) => path.join(ROOT, 'test', 'fixtures', name);
const WORKER_ONLY_RUNS = scale(20, 3);
const TERMINATIONS = scale(3000, 300);

async function freeForFlock1(lockPath: string): Promise<boolean> {
  const r = await run('flock', ['--nonblock', '--exclusive', lockPath, 'true']);
  return r.code === 0;
}

describe.skipIf(process.platform !== 'linux' || !has('flock'))('worker threads under stress', () => {
  for (const scenario of ['handoff', 'terminate'] as const) {
    it(`${WORKER_ONLY_RUNS} processes where only a worker loads the addon (${scenario})`, async () => {
      const dir = tempDir('workers');
      try {
        const outcomes: string[] = [];
        for (let i = 0; i < WORKER_ONLY_RUNS; i++) {
          const target = path.join(dir, `s${i}.jsonl`);
          const r = await run(process.execPath, [fixture('worker-only.cjs'), target, scenario], { timeoutMs: 60_000 });
          outcomes.push(r.signal ?? String(r.code));
          expect({ code: r.code, signal: r.signal }, r.stderr).toEqual({ code: 0, signal: null });
          expect(await freeForFlock1(`${target}.lock`)).toBe(true);
        }
        saveResult(`workers-only-${scenario}`, { runs: WORKER_ONLY_RUNS, outcomes });
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }, 60_000 * WORKER_ONLY_RUNS);
  }

  it(`${TERMINATIONS} workers terminated at random moments of withLock`, async () => {
    const dir = tempDir('terminations');
    try {
      const target = path.join(dir, 's.jsonl');
      const started = Date.now();
      const r = await run(process.execPath, [fixture('worker-terminations.cjs'), target, String(TERMINATIONS)], { timeoutMs: 1_500_000 });
      expect({ code: r.code, signal: r.signal }, r.stderr).toEqual({ code: 0, signal: null });
      const result = JSON.parse(r.stdout);
      expect(result).toMatchObject({ terminated: TERMINATIONS, freeHere: true, heldHere: 0 });
      expect(await freeForFlock1(`${target}.lock`)).toBe(true);
      saveResult('workers-terminations', { ...result, wallMs: Date.now() - started });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 1_600_000);
});
