// The addon loads on first use: a copy of the package without any binary imports
// cleanly (CJS and ESM), and each call that needs the binary fails with
// ERR_SESSION_FLOCK_NO_BINDING naming every path tried, until a binary appears.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fork } from 'node:child_process';
import { fixture, root, runNode, tempDir } from './helpers';

// The binary this checkout loads (a build or a prebuild), as node-gyp-build finds it.
const builtAddon: string = require('node-gyp-build').resolve(root);

/** The package as installed without any binary: dist/, package.json and node-gyp-build. */
function packageWithoutBinary(): string {
  const pkg = path.join(tempDir(), 'session-flock');
  fs.mkdirSync(path.join(pkg, 'node_modules'), { recursive: true });
  fs.cpSync(path.join(root, 'dist'), path.join(pkg, 'dist'), { recursive: true });
  fs.copyFileSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'));
  fs.symlinkSync(path.join(root, 'node_modules', 'node-gyp-build'), path.join(pkg, 'node_modules', 'node-gyp-build'), 'junction');
  return pkg;
}

describe('no binary', () => {
  it('ESM and CJS imports succeed; the first use rejects or throws with the code and the paths tried', async () => {
    const pkg = packageWithoutBinary();
    const target = path.join(tempDir(), 'a.jsonl');
    const script = `
      const results = {};
      let m;
      try {
        m = await import(${JSON.stringify(path.join(pkg, 'dist', 'esm', 'index.mjs'))});
        results.imported = typeof m.acquire;
      } catch (error) {
        results.imported = error.message;
      }
      const { createRequire } = await import('node:module');
      results.required = typeof createRequire(import.meta.url)(${JSON.stringify(path.join(pkg, 'dist', 'cjs', 'index.js'))}).tryAcquireSync;
      const failure = (error) => ({ code: error.code, message: error.message });
      results.acquire = await m.acquire(${JSON.stringify(target)}).then(() => 'acquired', failure);
      results.withLock = await m.withLock(${JSON.stringify(target)}, () => 'ran').then((v) => v, failure);
      try {
        results.sync = m.tryAcquireSync(${JSON.stringify(target)});
      } catch (error) {
        results.sync = failure(error);
      }
      process.stdout.write(JSON.stringify(results));`;
    const result = await runNode(['--input-type=module', '-e', script]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const results = JSON.parse(result.stdout);
    expect(results.imported).toBe('function');
    expect(results.required).toBe('function');
    for (const call of ['acquire', 'withLock', 'sync']) {
      expect(results[call].code, call).toBe('ERR_SESSION_FLOCK_NO_BINDING');
    }
    const { message } = results.acquire;
    const tried = message.slice(message.indexOf('Paths tried:\n') + 'Paths tried:\n'.length).split('\n').filter((l: string) => l.startsWith('  - '));
    expect(tried.map((l: string) => l.slice(4))).toEqual([
      path.join(pkg, 'build', 'Release', 'session_flock.node'),
      path.join(pkg, 'build', 'Debug', 'session_flock.node'),
      `${path.join(pkg, 'prebuilds', `${process.platform}-${process.arch}`)}${path.sep} (no such folder)`,
      `${path.join(path.dirname(process.execPath), 'prebuilds', `${process.platform}-${process.arch}`)}${path.sep} (no such folder)`,
    ]);
    expect(fs.existsSync(`${target}.lock`)).toBe(false);
  });

  it('the CLI prints its help without a binary; run fails with the paths tried and exit 71', async () => {
    const pkg = packageWithoutBinary();
    const cli = path.join(pkg, 'dist', 'cjs', 'cli', 'main.js');
    const help = await runNode([cli, '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('session-flock run [options] <target>');
    const run = await runNode([cli, 'run', path.join(tempDir(), 'r.jsonl'), process.execPath, '-e', '']);
    expect(run.code).toBe(71);
    // The CLI names itself once, before the library's message.
    expect(run.stderr).toMatch(/^session-flock: could not load the session-flock native addon for platform=/);
    expect(run.stderr).not.toContain('session-flock: session-flock:');
  });

  it.runIf(process.platform === 'linux')('status reads the kernel without a binary', async () => {
    const pkg = packageWithoutBinary();
    const dir = tempDir();
    const target = path.join(dir, 's.jsonl');
    const holder = fork(fixture('inspect-holder.cjs'), [target, JSON.stringify({ record: false })], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    try {
      const pid = await new Promise<number>((resolve, reject) => {
        holder.on('message', (msg: { ready?: boolean; pid: number }) => msg.ready && resolve(msg.pid));
        holder.once('exit', (code) => reject(new Error(`holder exited with ${code}`)));
      });
      const status = await runNode([path.join(pkg, 'dist', 'cjs', 'cli', 'main.js'), 'status', '--json', dir]);
      expect(status.stderr).toBe('');
      expect(status.code).toBe(0);
      const [lock] = JSON.parse(status.stdout);
      expect(lock).toMatchObject({ lockPath: `${target}.lock`, state: 'held', mode: 'exclusive' });
      expect(lock.holders.map((h: { pid: number }) => h.pid)).toContain(pid);
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('a binary that appears later is loaded by the next call', async () => {
    const pkg = packageWithoutBinary();
    const target = path.join(tempDir(), 'b.jsonl');
    const script = `
      const fs = require('node:fs');
      const lib = require(${JSON.stringify(path.join(pkg, 'dist', 'cjs', 'index.js'))});
      const first = (() => { try { lib.tryAcquireSync(${JSON.stringify(target)}); return 'loaded'; } catch (e) { return e.code; } })();
      fs.mkdirSync(${JSON.stringify(path.join(pkg, 'build', 'Release'))}, { recursive: true });
      fs.copyFileSync(${JSON.stringify(builtAddon)}, ${JSON.stringify(path.join(pkg, 'build', 'Release', 'session_flock.node'))});
      const lock = lib.tryAcquireSync(${JSON.stringify(target)});
      const again = lib.tryAcquireSync(${JSON.stringify(target)}, { reentrant: false });
      process.stdout.write(JSON.stringify({ first, held: lock.held, again }));
      lock.releaseSync();`;
    const result = await runNode(['-e', script]);
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual({ first: 'ERR_SESSION_FLOCK_NO_BINDING', held: true, again: null });
  });
});
