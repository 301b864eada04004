// One waiter process for bench/handoff-breakdown.mjs. On each line of stdin it starts a
// wait on the lock file, prints "waiting", and when granted prints "granted <resumed ns>
// <callback ns>" (the monotonic clock, shared by all processes: when the awaiting code
// resumed, and when the wait's native callback began), then lets go.
//   api          session-flock acquire(), record: false   (what users call)
//   api-record   session-flock acquire(), record: true    (the default)
//   binding      the raw addon: open + waitLock            (native wait + threadsafe function only)
//   fs-ext       fs-ext flock(fd, 'ex') wrapped in a promise, with a timeout timer like ours
const fs = require('node:fs');
const path = require('node:path');
const [mode, lockPath] = process.argv.slice(2);
const root = path.join(__dirname, '..');
const lib = require(path.join(root, 'dist', 'cjs', 'index.js'));
const bindingModule = require(path.join(root, 'dist', 'cjs', 'file', 'binding.js'));
const target = lockPath.replace(/\.lock$/, '');

const now = () => process.hrtime.bigint();
const say = (line) => process.stdout.write(`${line}\n`);

// When the addon's completion callback (or fs-ext's) began: the wake-up ends there, and the
// JavaScript of the grant starts. For the api modes the addon's waitLock is wrapped to stamp it.
let callbackAt = 0n;
bindingModule.binding.errorName(0); // loads the addon: the module's `binding` is now the addon itself
const addon = bindingModule.binding;
const waitLock = addon.waitLock;
addon.waitLock = (handle, shared, file, context, done, recordFields, serial) =>
  waitLock.call(addon, handle, shared, file, context, function (...args) {
    // The second call of a grant (AFTER_GRANT) comes after the acquirer resumed: not the wake-up.
    if (args[1] !== addon.AFTER_GRANT) callbackAt = now();
    done.apply(this, args);
  }, recordFields, serial);

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
      const handle = addon.open(lockPath, 0o600, true);
      waitLock.call(addon, handle, false, lockPath, {}, (_id, code) => {
        if (code === addon.AFTER_GRANT) return;
        const t = now();
        callbackAt = t;
        addon.close(handle);
        resolve(t);
      }, null, 0);
      say('waiting');
    });
  },
  async fsExt() {
    const fsExt = require('fs-ext');
    const fd = fs.openSync(lockPath, 'r+');
    const pending = new Promise((resolve, reject) => {
      const timer = setTimeout(() => {}, 60_000);
      fsExt.flock(fd, 'ex', (error) => {
        callbackAt = now();
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
process.stdin.on('data', async () => say(`granted ${await run()} ${callbackAt}`));
