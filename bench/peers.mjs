// The comparison set. Each peer: lock(target) → handle, unlock(handle), each call
// doing the whole job (open + lock / unlock + close), as a session writer would.
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as pidfile from './pidfile-lock.mjs';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = process.env.SFLOCK_DIST ?? path.join(root, 'dist', 'cjs', 'index.js');

/** session-flock with `options` (undefined: the defaults, as most callers use it). */
function sessionFlock(options, from = dist) {
  return () => {
    const { acquire } = require(from);
    return {
      lock: options === undefined ? (target) => acquire(target) : (target) => acquire(target, options),
      unlock: (lock) => lock.release(),
    };
  };
}

const openLockFile = (target) => fs.openSync(`${target}.lock`, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_CLOEXEC, 0o600);

export const peers = {
  'session-flock': {
    label: 'session-flock (default options)',
    note: 'acquire(target): the holder record on, 10 s timeout',
    kind: 'kernel',
    load: sessionFlock(undefined),
  },
  'session-flock-norecord': {
    label: 'session-flock (record off)',
    note: 'record: false',
    kind: 'kernel',
    load: sessionFlock({ record: false }),
  },
  'fs-ext': {
    label: 'fs-ext flock',
    note: 'flock(fd, "ex") on the libuv threadpool',
    kind: 'kernel',
    load: () => {
      const fsExt = require('fs-ext');
      const flock = promisify(fsExt.flock);
      return {
        lock: async (target) => {
          const fd = openLockFile(target);
          await flock(fd, 'ex');
          return fd;
        },
        unlock: async (fd) => {
          fsExt.flockSync(fd, 'un');
          fs.closeSync(fd);
        },
      };
    },
  },
  'fs-native-extensions': {
    label: 'fs-native-extensions',
    note: 'waitForLock: OFD fcntl lock on Linux (does not exclude flock users)',
    kind: 'kernel',
    load: () => {
      const fsx = require('fs-native-extensions');
      return {
        lock: async (target) => {
          const fd = openLockFile(target);
          await fsx.waitForLock(fd);
          return fd;
        },
        unlock: async (fd) => {
          fsx.unlock(fd);
          fs.closeSync(fd);
        },
      };
    },
  },
  'proper-lockfile': {
    label: 'proper-lockfile',
    note: 'mkdir lock; stale 10 s (default); retries every 50 ms',
    kind: 'polling',
    load: () => {
      const plf = require('proper-lockfile');
      const options = { stale: 10_000, realpath: false, retries: { forever: true, factor: 1, minTimeout: 50, maxTimeout: 50 } };
      return {
        lock: (target) => plf.lock(target, options),
        unlock: (release) => release(),
      };
    },
  },
  lockfile: {
    label: 'lockfile',
    note: 'O_EXCL file; poll 100 ms (default); stale 30 min',
    kind: 'polling',
    load: () => {
      const lf = require('lockfile');
      const lock = promisify(lf.lock);
      const unlock = promisify(lf.unlock);
      const options = { wait: 600_000, pollPeriod: 100, stale: 30 * 60 * 1000 };
      return {
        lock: async (target) => {
          await lock(`${target}.lock`, { ...options });
          return `${target}.lock`;
        },
        unlock: (p) => unlock(p),
      };
    },
  },
  'session-flock-postgres': {
    label: 'session-flock/postgres',
    note: 'PostgreSQL advisory lock over TCP to 127.0.0.1 (a throwaway local cluster unless SESSION_FLOCK_TEST_PG_URL names one)',
    kind: 'kernel',
    load: () => {
      const url = process.env.SESSION_FLOCK_BENCH_PG_URL;
      if (!url) throw new Error('no PostgreSQL server for the bench');
      const { createPostgresLocks } = require(path.join(path.dirname(dist), 'postgres', 'index.js'));
      let locks = null;
      const options = { timeoutMs: 600_000 };
      return {
        lock: (target) => (locks ??= createPostgresLocks({ connectionString: url, namespace: 'bench' })).acquire(target, options),
        unlock: (lock) => lock.release(),
      };
    },
  },
  pidfile: {
    label: 'O_EXCL pid file',
    note: '{pid, createdAt}; poll 50 ms; stale 30 min (bench/pidfile-lock.mjs)',
    kind: 'polling',
    load: () => ({
      lock: (target) => pidfile.lock(`${target}.lock`, { timeoutMs: 600_000 }),
      unlock: (release) => release(),
    }),
  },
};

// SFLOCK_BASE_DIST=<another build's dist/cjs/index.js> adds that build as two more peers, so
// that a change is measured against its base in one interleaved run (A/B on a busy machine).
const base = process.env.SFLOCK_BASE_DIST;
if (base) {
  peers['session-flock@base'] = { label: 'session-flock (default options), base build', note: `acquire(target); ${base}`, kind: 'kernel', load: sessionFlock(undefined, base) };
  peers['session-flock-norecord@base'] = { label: 'session-flock (record off), base build', note: `record: false; ${base}`, kind: 'kernel', load: sessionFlock({ record: false }, base) };
}

export function available(name) {
  try {
    peers[name].load();
    return true;
  } catch {
    return false;
  }
}
