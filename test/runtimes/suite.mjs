// The cross-process suite, run under Node, Bun or Deno from a scratch project where the
// packed package was installed the runtime's own way (scripts/test-runtimes.sh). Every case
// pits this process or a child of the same runtime against a Node process on one lock file.
// Prints one line a case, a FEATURES line (what this runtime showed, checked against the
// README table by check-readme.mjs), and "<runtime>: N passed, N failed".
//
// Environment: SF_NODE (node binary), SF_RUNTIME_ARGV (JSON argv prefix that runs a script
// under this runtime), SF_RUNTIME_GC_ARGV (the same with a GC exposed, if the runtime needs
// a flag for it), SF_WORK (an empty temporary folder).
import * as lib from 'session-flock';
import { acquire, tryAcquire, tryAcquireSync, heldLocks, releaseAll, LockTimeoutError, LockAbortedError } from 'session-flock';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync, readdirSync, readlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import diagnostics from 'node:diagnostics_channel';

const here = fileURLToPath(new URL('.', import.meta.url));
const runtime = globalThis.Bun ? 'bun' : globalThis.Deno ? 'deno' : 'node';
const version = globalThis.Bun?.version ?? globalThis.Deno?.version.deno ?? process.versions.node;
const NODE = process.env.SF_NODE ?? 'node';
const RUNTIME = JSON.parse(process.env.SF_RUNTIME_ARGV ?? JSON.stringify([process.execPath]));
const RUNTIME_GC = JSON.parse(process.env.SF_RUNTIME_GC_ARGV ?? JSON.stringify(RUNTIME));
const WORK = process.env.SF_WORK;
assert.ok(WORK, 'SF_WORK must name an empty folder');

let fileSeq = 0;
const target = (name) => {
  const dir = join(WORK, runtime, String(++fileSeq));
  mkdirSync(dir, { recursive: true });
  return join(dir, `${name}.jsonl`);
};
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const features = {};

/** Runs argv to its end; resolves {code, signal, stdout, stderr}. */
function run(argv, options = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd: here, stdio: ['ignore', 'pipe', 'pipe'], ...options });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** A holder.mjs child of the given argv prefix; call(op) sends a request and awaits its answer. */
async function holder(prefix) {
  const child = spawn(prefix[0], [...prefix.slice(1), join(here, 'holder.mjs')], { cwd: here, stdio: ['pipe', 'pipe', 'pipe'] });
  const waiting = new Map();
  let stderr = '';
  let buffered = '';
  let seq = 0;
  let onReady;
  const ready = new Promise((resolve, reject) => {
    onReady = resolve;
    child.on('error', reject);
    child.on('close', (code, signal) => reject(new Error(`holder exited (${code ?? signal}) before it was ready: ${stderr}`)));
  });
  const exited = new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.on('data', (d) => {
    buffered += d;
    for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
      const msg = JSON.parse(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      if (msg.ready) onReady(msg);
      else waiting.get(msg.seq)?.(msg);
    }
  });
  exited.then(() => {
    for (const resolve of waiting.values()) resolve({ ok: false, error: { message: `holder exited: ${stderr}` } });
  });
  const { pid } = await ready;
  return {
    pid,
    exited,
    call(op, fields = {}) {
      const msg = { seq: ++seq, op, ...fields };
      return new Promise((resolve) => {
        waiting.set(msg.seq, resolve);
        child.stdin.write(`${JSON.stringify(msg)}\n`);
      });
    },
    async must(op, fields) {
      const answer = await this.call(op, fields);
      if (!answer.ok) throw new Error(`holder ${op} failed: ${answer.error.message}`);
      return answer;
    },
    kill(signal) {
      child.kill(signal);
      return exited;
    },
    async close() {
      child.stdin.end();
      return exited;
    },
  };
}

/** Descriptors of this process open on `path` (Linux /proc; an empty list elsewhere). */
function descriptorsOn(path) {
  let names;
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return [];
  }
  return names.filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false;
    }
  });
}

/** Runs fn with a Node holder.mjs child, closed afterwards whatever fn did. */
async function withNode(fn) {
  const node = await holder([NODE]);
  try {
    return await fn(node);
  } finally {
    await node.close();
  }
}

/** Whether a Node process can take the lock now (one attempt). */
function nodeCanTake(file, options = {}) {
  return withNode(async (node) => (await node.must('try', { target: file, options: { record: false, ...options } })).id !== null);
}

const cases = [];
const test = (name, fn) => cases.push({ name, fn });

test('exclusion: counter incremented by this runtime and Node (ESM and CJS) loses no update', async () => {
  const counter = target('counter');
  writeFileSync(counter, '0');
  const iterations = 40;
  const argvs = [
    [...RUNTIME, join(here, 'counter.mjs')],
    [...RUNTIME, join(here, 'counter.cjs')],
    [NODE, join(here, 'counter.mjs')],
    [NODE, join(here, 'counter.cjs')],
  ];
  const results = await Promise.all(argvs.map((argv) => run([...argv, counter, String(iterations)])));
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  assert.equal(Number(readFileSync(counter, 'utf8')), argvs.length * iterations);
});

test('CJS require by package name gives the same module as the ESM import', async () => {
  const require = createRequire(join(here, 'suite.mjs'));
  const cjs = require('session-flock');
  assert.equal(cjs.acquire, lib.acquire, 'one module instance for ESM and CJS');
  assert.equal(cjs.LockTimeoutError, LockTimeoutError);
  features.cjsRequire = 'yes';
});

test('a SIGKILLed holder of this runtime frees the lock for a waiter at once', async () => {
  const file = target('killed');
  const doomed = await holder(RUNTIME);
  await doomed.must('acquire', { target: file, options: { owner: 'doomed' } });
  assert.equal(tryAcquireSync(file, { record: false }), null, 'held by the child');
  const waiting = acquire(file, { timeoutMs: 30_000 });
  await sleep(50); // let the wait reach the kernel; the result does not depend on it
  const { signal } = await doomed.kill('SIGKILL');
  assert.equal(signal, 'SIGKILL');
  const lock = await waiting;
  assert.equal(lock.held, true);
  await lock.release();
});

test('timeout names the Node holder (pid and owner)', async () => {
  const file = target('timeout');
  await withNode(async (node) => {
    await node.must('acquire', { target: file, options: { owner: 'node-holder' } });
    const error = await acquire(file, { timeoutMs: 300 }).then(() => null, (e) => e);
    assert.ok(error instanceof LockTimeoutError, `got ${error}`);
    assert.equal(error.code, 'ELOCKTIMEOUT');
    assert.equal(error.holder?.pid, node.pid);
    assert.equal(error.holder?.owner, 'node-holder');
    assert.match(error.message, new RegExp(`held by pid ${node.pid}\\b.*owner node-holder`));
    assert.equal(heldLocks().length, 0);
  });
});

test('abort: an aborted wait rejects with LockAbortedError and leaves nothing held', async () => {
  const file = target('abort');
  await withNode(async (node) => {
    const held = await node.must('acquire', { target: file });
    const controller = new AbortController();
    const waiting = acquire(file, { signal: controller.signal, timeoutMs: Infinity });
    setTimeout(() => controller.abort(), 100);
    const error = await waiting.then(() => null, (e) => e);
    assert.ok(error instanceof LockAbortedError, `got ${error}`);
    assert.equal(error.code, 'ABORT_ERR');
    const early = await acquire(file, { signal: AbortSignal.abort() }).then(() => null, (e) => e);
    assert.ok(early instanceof LockAbortedError, 'an already-aborted signal rejects at once');
    assert.equal(heldLocks().length, 0);
    await node.must('release', { id: held.id });
    // The abandoned kernel wait must not have taken the lock when the holder let go.
    const again = await node.must('try', { target: file });
    assert.notEqual(again.id, null, 'Node can take the lock again');
  });
});

test('shared vs exclusive against a Node process', async () => {
  const file = target('modes');
  await withNode(async (node) => {
    const shared = await node.must('acquire', { target: file, options: { shared: true } });
    const reader = tryAcquireSync(file, { shared: true });
    assert.notEqual(reader, null, 'shared with a shared holder');
    reader.releaseSync();
    assert.equal(await tryAcquire(file), null, 'no exclusive while Node reads');
    await node.must('release', { id: shared.id });
    const writer = await acquire(file, { timeoutMs: 10_000 });
    assert.equal((await node.must('try', { target: file, options: { shared: true } })).id, null, 'Node cannot read while this runtime writes');
    await writer.release();
    assert.notEqual((await node.must('try', { target: file, options: { shared: true } })).id, null);
  });
});

test('releaseAll closes every hold; the dead handles cannot touch a later holder', async () => {
  const files = [target('all-a'), target('all-b'), target('all-c')];
  const locks = [await acquire(files[0]), await acquire(files[1]), await acquire(files[2], { shared: true })];
  assert.equal(await releaseAll(), 3);
  assert.deepEqual(locks.map((l) => l.held), [false, false, false]);
  assert.equal(heldLocks().length, 0);
  await withNode(async (node) => {
    for (const file of files) assert.notEqual((await node.must('try', { target: file })).id, null, `${file} free for Node`);
    await locks[0].release(); // a no-op: must not unlock Node's hold
    locks[1].releaseSync();
    assert.equal(tryAcquireSync(files[0], { record: false }), null, 'Node still holds it');
    assert.equal(tryAcquireSync(files[1], { record: false }), null, 'Node still holds it');
  });
});

test('process.exit while a kernel wait is pending exits at once with its code', async () => {
  const file = target('exit-waiting');
  await withNode(async (node) => {
    await node.must('acquire', { target: file });
    const r = await run([...RUNTIME, join(here, 'exit-while-waiting.mjs'), file]);
    assert.deepEqual({ code: r.code, signal: r.signal, stdout: r.stdout }, { code: 3, signal: null, stdout: '' }, r.stderr);
  });
});

let Worker = null;
try {
  ({ Worker } = await import('node:worker_threads'));
} catch {
  // no workers in this runtime: the worker cases report it and skip
}

async function terminatedWorkerRound(file, mode) {
  const before = descriptorsOn(`${file}.lock`).length;
  const worker = new Worker(new URL('./worker-lock.mjs', import.meta.url), { workerData: { target: file, mode } });
  const said = await new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  assert.equal(said, mode === 'wait' ? 'waiting' : 'held');
  if (mode === 'hold') assert.equal(await nodeCanTake(file), false, 'the worker holds it');
  await sleep(20);
  await worker.terminate();
  return before;
}

test('a worker terminated while holding releases its lock (env cleanup hook)', async () => {
  if (Worker === null) return skip('no node:worker_threads');
  const file = target('worker-hold');
  for (let round = 0; round < 3; round++) {
    const before = await terminatedWorkerRound(file, 'hold');
    // The worker's env teardown closes its descriptor: free at once, nothing leaked.
    assert.equal(await nodeCanTake(file), true, `round ${round}: free once the worker is gone`);
    assert.equal(descriptorsOn(`${file}.lock`).length, before, `round ${round}: no descriptor left open`);
  }
  features.envCleanupHook = 'yes';
});

test('a worker terminated mid-wait never takes the lock later', async () => {
  if (Worker === null) return skip('no node:worker_threads');
  const file = target('worker-wait');
  for (let round = 0; round < 3; round++) {
    const lock = await acquire(file);
    await terminatedWorkerRound(file, 'wait');
    lock.releaseSync();
    // Its wait thread may still be blocked in the kernel and win the lock: it must drop it.
    let free = false;
    for (let i = 0; i < 250 && !free; i++) {
      free = await nodeCanTake(file);
      if (!free) await sleep(20);
    }
    assert.equal(free, true, `round ${round}: the late grant was not dropped`);
  }
  features.workers = 'yes';
});

test('a SessionLock dropped while held is released by GC with a warning naming the acquire', async () => {
  const file = target('leak');
  const r = await run([...RUNTIME_GC, join(here, 'gc-leak.mjs'), file]);
  assert.equal(r.code, 0, r.stderr);
  const result = JSON.parse(r.stdout.trim().split('\n').pop());
  if (!result.gc) return skip('the runtime exposes no GC');
  assert.equal(result.whileReferenced, 'held');
  assert.equal(result.afterGc, 'free', `after ${result.rounds} GC rounds`);
  const leak = result.warnings.find((w) => w.code === 'SESSION_FLOCK_LEAK');
  assert.ok(leak, `warnings: ${JSON.stringify(result.warnings)}`);
  assert.match(leak.message, /garbage-collected while held/);
  assert.match(leak.message, /at leak \(/, 'names where it was acquired');
  assert.equal(await nodeCanTake(file), true);
  console.log(`# ${runtime}: the leak warning came after ${result.rounds} forced GC round(s)`);
  features.finalizationRegistry = 'yes';
});

test('process.emitWarning: a long hold reaches process.on("warning")', async () => {
  const file = target('long-hold');
  const warnings = [];
  const listener = (w) => warnings.push(w);
  process.on('warning', listener);
  try {
    const lock = await acquire(file, { maxHoldMs: 50 });
    for (let i = 0; i < 100 && warnings.length === 0; i++) await sleep(20);
    await lock.release();
  } finally {
    process.off('warning', listener);
  }
  const longHold = warnings.find((w) => w.code === 'SESSION_FLOCK_LONG_HOLD');
  assert.ok(longHold, `warnings: ${warnings.map((w) => w.code)}`);
  assert.equal(longHold.name, 'SessionFlockLongHoldWarning');
  features.emitWarning = 'yes';
});

test('diagnostics_channel: acquire, contended and release are published', async () => {
  const file = target('channels');
  const seen = [];
  const names = ['acquire', 'contended', 'release'];
  const subscribers = names.map((name) => {
    const fn = (message) => message.lockPath === `${file}.lock` && seen.push(name);
    diagnostics.subscribe(`session-flock:${name}`, fn);
    return fn;
  });
  try {
    await withNode(async (node) => {
      const held = await node.must('acquire', { target: file });
      const waiting = acquire(file, { timeoutMs: 10_000 });
      await sleep(50);
      await node.must('release', { id: held.id });
      await (await waiting).release();
    });
  } finally {
    names.forEach((name, i) => diagnostics.unsubscribe(`session-flock:${name}`, subscribers[i]));
  }
  for (const name of names) assert.ok(seen.includes(name), `saw ${seen}`);
  features.diagnosticsChannel = 'yes';
});

test('NODE_DEBUG=session-flock logs acquire and release', async () => {
  const counter = target('debug');
  writeFileSync(counter, '0');
  const r = await run([...RUNTIME, join(here, 'counter.mjs'), counter, '1'], { env: { ...process.env, NODE_DEBUG: 'session-flock' } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /SESSION-FLOCK \d+: acquired .*debug\.jsonl\.lock \(exclusive\)/);
  assert.match(r.stderr, /SESSION-FLOCK \d+: released .*debug\.jsonl\.lock/);
  features.nodeDebug = 'yes';
});

test("the CLI's status, run by this runtime, shows the Node holder", async () => {
  const file = target('cli');
  const cli =
    runtime === 'bun' ? [process.execPath, 'x', '--bun', 'session-flock']
    : runtime === 'deno' ? [...RUNTIME, 'npm:session-flock']
    : [NODE, join(here, 'node_modules', '.bin', 'session-flock')];
  await withNode(async (node) => {
    await node.must('acquire', { target: file, options: { owner: 'cli-holder' } });
    const json = await run([...cli, 'status', '--json', file]);
    assert.equal(json.code, 0, json.stderr);
    const [status] = JSON.parse(json.stdout);
    assert.equal(status.state, 'held');
    assert.equal(status.holders[0]?.pid, node.pid);
    assert.equal(status.owner, 'cli-holder');
    const text = await run([...cli, 'status', file]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`held\\s+exclusive\\s+${node.pid}\\s+cli-holder`));
  });
  const free = await run([...cli, 'status', '--json', file]);
  assert.equal(JSON.parse(free.stdout)[0].state, 'free');
});

if (runtime === 'deno') {
  const denoRun = [process.execPath, 'run', '--cached-only', '--no-prompt'];
  test('Deno with the documented permissions (no -A) works', async () => {
    const counter = target('deno-perms');
    writeFileSync(counter, '0');
    const flags = ['--allow-read', '--allow-write', '--allow-ffi', '--allow-env', '--allow-sys'];
    const r = await run([...denoRun, ...flags, join(here, 'counter.mjs'), counter, '3']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(counter, 'utf8'), '3');
  });
  test('Deno without --allow-sys/--allow-env/--allow-ffi: a clear permission error, no lock held', async () => {
    const counter = target('deno-no-perms');
    writeFileSync(counter, '0');
    const all = ['--allow-read', '--allow-write', '--allow-ffi', '--allow-env', '--allow-sys'];
    for (const missing of ['--allow-sys', '--allow-env', '--allow-ffi']) {
      const r = await run([...denoRun, ...all.filter((f) => f !== missing), join(here, 'counter.mjs'), counter, '1']);
      assert.notEqual(r.code, 0, `without ${missing} it cannot work`);
      assert.equal(r.signal, null, `without ${missing}: no crash by signal`);
      assert.match(r.stderr, new RegExp(`run again with the ${missing} flag`), `without ${missing}: ${r.stderr}`);
      assert.equal(readFileSync(counter, 'utf8'), '0');
      assert.equal(await nodeCanTake(counter), true, `without ${missing}: nothing left held`);
    }
    // The addon and the hostname are read on first use, so the import itself never throws,
    // whichever permission is missing.
    for (const missing of ['--allow-sys', '--allow-env', '--allow-ffi']) {
      const r = await run([...denoRun, ...all.filter((f) => f !== missing), join(here, 'import-probe.mjs')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), 'import ok', `without ${missing}`);
    }
    features.permissions = 'needed';
  });
}

function skip(why) {
  return { skipped: why };
}

// Each case gets a generous bound so a hang fails the case instead of the whole run.
const CASE_BOUND_MS = 120_000;
console.log(`# ${runtime} ${version} (node API ${process.versions.node}, napi ${process.versions.napi})`);
let passed = 0;
let failed = 0;
let skipped = 0;
for (const { name, fn } of cases) {
  let timer;
  const bound = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running after ${CASE_BOUND_MS}ms`)), CASE_BOUND_MS);
  });
  try {
    const result = await Promise.race([fn(), bound]);
    if (result?.skipped) {
      skipped++;
      console.log(`skip - ${runtime}: ${name} (${result.skipped})`);
    } else {
      passed++;
      console.log(`ok - ${runtime}: ${name}`);
    }
  } catch (error) {
    failed++;
    console.log(`not ok - ${runtime}: ${name}\n  ${String(error?.stack ?? error).split('\n').join('\n  ')}`);
  } finally {
    clearTimeout(timer);
  }
  await releaseAll(); // a failed case must not leave a lock to the next
}
for (const key of ['cjsRequire', 'envCleanupHook', 'workers', 'finalizationRegistry', 'emitWarning', 'diagnosticsChannel', 'nodeDebug']) features[key] ??= 'no';
features.permissions ??= 'none';
console.log(`FEATURES ${JSON.stringify({ runtime, version, features })}`);
console.log(`${runtime}: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 ? 0 : 1);
