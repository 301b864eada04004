// Interop with lockers nobody here wrote: session-flock, util-linux flock(1),
// Python fcntl.flock and the fs-ext package contend for ONE lock file, in every
// ordered pair, exclusive and shared. Each must exclude the others both ways.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIST_CJS, FIXTURES, blockedInFlock, exited, has, lines, tempDir, untilChild } from './helpers';

const require = createRequire(import.meta.url);
const lib = require(DIST_CJS) as typeof import('../../src/index');

type Mode = 'ex' | 'sh';
interface Locker {
  name: string;
  available: () => boolean;
  /** A process that holds (`wait`: blocks until it can) or tries once (`try`), per the fixtures' protocol. */
  spawn: (target: string, mode: Mode, how: 'wait' | 'try') => ChildProcess;
}

const stdio: ['pipe', 'pipe', 'inherit'] = ['pipe', 'pipe', 'inherit'];
const lockers: Locker[] = [
  {
    name: 'session-flock',
    available: () => true,
    spawn: (t, mode, how) => spawn(process.execPath, [path.join(FIXTURES, 'hold.cjs'), t, mode, how], { stdio }),
  },
  {
    name: 'flock(1)',
    available: () => fs.existsSync('/usr/bin/flock'),
    spawn: (t, mode, how) =>
      how === 'try'
        ? spawn(
            'sh',
            ['-c', `/usr/bin/flock -n -E 75 -${mode === 'sh' ? 's' : 'x'} "$0" -c 'echo HELD; read x; true'; r=$?; if [ $r = 75 ]; then echo BUSY; exit 1; fi; exit $r`, `${t}.lock`],
            { stdio },
          )
        : spawn('sh', ['-c', `echo WAITING; exec /usr/bin/flock -${mode === 'sh' ? 's' : 'x'} "$0" -c 'echo HELD; read x'`, `${t}.lock`], { stdio }),
  },
  {
    name: 'python fcntl.flock',
    available: () => has('python3'),
    spawn: (t, mode, how) => spawn('python3', [path.join(FIXTURES, 'pyflock.py'), `${t}.lock`, mode, how], { stdio }),
  },
  {
    name: 'fs-ext',
    available: () => {
      try {
        require.resolve('fs-ext');
        return true;
      } catch {
        return false;
      }
    },
    spawn: (t, mode, how) => spawn(process.execPath, [path.join(FIXTURES, 'fsext.cjs'), `${t}.lock`, mode, how], { stdio }),
  },
];

interface Held {
  child: ChildProcess;
  release: () => Promise<void>;
}

async function hold(locker: Locker, target: string, mode: Mode): Promise<Held> {
  const child = locker.spawn(target, mode, 'wait');
  await lines(child).next((l) => l === 'HELD');
  return {
    child,
    release: async () => {
      child.stdin!.end('release\n');
      await exited(child);
    },
  };
}

/** One non-blocking attempt in a fresh process: 'HELD' (then released) or 'BUSY'. */
async function tryOnce(locker: Locker, target: string, mode: Mode): Promise<'HELD' | 'BUSY'> {
  const child = locker.spawn(target, mode, 'try');
  child.stdin!.on('error', () => {}); // a BUSY child may be gone before we write
  const out = lines(child);
  const line = await out.next((l) => l === 'HELD' || l === 'BUSY');
  child.stdin!.end('release\n');
  await exited(child);
  if (line === 'BUSY') expect(child.exitCode).toBe(1);
  return line as 'HELD' | 'BUSY';
}

const dirs: string[] = [];
let dir: string;
beforeAll(() => {
  dir = tempDir('interop');
  dirs.push(dir);
});
afterAll(() => {
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
});

const missing = lockers.filter((l) => !l.available()).map((l) => l.name);
const usable = lockers.filter((l) => l.available());

describe('interop: one lock file, four lockers', () => {
  it('all four lockers are available here (none silently skipped)', () => {
    expect(missing).toEqual([]);
  });

  for (const a of usable)
    for (const b of usable) {
      it(`${a.name} holds exclusive → ${b.name} is refused, waits, and gets it right after the release`, async () => {
        const target = path.join(dir, `ex-${lockers.indexOf(a)}-${lockers.indexOf(b)}.jsonl`);
        const holder = await hold(a, target, 'ex');
        expect(await tryOnce(b, target, 'ex')).toBe('BUSY');
        expect(await tryOnce(b, target, 'sh')).toBe('BUSY');
        const waiter = b.spawn(target, 'ex', 'wait');
        const out = lines(waiter);
        await out.next((l) => l === 'WAITING');
        // Queued in the kernel behind the holder (not just about to ask), and not let in.
        await untilChild(waiter, 'blocked in flock', () => blockedInFlock(waiter.pid));
        expect(out.all).not.toContain('HELD');
        await holder.release();
        await out.next((l) => l === 'HELD', 5_000);
        waiter.stdin!.end('release\n');
        await exited(waiter);
        expect(await tryOnce(a, target, 'ex')).toBe('HELD'); // nothing left behind
      });
    }

  for (const a of usable)
    it(`${a.name} holds shared → every locker can share it, none can take it exclusively`, async () => {
      const target = path.join(dir, `sh-${lockers.indexOf(a)}.jsonl`);
      const holder = await hold(a, target, 'sh');
      for (const b of usable) {
        expect([b.name, await tryOnce(b, target, 'sh')]).toEqual([b.name, 'HELD']);
        expect([b.name, await tryOnce(b, target, 'ex')]).toEqual([b.name, 'BUSY']);
      }
      await holder.release();
      for (const b of usable) expect([b.name, await tryOnce(b, target, 'ex')]).toEqual([b.name, 'HELD']);
    });

  for (const a of usable.filter((l) => l.name !== 'session-flock'))
    it(`in-process API against ${a.name}: tryAcquire → null, acquire → LockTimeoutError, nothing left held`, async () => {
      const target = path.join(dir, `api-${lockers.indexOf(a)}.jsonl`);
      const holder = await hold(a, target, 'ex');
      expect(await lib.tryAcquire(target)).toBeNull();
      expect(lib.tryAcquireSync(target, { shared: true })).toBeNull();
      const error = await lib.acquire(target, { timeoutMs: 200 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(lib.LockTimeoutError);
      expect((error as { code: string }).code).toBe('ELOCKTIMEOUT');
      expect(lib.heldLocks()).toEqual([]);
      // The timeout only bounds a wedge: the holder child may be slow to let go on a loaded machine.
      const pending = lib.acquire(target, { timeoutMs: 240_000 });
      await untilChild(holder.child, 'this process queued in flock', () => blockedInFlock(process.pid, true));
      await holder.release();
      const lock = await pending;
      expect(lock.held).toBe(true);
      expect(await tryOnce(a, target, 'ex')).toBe('BUSY'); // and ours now excludes them
      await lock.release();
      expect(lib.heldLocks()).toEqual([]);
    });

  it('fs-native-extensions (a bench peer) does NOT exclude flock users on Linux: it takes OFD fcntl locks', async () => {
    // Recorded so the README can say so; if the peer changes to flock(2), this fails and the note must change.
    const fsx = require('fs-native-extensions');
    const target = path.join(dir, 'fsx.jsonl');
    const lock = await lib.acquire(target);
    const fd = fs.openSync(`${target}.lock`, 'r+');
    try {
      expect(fsx.tryLock(fd)).toBe(process.platform === 'linux');
    } finally {
      fs.closeSync(fd);
      await lock.release();
    }
  });
});
