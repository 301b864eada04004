import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquire } from '../dist/cjs/index.js';
import { dist, runNode, tempDir } from './helpers';

const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('holder record on release', () => {
  it('leaves a record that is no longer its own (a later holder replaced it) in place', async () => {
    const target = path.join(tempDir(), 's.jsonl');
    const lock = await acquire(target, { owner: 'first' });
    await settle();
    const recordPath = `${lock.lockPath}.json`;
    expect(JSON.parse(fs.readFileSync(recordPath, 'utf8')).owner).toBe('first');
    // What a later holder does once it holds: its own record, renamed over this one.
    const later = JSON.stringify({ pid: 4242, owner: 'later', nonce: 'later-1' });
    fs.writeFileSync(`${recordPath}.later.tmp`, later);
    fs.renameSync(`${recordPath}.later.tmp`, recordPath);
    await lock.release();
    expect(fs.readFileSync(recordPath, 'utf8')).toBe(later);
  });

  it('lets the kernel lock go before it touches the record', async () => {
    // A child process watches every file system call the release makes on the record,
    // and at each one asks util-linux flock(1), another process, whether the lock is free.
    const target = path.join(tempDir(), 's.jsonl');
    const script = `
      const fs = require('node:fs');
      const { spawnSync } = require('node:child_process');
      const { acquire } = require(${JSON.stringify(dist)});
      const target = ${JSON.stringify(target)};
      const seen = [];
      const free = () => spawnSync('flock', ['-n', target + '.lock', 'true']).status === 0;
      (async () => {
        const lock = await acquire(target);
        await new Promise((r) => setImmediate(r));
        if (!fs.existsSync(target + '.lock.json')) throw new Error('no record written');
        // The record is touched through node:fs or through the addon (which writes and removes it).
        const addon = require(${JSON.stringify(path.join(path.dirname(dist), 'file', 'binding.js'))}).loadBinding();
        const watched = [
          [fs, ['lstatSync', 'unlinkSync', 'openSync', 'readSync', 'statSync']],
          [addon, ['removeIfSame', 'replaceFile', 'pathKey']],
        ];
        for (const [api, names] of watched) {
          for (const name of names) {
            const real = api[name];
            api[name] = function (file, ...rest) {
              if (String(file).startsWith(target + '.lock.json')) seen.push(name + ':' + (free() ? 'free' : 'held'));
              return real.call(this, file, ...rest);
            };
          }
        }
        await lock.release();
        process.stdout.write(JSON.stringify({ seen, recordLeft: fs.existsSync(target + '.lock.json') }));
      })();
    `;
    const result = await runNode(['-e', script], { timeoutMs: 30_000 });
    expect(result.stderr).toBe('');
    const { seen, recordLeft } = JSON.parse(result.stdout);
    expect(seen).toContain('removeIfSame:free');
    expect(seen.every((s: string) => s.endsWith(':free'))).toBe(true);
    expect(recordLeft).toBe(false);
  });
});
