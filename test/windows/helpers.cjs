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

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

module.exports = { lib, root, startHolder, tempDir, sleep, nodeCommand };
