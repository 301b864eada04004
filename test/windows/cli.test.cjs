'use strict';
// `session-flock run` on Windows (node.exe under Wine): flock(1)'s options and exit codes,
// the -c form through cmd.exe, and the lock held by run itself while the command runs.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { root, startHolder, tempDir, nodeCommand } = require('./helpers.cjs');

const cli = path.join(root, 'dist', 'cjs', 'cli', 'main.js');
const dist = path.join(root, 'dist', 'cjs', 'index.js');
const dir = tempDir();
let n = 0;
const target = () => path.join(dir, `c${++n}.jsonl`);
const holders = [];

test.after(async () => {
  for (const h of holders) await h.close().catch(() => {});
  fs.rmSync(dir, { recursive: true, force: true });
});

function run(args) {
  const [cmd, prefix] = nodeCommand([cli, 'run']);
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...prefix, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('run: the command status, -c through the shell, 69 for a command that cannot run, 64 for bad usage', async () => {
  const t = target();
  assert.equal((await run([t, process.execPath, '-e', 'process.exit(7)'])).code, 7);
  assert.equal((await run([t, '-c', 'exit 3'])).code, 3);
  const missing = await run([t, path.join(dir, 'no-such-command.exe')]);
  assert.equal(missing.code, 69, missing.stderr);
  assert.match(missing.stderr, /^session-flock: failed to execute /);
  const usage = await run(['-c', 'exit 3', t]);
  assert.equal(usage.code, 64);
  assert.equal(usage.stderr.trimEnd().split(/\r?\n/).length, 2);
});

test('run: a conflict exits with the conflict code; while the command runs, run holds the lock', async () => {
  const t = target();
  const holder = await startHolder();
  holders.push(holder);
  await holder.call({ op: 'acquire', target: t });
  const quick = [process.execPath, '-e', ''];
  assert.equal((await run(['-n', t, ...quick])).code, 1);
  assert.equal((await run(['-n', '-E', '9', t, ...quick])).code, 9);
  assert.equal((await run(['-w', '0.3', t, ...quick])).code, 1);
  await holder.call({ op: 'release' });
  // The command is another process: its own attempt (a new handle) conflicts with run's.
  const probe = `process.exit(require(${JSON.stringify(dist)}).tryAcquireSync(${JSON.stringify(t)}) === null ? 5 : 6)`;
  assert.equal((await run([t, process.execPath, '-e', probe])).code, 5);
  const after = await holder.call({ op: 'try', target: t });
  assert.equal(after.got, true, 'the lock was not free after run exited');
});
