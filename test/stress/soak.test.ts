// Resource soak: cycles with record on/off (descriptors and RSS stable), 2 000 locks
// held at once, 200 in-process waiters behind one native wait thread.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CI, FIXTURES, exited, lines, run, saveResult, scale, tempDir } from './helpers';

const CYCLES = scale(100_000, 40_000);
/** Stated bounds: descriptors exactly equal at every sample; after 20 000 warm-up cycles, RSS grows < 24 MB. */
const RSS_GROWTH_BOUND_MB = 24;
const MANY = scale(2_000, 2_000);
const WAITERS = 200;

const dirs: string[] = [];
const dir = (p: string) => {
  const d = tempDir(p);
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const soak = (args: string[], timeoutMs = 240_000) => run(process.execPath, ['--expose-gc', path.join(FIXTURES, 'soak.cjs'), ...args], { timeoutMs });

/** Counts lock files among `files` that another process (python, flock(2) LOCK_NB) finds taken. */
async function busyCount(files: string[]): Promise<number> {
  const script = `import fcntl, os, sys
busy = 0
for p in sys.stdin.read().split('\\n'):
    if not p: continue
    fd = os.open(p, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        busy += 1
    os.close(fd)
print(busy)`;
  const r = await run('python3', ['-c', script], { input: files.join('\n') });
  expect(r.code, r.stderr).toBe(0);
  return Number(r.stdout.trim());
}

describe('resource soak', () => {
  for (const record of [true, false]) {
    it(`${CYCLES} acquire/release cycles, record ${record ? 'on' : 'off'}: descriptors and RSS stable, nothing left behind`, async () => {
      const d = dir('cycles');
      const r = await soak(['cycles', d, String(CYCLES), record ? '1' : '0']);
      expect(r.code, r.stderr).toBe(0);
      const res = JSON.parse(r.stdout);
      const fds = res.samples.map((s: { fds: number }) => s.fds);
      const rss = res.samples.map((s: { rssMb: number }) => s.rssMb);
      const base = res.samples.findIndex((x: { at: number }) => x.at >= 20_000);
      const rssGrowth = Math.max(...rss.slice(base)) - rss[base];
      const summary = { cycles: CYCLES, record, ms: res.ms, fds: [...new Set(fds)], rssMb: rss, rssGrowthAfter20kCyclesMb: Math.round(rssGrowth * 10) / 10, heapMb: res.samples.map((s: { heapMb: number }) => s.heapMb) };
      console.log(`soak ${JSON.stringify(summary)}`);
      saveResult(`soak-cycles-record-${record ? 'on' : 'off'}`, summary);
      expect(new Set(fds).size).toBe(1); // the same descriptor count at every sample
      expect(rssGrowth).toBeLessThan(RSS_GROWTH_BOUND_MB);
      expect(res.held).toBe(0);
      expect(res.waitsInFlight).toBe(0);
      expect(res.waitThreads).toBe(0);
      expect(res.recordLeft).toBe(false); // the record goes with the release
      expect(res.lockFileKept).toBe(true); // the lock file stays (no removeLockFile)
      expect(res.dirEntries).toEqual(["cycle.jsonl.lock"]); // one file per lock, nothing else
    });
  }

  it(`${MANY} distinct locks held at once by one process, seen held by another, all freed by release + releaseAll`, async () => {
    const d = dir('many');
    const child = spawn(process.execPath, ['--expose-gc', path.join(FIXTURES, 'soak.cjs'), 'many', d, String(MANY)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const out = lines(child);
    const held = JSON.parse(await out.next(() => true, 60_000));
    expect(held).toMatchObject({ step: 'held', n: MANY, held: MANY, allHeld: true });
    expect(held.fds - held.fdsBefore).toBe(MANY); // one descriptor per lock, no more
    const files = Array.from({ length: MANY }, (_, i) => path.join(d, `s${i}.jsonl.lock`));
    expect(await busyCount(files)).toBe(MANY);
    child.stdin!.write('release-half\n');
    const half = JSON.parse(await out.next());
    expect(half).toMatchObject({ step: 'released-half', held: MANY / 2, fds: held.fdsBefore + MANY / 2 });
    expect(await busyCount(files)).toBe(MANY / 2);
    child.stdin!.write('release-all\n');
    const all = JSON.parse(await out.next());
    expect(all).toMatchObject({ step: 'released-all', count: MANY / 2, held: 0, anyHeld: false, fds: held.fdsBefore });
    await exited(child);
    expect(await busyCount(files)).toBe(0);
    saveResult('soak-many', { n: MANY, fdsBefore: held.fdsBefore, fdsHeld: held.fds, fdsAfter: all.fds });
  });

  it(`${WAITERS} in-process waiters on a lock another process holds: exactly 1 native wait thread (2 for 2 locks), threadpool free, FIFO`, async () => {
    const d = dir('waiters');
    const a = path.join(d, 'a.jsonl');
    const b = path.join(d, 'b.jsonl');
    const holders = [a, b].map((t) => spawn(process.execPath, [path.join(FIXTURES, 'hold.cjs'), t, 'ex', 'wait'], { stdio: ['pipe', 'pipe', 'inherit'] }));
    await Promise.all(holders.map((h) => lines(h).next((l) => l === 'HELD')));
    // First one lock, then two: UV_THREADPOOL_SIZE=1 so a wait on the threadpool would stall the fs probe.
    const results = [];
    for (const specs of [[a, String(WAITERS)], [a, String(WAITERS), b, '50']]) {
      const child = spawn(process.execPath, [path.join(FIXTURES, 'soak.cjs'), 'waiters', ...specs], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, UV_THREADPOOL_SIZE: '1' },
      });
      const out = lines(child);
      const pending = JSON.parse(await out.next(() => true, 30_000));
      const locks = specs.length / 2;
      expect(pending).toMatchObject({ step: 'pending', threadsBefore: 0, waitThreads: locks, waitsInFlight: locks, granted: 0, threadSamples: [locks] });
      // The fs probe finished while the waiters waited (the holders let go only now): no wait sits on the threadpool.
      // Let the child run to completion by handing it the locks: restart the holders afterwards.
      for (const h of holders) h.stdin!.end('release\n');
      await Promise.all(holders.map(exited));
      const done = JSON.parse(await out.next(() => true, 60_000));
      expect(done).toMatchObject({ step: 'done', granted: specs.length === 2 ? WAITERS : WAITERS + 50, fifo: true, waitThreads: 0, waitsInFlight: 0, held: 0 });
      await exited(child);
      results.push({ locks, pending, done });
      holders.splice(0, 2, ...[a, b].map((t) => spawn(process.execPath, [path.join(FIXTURES, 'hold.cjs'), t, 'ex', 'wait'], { stdio: ['pipe', 'pipe', 'inherit'] })));
      await Promise.all(holders.map((h) => lines(h).next((l) => l === 'HELD')));
    }
    for (const h of holders) h.stdin!.end('release\n');
    await Promise.all(holders.map(exited));
    console.log(`waiters ${JSON.stringify(results)}`);
    saveResult('soak-waiters', { scale: CI ? 'ci' : 'full', results });
  });
});
