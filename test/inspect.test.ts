// inspect(), listLocks(), heldLocks() and the /proc/locks parser, against real
// files and locks held by real child processes.
import { type ChildProcess, fork, spawn, spawnSync } from 'node:child_process';
import * as diagnostics from 'node:diagnostics_channel';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dist, eventually, fixture, freeInAnotherProcess, isAlive, otherProcess, tempDir } from './helpers';
import { acquire, heldLocks, withLock } from '../dist/cjs/index.js';
import { inspect, inspectWithProcRoot, listLocks, type LockStatus } from '../dist/cjs/file/inspect.js';
import { devMajorMinor, parseProcLocks } from '../dist/cjs/file/proc-locks.js';

const linux = process.platform === 'linux';
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

interface Holder {
  child: ChildProcess;
  pid: number;
  release(): Promise<void>;
  exited: Promise<unknown>;
}

/** A child process that holds the lock of `target` (test/fixtures/inspect-holder.cjs). */
async function holder(target: string, options: Record<string, unknown> = {}): Promise<Holder> {
  const child = fork(fixture('inspect-holder.cjs'), [target, JSON.stringify(options)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const pid = await new Promise<number>((resolve, reject) => {
    child.on('message', (msg: any) => {
      if (msg.ready) resolve(msg.pid);
      if (msg.error) reject(new Error(msg.error.message));
    });
    child.once('exit', (code) => reject(new Error(`holder exited with ${code}`)));
  });
  return {
    child,
    pid,
    exited,
    release: () =>
      new Promise<void>((resolve) => {
        child.on('message', (msg: any) => msg.released && resolve());
        child.send({ op: 'release' });
      }),
  };
}

async function killHard(h: Holder): Promise<void> {
  h.child.kill('SIGKILL');
  await h.exited;
}

/** A process that is alive but holds nothing. */
function sleeper(): ChildProcess {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  children.push(child);
  return child;
}

function noteMatching(status: LockStatus, pattern: RegExp): string | undefined {
  return status.notes.find((n) => pattern.test(n));
}

describe.runIf(linux)('inspect() on Linux reads the kernel lock table', () => {
  it('names the child holding the lock, from the kernel', async () => {
    const target = path.join(tempDir(), 'a.jsonl');
    const h = await holder(target, { owner: 'agent:coder' });
    const status = await inspect(target);
    expect(status.method).toBe('proc-locks');
    expect(status.state).toBe('held');
    expect(status.mode).toBe('exclusive');
    expect(status.holders).toEqual([{ pid: h.pid, source: 'kernel', alive: true, sameProcess: false, mode: 'exclusive' }]);
    expect(status.owner).toBe('agent:coder');
    expect(status.record?.pid).toBe(h.pid);
    expect(typeof status.heldForMs).toBe('number');
    expect(status.notes).toEqual([]);
    expect(status.target).toBe(target);
    expect(status.lockPath).toBe(`${target}.lock`);
  });

  it('lists every shared holder and the blocked waiters (`->` lines)', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const a = await holder(target, { shared: true });
    const b = await holder(target, { shared: true });
    const status = await inspect(target);
    expect(status.mode).toBe('shared');
    expect(status.holders.map((x) => x.pid).sort()).toEqual([a.pid, b.pid].sort());
    expect(status.holders.every((x) => x.source === 'kernel' && x.mode === 'shared')).toBe(true);

    // An exclusive request from a third process blocks in the kernel.
    const waiter = fork(fixture('inspect-holder.cjs'), [target, JSON.stringify({ wait: true, timeoutMs: 30_000 })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(waiter);
    let waited!: LockStatus;
    await eventually(async () => {
      waited = await inspect(target);
      return (waited.waiters ?? []).some((w) => w.pid === waiter.pid);
    }, 10_000, 'the blocked waiter to show in /proc/locks');
    expect(waited.waiters).toContainEqual({ pid: waiter.pid, mode: 'exclusive' });
    expect(waited.state).toBe('held');
  });

  it('a SIGKILLed holder leaves a free lock and a stale record, reported as such', async () => {
    const target = path.join(tempDir(), 'k.jsonl');
    const h = await holder(target, { owner: 'agent:main' });
    await killHard(h);
    expect(JSON.parse(fs.readFileSync(`${target}.lock`, 'utf8')).pid).toBe(h.pid); // nobody emptied it: the process died
    const status = await inspect(target);
    expect(status.state).toBe('free');
    expect(status.holders).toEqual([]);
    expect(status.record?.pid).toBe(h.pid);
    expect(status.owner).toBeNull();
    expect(noteMatching(status, new RegExp(`record left by pid ${h.pid}, which is not running`))).toBeDefined();
  });

  it('notes a record whose pid is not the kernel holder', async () => {
    const target = path.join(tempDir(), 'm.jsonl');
    const h = await holder(target, { record: false });
    const other = sleeper();
    fs.writeFileSync(`${target}.lock`, JSON.stringify({ pid: other.pid, hostname: os.hostname(), owner: 'liar', acquiredAt: 1, nonce: 'x-1' }));
    const status = await inspect(target);
    expect(status.holders.map((x) => x.pid)).toEqual([h.pid]);
    expect(status.owner).toBeNull(); // a record that disagrees with the kernel is not believed
    expect(noteMatching(status, new RegExp(`record pid ${other.pid} differs from the kernel's holder \\(pid ${h.pid}\\)`))).toBeDefined();
  });

  it('finds the process that inherited the descriptor after the locker exited', async () => {
    // util-linux flock(1) takes the lock and execs sh, which forks a sleeper
    // with the descriptor; then sh (the locker) is gone, the sleeper holds it.
    if (!fs.existsSync('/usr/bin/flock') && !fs.existsSync('/bin/flock')) return;
    const dir = tempDir();
    const lockPath = path.join(dir, 'f.jsonl.lock');
    fs.writeFileSync(lockPath, '');
    const pidFile = path.join(dir, 'sleeper.pid');
    const locker = spawn('flock', [lockPath, 'sh', '-c', `sleep 30 & echo $! > ${pidFile}; exit 0`], { stdio: 'ignore' });
    const lockerExit = new Promise((resolve) => locker.once('exit', resolve));
    await lockerExit;
    const sleeperPid = Number(fs.readFileSync(pidFile, 'utf8'));
    const sleeper = otherProcess(sleeperPid);
    try {
      const status = await inspect(path.join(dir, 'f.jsonl'));
      expect(status.state).toBe('held');
      const pids = status.holders.map((x) => x.pid);
      expect(pids).toContain(sleeperPid);
      expect(status.holders.find((x) => x.pid === sleeperPid)).toMatchObject({ source: 'kernel', alive: true });
      expect(noteMatching(status, new RegExp(`held through its inherited descriptor by pid ${sleeperPid}`))).toBeDefined();
    } finally {
      sleeper.kill('SIGKILL');
    }
  });
});

describe('inspect() with the probe (no /proc/locks)', () => {
  const noProc = path.join(os.tmpdir(), 'session-flock-no-such-proc');

  it('reports free, exclusive and shared holds, identity from the record, and leaves nothing held', async () => {
    const target = path.join(tempDir(), 'p.jsonl');
    fs.writeFileSync(`${target}.lock`, '');
    const free = inspectWithProcRoot(target, undefined, noProc);
    expect(free.method).toBe('probe');
    expect(free.state).toBe('free');
    expect(noteMatching(free, /probed with a brief non-blocking try-lock/)).toBeDefined();

    const x = await holder(target, { owner: 'agent:x' });
    const held = inspectWithProcRoot(target, undefined, noProc);
    expect(held.state).toBe('held');
    expect(held.mode).toBe('exclusive');
    expect(held.holders).toEqual([{ pid: x.pid, source: 'record', alive: true, sameProcess: false, mode: 'exclusive' }]);
    expect(held.owner).toBe('agent:x');
    await x.release();

    const s = await holder(target, { shared: true });
    const shared = inspectWithProcRoot(target, undefined, noProc);
    expect(shared.state).toBe('held');
    expect(shared.mode).toBe('shared');
    // The probe released at once: the shared holder is still the only one, and an exclusive taker can get in after it.
    await s.release();
    expect(await freeInAnotherProcess(target)).toBe(true);
  });

  it('never creates a missing lock file', async () => {
    const target = path.join(tempDir(), 'none.jsonl');
    const viaProbe = inspectWithProcRoot(target, undefined, noProc);
    const viaKernel = await inspect(target);
    for (const status of [viaProbe, viaKernel]) {
      expect(status.state).toBe('missing');
      expect(status.holders).toEqual([]);
    }
    expect(fs.existsSync(`${target}.lock`)).toBe(false);
    // Nor in a folder that does not exist.
    const deep = await inspect(path.join(path.dirname(target), 'no', 'such', 'x.jsonl'));
    expect(deep.state).toBe('missing');
    expect(fs.existsSync(path.join(path.dirname(target), 'no'))).toBe(false);
  });

  it('a lock path that is a symlink is reported, never followed or created', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'l.jsonl');
    fs.symlinkSync(path.join(dir, 'elsewhere'), `${target}.lock`);
    for (const status of [await inspect(target), inspectWithProcRoot(target, undefined, noProc)]) {
      expect(status.state).toBe('unknown');
      expect(noteMatching(status, /symbolic link/)).toBeDefined();
    }
    expect(fs.existsSync(path.join(dir, 'elsewhere'))).toBe(false);
  });
});

describe.runIf(linux)('pid namespaces and odd /proc contents', () => {
  function fakeProc(lines: (dev: string, ino: string) => string, selfPid: number | null, lockPath: string): string {
    const stat = fs.statSync(lockPath, { bigint: true });
    const { major, minor } = devMajorMinor(stat.dev);
    const dev = `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}`;
    const root = tempDir();
    fs.writeFileSync(path.join(root, 'locks'), lines(dev, String(stat.ino)));
    if (selfPid !== null) fs.symlinkSync(String(selfPid), path.join(root, 'self'));
    return root;
  }

  it('pid 0 (a holder outside this pid namespace) is held, by an unnamed holder, with a note', async () => {
    const target = path.join(tempDir(), 'ns.jsonl');
    fs.writeFileSync(`${target}.lock`, '');
    const root = fakeProc((dev, ino) => `1: FLOCK  ADVISORY  WRITE 0 ${dev}:${ino} 0 EOF\n`, process.pid, `${target}.lock`);
    const status = inspectWithProcRoot(target, undefined, root);
    expect(status.state).toBe('held');
    expect(status.holders).toEqual([{ pid: null, source: 'kernel', alive: null, sameProcess: false, mode: 'exclusive' }]);
    expect(noteMatching(status, /not visible from this pid namespace/)).toBeDefined();
  });

  it('a /proc mounted for another pid namespace is called out', async () => {
    const target = path.join(tempDir(), 'ns2.jsonl');
    fs.writeFileSync(`${target}.lock`, '');
    const root = fakeProc((dev, ino) => `1: FLOCK  ADVISORY  READ 4242 ${dev}:${ino} 0 EOF\n`, process.pid + 100_000, `${target}.lock`);
    const status = inspectWithProcRoot(target, undefined, root);
    expect(status.state).toBe('held');
    expect(status.mode).toBe('shared');
    expect(noteMatching(status, /\/proc belongs to another pid namespace/)).toBeDefined();
  });

  it('POSIX (fcntl) locks on the same file do not make it held, and are noted', async () => {
    const target = path.join(tempDir(), 'px.jsonl');
    fs.writeFileSync(`${target}.lock`, '');
    const root = fakeProc((dev, ino) => `1: POSIX  ADVISORY  WRITE 77 ${dev}:${ino} 0 EOF\n2: FLOCK  ADVISORY  WRITE 78 00:01:1 0 EOF\n`, process.pid, `${target}.lock`);
    const status = inspectWithProcRoot(target, undefined, root);
    expect(status.state).toBe('free');
    expect(noteMatching(status, /POSIX lock/)).toBeDefined();
  });

  it('parses real-world /proc/locks lines', () => {
    const text = [
      '1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF',
      '2: FLOCK  ADVISORY  WRITE 7726 fe:00:2146773 0 EOF',
      '2: -> FLOCK  ADVISORY  WRITE 7739 fe:00:2146773 0 EOF',
      ' 2: -> FLOCK  ADVISORY  READ 0 fe:00:2146773 0 EOF',
      '3: OFDLCK ADVISORY  READ  -1 00:05:100 0 EOF',
      '4: LEASE  ACTIVE    READ 555 103:02:99 0 EOF',
      'garbage',
      '',
    ].join('\n');
    const locks = parseProcLocks(text);
    expect(locks).toHaveLength(6);
    expect(locks[1]).toEqual({ kind: 'FLOCK', blocked: false, access: 'WRITE', pid: 7726, major: 0xfe, minor: 0, inode: 2146773n });
    expect(locks[2]).toMatchObject({ blocked: true, pid: 7739 });
    expect(locks[3]).toMatchObject({ blocked: true, pid: 0, access: 'READ' });
    expect(locks[4]).toMatchObject({ kind: 'OFDLCK', pid: -1 });
    expect(locks[5]).toMatchObject({ kind: 'LEASE', major: 0x103, minor: 2 });
  });
});

describe('bad holder records never throw', () => {
  const cases: [string, string, LockStatus['content'], RegExp | null][] = [
    ['torn', '{"pid": 12, "host', 'foreign', /not a session-flock record/],
    ['empty', '', 'empty', null],
    ['hostile pid', '{"pid":"1; rm -rf /","nonce":"x"}', 'foreign', /not a session-flock record/],
    ['negative pid', '{"pid":-1,"nonce":"x"}', 'foreign', /not a session-flock record/],
    ['not an object', '[1,2,3]', 'foreign', /not a session-flock record/],
    ['huge', `{"pid":1,"nonce":"x","owner":"${'x'.repeat(1 << 20)}"}`, 'unreadable', /over the \d+-byte cap/],
  ];

  for (const [name, content, kind, note] of cases) {
    it(`${name} record: free lock and held lock, the content left as it is`, async () => {
      const dir = tempDir();
      const target = path.join(dir, 'r.jsonl');
      fs.writeFileSync(`${target}.lock`, content);
      const free = await inspect(target);
      expect(free.state).toBe('free');
      expect(free.record).toBeNull();
      expect(free.content).toBe(kind);
      if (note !== null) expect(noteMatching(free, note)).toBeDefined();

      // Into an empty file the holder writes its record; over anything else, nothing.
      const h = await holder(target, { owner: 'agent:h' });
      const held = await inspect(target);
      expect(held.state).toBe('held');
      if (kind === 'empty') expect(held.record).toMatchObject({ pid: h.pid, owner: 'agent:h' });
      else expect(held.record).toBeNull();
      expect(held.owner).toBe(kind === 'empty' ? 'agent:h' : null);
      if (note !== null) expect(noteMatching(held, note)).toBeDefined();
      if (linux) expect(held.holders[0].pid).toBe(h.pid);
      const probed = inspectWithProcRoot(target, undefined, path.join(dir, 'no-proc'));
      expect(probed.state).toBe('held');
      if (note !== null) expect(noteMatching(probed, note)).toBeDefined();
      if (kind !== 'empty') expect(fs.readFileSync(`${target}.lock`, 'utf8')).toBe(content);
    });
  }

  it('a record from a live process that does not hold the lock is called out', async () => {
    const target = path.join(tempDir(), 'reuse.jsonl');
    const other = sleeper();
    fs.writeFileSync(`${target}.lock`, JSON.stringify({ pid: other.pid, hostname: os.hostname(), owner: 'old', nonce: 'x-1' }));
    const status = await inspect(target);
    expect(status.state).toBe('free');
    expect(noteMatching(status, new RegExp(`record left by pid ${other.pid}, which is running but does not hold the lock`))).toBeDefined();
  });

  it('a record from another host is not checked against local pids', async () => {
    const target = path.join(tempDir(), 'host.jsonl');
    fs.writeFileSync(`${target}.lock`, JSON.stringify({ pid: process.pid, hostname: 'elsewhere.example', owner: 'x', nonce: 'x-1' }));
    const status = await inspect(target);
    expect(status.state).toBe('free');
    expect(noteMatching(status, /on host elsewhere\.example/)).toBeDefined();
  });
});

describe('listLocks()', () => {
  it('lists held and free locks, with a dead holder\'s leftover record, recursing only when asked', async () => {
    const dir = tempDir();
    const held = path.join(dir, 'a.jsonl');
    const h = await holder(held, { owner: 'agent:a' });
    fs.writeFileSync(path.join(dir, 'b.jsonl.lock'), '');
    fs.writeFileSync(path.join(dir, 'c.jsonl.lock'), JSON.stringify({ pid: 999_999_999, owner: 'gone', nonce: 'x-1' }));
    fs.writeFileSync(path.join(dir, 'a.jsonl'), '{}\n'); // transcripts themselves are not locks
    fs.mkdirSync(path.join(dir, 'sub'));
    fs.writeFileSync(path.join(dir, 'sub', 'd.jsonl.lock'), '');

    const flat = await listLocks(dir);
    expect(flat.map((s) => path.basename(s.lockPath))).toEqual(['a.jsonl.lock', 'b.jsonl.lock', 'c.jsonl.lock']);
    expect(flat.map((s) => s.state)).toEqual(['held', 'free', 'free']);
    expect(flat[0].target).toBe(held);
    expect(flat[0].owner).toBe('agent:a');
    if (linux) expect(flat[0].holders[0]).toMatchObject({ pid: h.pid, source: 'kernel' });
    expect(noteMatching(flat[2], /record left by pid 999999999, which is not running/)).toBeDefined();

    const deep = await listLocks(dir, { recursive: true });
    expect(deep.map((s) => path.relative(dir, s.lockPath))).toContain(path.join('sub', 'd.jsonl.lock'));
  });

  it('rejects a folder that does not exist', async () => {
    await expect(listLocks(path.join(tempDir(), 'nope'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('this process', () => {
  it('heldLocks() describes each hold; inspect() marks it sameProcess', async () => {
    const target = path.join(tempDir(), 'own.jsonl');
    const before = Date.now();
    let entered!: () => void;
    let leave!: () => void;
    const inside = new Promise<void>((resolve) => (entered = resolve));
    const gate = new Promise<void>((resolve) => (leave = resolve));
    const outer = withLock(
      target,
      async () => {
        const inner = await acquire(target); // re-enters: count 2
        entered();
        await gate;
        inner.releaseSync();
      },
      { owner: 'me' },
    );
    await inside;
    const waiting = acquire(target, { timeoutMs: 30_000 }); // outside withLock's context: queues
    const [info] = heldLocks();
    expect(heldLocks()).toHaveLength(1);
    expect(info).toMatchObject({ target, lockPath: `${target}.lock`, mode: 'exclusive', owner: 'me', count: 2, waiters: 1 });
    expect(info.acquiredAt).toBeGreaterThanOrEqual(before);
    expect(info.heldForMs).toBeGreaterThanOrEqual(0);
    expect(info.stack).toContain('inspect.test.ts');

    const status = await inspect(target);
    expect(status.state).toBe('held');
    expect(status.owner).toBe('me');
    expect(status.acquiredAt).toBe(info.acquiredAt);
    expect(status.holders[0]).toMatchObject({ pid: process.pid, sameProcess: true, alive: true });
    expect(noteMatching(status, /1 acquire\(s\) in this process queued/)).toBeDefined();

    leave();
    await outer;
    const next = await waiting;
    expect(heldLocks()).toHaveLength(1);
    expect(heldLocks()[0]).toMatchObject({ owner: null, count: 1, waiters: 0 });
    next.releaseSync();
    expect(heldLocks()).toEqual([]);
    expect((await inspect(target)).state).toBe('free');
  });

  it('inspect() validates its arguments', async () => {
    await expect(inspect(42 as unknown as string)).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_TYPE' });
    await expect(inspect('')).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
  });
});

describe('the probe never outlives inspect()', () => {
  it('after many probes of a free lock, another process can take it and no descriptor is left', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'many.jsonl');
    fs.writeFileSync(`${target}.lock`, '');
    const fds = linux ? fs.readdirSync('/proc/self/fd').length : 0;
    for (let i = 0; i < 200; i++) expect(inspectWithProcRoot(target, undefined, path.join(dir, 'x')).state).toBe('free');
    if (linux) expect(fs.readdirSync('/proc/self/fd').length).toBeLessThanOrEqual(fds);
    expect(await freeInAnotherProcess(target)).toBe(true);
    expect(isAlive(process.pid)).toBe(true);
  });
});

describe('observability, as docs/readme/diagnostics.md documents it', () => {
  it('publishes acquire, contended, long-hold and release with the documented fields', async () => {
    const target = path.join(tempDir(), 'obs.jsonl');
    const seen: Record<string, any[]> = { acquire: [], release: [], contended: [], 'long-hold': [] };
    const subscribers = Object.keys(seen).map((name) => {
      const fn = (message: unknown): void => {
        if ((message as { target: string }).target === target) seen[name].push(message);
      };
      diagnostics.subscribe(`session-flock:${name}`, fn);
      return () => diagnostics.unsubscribe(`session-flock:${name}`, fn);
    });
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => void warnings.push(w);
    process.on('warning', onWarning);
    try {
      const h = await holder(target);
      const pending = acquire(target, { owner: 'obs', timeoutMs: 30_000, maxHoldMs: 50 });
      await eventually(() => seen.contended.length > 0, 10_000, 'a contended event');
      h.child.kill('SIGKILL');
      const lock = await pending;
      await eventually(() => seen['long-hold'].length > 0, 10_000, 'a long-hold event');
      lock.releaseSync();
      expect(seen.contended[0]).toEqual({ target, lockPath: `${target}.lock`, mode: 'exclusive', owner: 'obs' });
      expect(Object.keys(seen.acquire[0]).sort()).toEqual(['lockPath', 'mode', 'owner', 'target', 'waitedMs']);
      expect(seen.acquire[0].owner).toBe('obs');
      expect(Object.keys(seen['long-hold'][0]).sort()).toEqual(['acquiredAt', 'heldForMs', 'lockPath', 'maxHoldMs', 'mode', 'owner', 'target']);
      expect(seen['long-hold'][0].acquiredAt).toContain('inspect.test.ts');
      expect(Object.keys(seen.release[0]).sort()).toEqual(['heldMs', 'lockPath', 'mode', 'owner', 'target']);
      await eventually(() => warnings.some((w) => (w as NodeJS.ErrnoException).code === 'SESSION_FLOCK_LONG_HOLD'), 10_000, 'the long-hold warning');
      const warning = warnings.find((w) => (w as NodeJS.ErrnoException).code === 'SESSION_FLOCK_LONG_HOLD')!;
      expect(warning.name).toBe('SessionFlockLongHoldWarning');
      expect(warning.message).toMatch(/has been held for \d+ms, over maxHoldMs 50; it is not taken away\. Acquired at:/);
    } finally {
      process.off('warning', onWarning);
      for (const unsubscribe of subscribers) unsubscribe();
    }
  });

  it('a hold released the moment its acquirer resumes still publishes acquire before release', async () => {
    // The acquire event waits until the acquirer has resumed (off the handoff's critical
    // path); a release that comes first publishes it then, so the order always holds.
    const target = path.join(tempDir(), 'order.jsonl');
    const events: string[] = [];
    const names = ['acquire', 'release'];
    const subscribers = names.map((name) => {
      const fn = (message: unknown): void => {
        if ((message as { target: string }).target === target) events.push(`${name}:${(message as { owner: string }).owner}`);
      };
      diagnostics.subscribe(`session-flock:${name}`, fn);
      return () => diagnostics.unsubscribe(`session-flock:${name}`, fn);
    });
    try {
      const first = await acquire(target, { owner: 'first', record: false });
      const pending = acquire(target, { owner: 'second', record: false, maxHoldMs: 1 });
      // Registered before the grant, so it runs before anything the grant deferred.
      const releasedAtResume = pending.then((lock) => lock.releaseSync());
      first.releaseSync();
      await releasedAtResume;
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(events).toEqual(['acquire:first', 'release:first', 'acquire:second', 'release:second']);
    } finally {
      for (const unsubscribe of subscribers) unsubscribe();
    }
  });

  it('publishes leak and warns when a held SessionLock is garbage-collected', () => {
    const target = path.join(tempDir(), 'leak.jsonl');
    const script = `
      const dc = require('node:diagnostics_channel');
      const { acquire } = require(${JSON.stringify(dist)});
      dc.subscribe('session-flock:leak', (m) => console.log('LEAK ' + JSON.stringify(Object.keys(m).sort())));
      process.on('warning', (w) => console.log('WARNING ' + w.code + ' ' + w.message.split('\\n')[0]));
      (async function leaky() { await acquire(process.argv[1]); })().then(() => {
        setTimeout(() => { globalThis.gc(); setTimeout(() => {}, 200); }, 10);
      });`;
    const result = spawnSync(process.execPath, ['--expose-gc', '-e', script, target], { encoding: 'utf8', timeout: 30_000 });
    expect(result.stderr).toContain('[SESSION_FLOCK_LEAK] SessionFlockLeakWarning'); // printed as well
    expect(result.stdout).toContain('LEAK ["acquiredAt","heldForMs","lockPath","mode","owner","target"]');
    expect(result.stdout).toMatch(/WARNING SESSION_FLOCK_LEAK session-flock: a SessionLock for .*leak\.jsonl\.lock was garbage-collected while held, so it was released/);
  });
});

describe('network filesystems', () => {
  it('names NFS, SMB/CIFS and 9p by their statfs type, and no local filesystem', async () => {
    const { networkFilesystemOf } = await import('../dist/cjs/file/filesystem.js');
    expect([0x6969, 0xff534d42, 0xfe534d42, 0x517b, 0x01021997].map(networkFilesystemOf)).toEqual(['nfs', 'cifs', 'smb2', 'smb', 'v9fs (9p)']);
    expect([0xef53, 0x01021994, 0x58465342, 0x794c7630, 0x65735546, 0x12345678].map(networkFilesystemOf)).toEqual([null, null, null, null, null, null]);
    // A statfs type is unsigned; Node may hand the CIFS magic over as a negative 32-bit int.
    expect(networkFilesystemOf(0xff534d42 | 0)).toBe('cifs');
  });

  it('inspect says nothing of a network filesystem for a lock on a local one', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const lock = await acquire(target);
    try {
      const status = await inspect(target);
      expect(status.state).toBe('held');
      expect(status.notes.filter((n) => n.includes('network filesystem'))).toEqual([]);
    } finally {
      await lock.release();
    }
  });
});
