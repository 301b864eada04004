'use strict';
// Shared by the Windows (Wine) and arm64 (qemu) suites: child fixtures over IPC.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const lib = require(path.join(root, 'dist', 'cjs', 'index.js'));
const fixture = path.join(__dirname, 'fixture.cjs');

// Under qemu-user there is no binfmt_misc: children start through a wrapper.
function nodeCommand(args) {
  const wrapper = process.env.SF_TEST_NODE_WRAPPER;
  if (wrapper) {
    const parts = JSON.parse(wrapper);
    return [parts[0], [...parts.slice(1), ...args]];
  }
  return [process.execPath, args];
}

async function startHolder() {
  const [cmd, args] = nodeCommand([fixture]);
  const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const pending = new Map();
  let nextId = 1;
  let exited = false;
  const exit = new Promise((resolve) => child.once('exit', (code, signal) => { exited = true; resolve({ code, signal }); }));
  const ready = new Promise((resolve, reject) => {
    child.once('error', reject);
    exit.then(({ code, signal }) => {
      reject(new Error(`fixture exited early (${code ?? signal})`));
      for (const { reject: rj } of pending.values()) rj(new Error(`fixture exited (${code ?? signal})`));
    });
    child.on('message', (msg) => {
      if (msg.ready) return resolve();
      const p = pending.get(msg.id);
      if (!p) return;
      pending.delete(msg.id);
      if (msg.ok) p.resolve(msg);
      else p.reject(Object.assign(new Error(msg.message), { name: msg.name, code: msg.code }));
    });
  });
  await ready;
  return {
    child,
    exit,
    get exited() { return exited; },
    call(msg) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ ...msg, id });
      });
    },
    async kill() {
      if (!exited) child.kill();
      return exit;
    },
    async close() {
      if (exited) return;
      child.send({ op: 'exit', id: 0 });
      const t = setTimeout(() => child.kill(), 3000);
      await exit;
      clearTimeout(t);
    },
  };
}

function tempDir() {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'sf-win-'));
}

/**
 * What a suite file shares: fresh targets in its own temp folder, and holder
 * children that are closed (and the folder removed) after the file's tests.
 */
function suiteSetup(test, prefix) {
  const dir = tempDir();
  const holders = [];
  let n = 0;
  test.after(async () => {
    for (const h of holders) await h.close().catch(() => {});
    await lib.releaseAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    dir,
    target: () => path.join(dir, `${prefix}${++n}.jsonl`),
    async holder() {
      const h = await startHolder();
      holders.push(h);
      return h;
    },
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// The raw addon this process loaded (the same module the library uses).
const binding = require(path.join(root, 'dist', 'cjs', 'file', 'binding.js')).loadBinding();

/**
 * Resolves once this process has no kernel wait in flight. A wait given up
 * while blocked in LockFileEx goes on where the cancel cannot interrupt it
 * (always under Wine) until it is granted, and lets go of that late grant at
 * once; until then another process may still find the lock taken.
 */
async function waitsDrained(timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (binding.waitsInFlight() > 0) {
    if (Date.now() > deadline) throw new Error(`${binding.waitsInFlight()} kernel wait(s) still in flight after ${timeoutMs}ms`);
    await sleep(5);
  }
}

module.exports = { lib, root, binding, startHolder, suiteSetup, tempDir, sleep, waitsDrained, nodeCommand };
