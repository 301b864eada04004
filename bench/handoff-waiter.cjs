// One waiter process for bench/handoff-breakdown.mjs. On each line of stdin it starts a
// wait on the lock file, prints "waiting", and when granted prints "granted <ns>" (the
// monotonic clock, shared by all processes), then lets go.
//   api          session-flock acquire(), record: false   (what users call)
//   api-record   session-flock acquire(), record: true    (the default)
//   binding      the raw addon: open + waitLock            (native wait + threadsafe function only)
//   fs-ext       fs-ext flock(fd, 'ex') wrapped in a promise, with a timeout timer like ours
const fs = require('node:fs');
const path = require('node:path');
const [mode, lockPath] = process.argv.slice(2);
const root = path.join(__dirname, '..');
const lib = require(path.join(root, 'dist', 'cjs', 'index.js'));
const { binding } = require(path.join(root, 'dist', 'cjs', 'file', 'binding.js'));
const target = lockPath.replace(/\.lock$/, '');

const now = () => process.hrtime.bigint();
const say = (line) => process.stdout.write(`${line}\n`);

const waits = {
  async api(record) {
    const pending = lib.acquire(target, { record, timeoutMs: 60_000 });
    say('waiting');
    const lock = await pending;
    const t = now();
    lock.releaseSync();
    return t;
  },
  binding() {
    return new Promise((resolve) => {
      const handle = binding.open(lockPath, 0o600, true);
      binding.waitLock(handle, false, lockPath, () => {
        const t = now();
        binding.close(handle);
        resolve(t);
      });
      say('waiting');
    });
  },
  async fsExt() {
    const fsExt = require('fs-ext');
    const fd = fs.openSync(lockPath, 'r+');
    const pending = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {}, 60_000);
      fsExt.flock(fd, 'ex', (error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      });
    });
    say('waiting');
    await pending;
    const t = now();
    fs.closeSync(fd);
    return t;
  },
};

const run = { api: () => waits.api(false), 'api-record': () => waits.api(true), binding: waits.binding, 'fs-ext': waits.fsExt }[mode];
if (!run) throw new Error(`unknown mode ${mode}`);
process.stdin.on('data', async () => say(`granted ${await run()}`));
