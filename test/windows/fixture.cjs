'use strict';
// A child process that holds locks through the public API on command, over IPC.
// Used by test/windows/*.test.cjs (Windows node.exe under Wine) and test/arm64.
const { spawn, execFileSync } = require('node:child_process');
const path = require('node:path');
const lib = require(path.resolve(__dirname, '..', '..', 'dist', 'cjs', 'index.js'));

const holds = [];
let pending = null; // an acquire started by 'start-acquire', collected by 'granted'
const now = () => process.hrtime.bigint(); // QueryPerformanceCounter: one clock for all processes

async function handle(msg) {
  switch (msg.op) {
    case 'acquire': {
      const lock = await lib.acquire(msg.target, { shared: !!msg.shared, owner: msg.owner, timeoutMs: msg.timeoutMs ?? 10_000 });
      holds.push(lock);
      return { held: lock.held, lockPath: lock.lockPath };
    }
    case 'try': {
      const lock = await lib.tryAcquire(msg.target, { shared: !!msg.shared });
      if (lock === null) return { got: false };
      if (msg.keep) holds.push(lock);
      else await lock.release();
      return { got: true };
    }
    case 'start-acquire': {
      // Starts a wait and answers at once; 'granted' answers when it is granted.
      pending = lib.acquire(msg.target, { shared: !!msg.shared, record: false, timeoutMs: msg.timeoutMs ?? 10_000 }).then((lock) => {
        const grantedAt = now();
        holds.push(lock);
        return grantedAt;
      });
      pending.catch(() => {});
      return {};
    }
    case 'granted':
      return { grantedAt: String(await pending) };
    case 'release-timed': {
      // The moment the holder lets go, on the clock 'granted' uses.
      const releasedAt = now();
      for (const lock of holds.splice(0)) lock.releaseSync();
      return { releasedAt: String(releasedAt) };
    }
    case 'release': {
      const n = holds.length;
      for (const lock of holds.splice(0)) await lock.release();
      return { released: n };
    }
    case 'spawn-sleeper': {
      // A grandchild that outlives us; ignore its stdio so that it shares nothing on purpose.
      const g = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore', detached: false });
      return { pid: g.pid };
    }
    case 'probe': {
      // A child spawned while we hold the lock: how many handles to the lock file does it have?
      const out = execFileSync(msg.probe, [msg.name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      return { count: Number(out.trim()) };
    }
    case 'held':
      return { held: lib.heldLocks().length };
    case 'exit':
      setImmediate(() => process.exit(0));
      return {};
    default:
      throw new Error(`unknown op ${msg.op}`);
  }
}

process.on('message', (msg) => {
  handle(msg).then(
    (result) => process.send({ id: msg.id, ok: true, ...result }),
    (error) => process.send({ id: msg.id, ok: false, name: error.name, code: error.code, message: String(error.message) }),
  );
});
process.send({ ready: true, pid: process.pid });
