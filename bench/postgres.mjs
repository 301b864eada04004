// session-flock/postgres on a real server: what shared connections cost and give.
//   node bench/postgres.mjs            full counts
//   node bench/postgres.mjs --smoke    tiny counts, no timing claims (CI)
//   node bench/postgres.mjs --json     one JSON object instead of the table
// Server: SESSION_FLOCK_BENCH_PG_URL or SESSION_FLOCK_TEST_PG_URL, else a throwaway cluster
// (scripts/lib/pg-cluster.mjs). bench/run.mjs runs it after its own scenarios.
//
// Scenarios, each across real processes (times are process.hrtime: CLOCK_MONOTONIC on Linux,
// comparable across processes):
//   fast path     release() in one process → acquire() resolves in another, whose wait is
//                 blocked in pg_advisory_lock on a session of its own (the server wakes it)
//   busy          the same with every session of the waiter's set busy (maxConnections 1,
//                 holding another key): the wait is woken by the releaser's pg_notify
//   SIGKILL       a holder SIGKILLed → a waiter blocked on the server holds the lock
//   1,000 keys    one process takes 1,000 distinct keys at once, then releases them; sessions used
// Targets (issue 27): fast path ≤ 2 ms median, busy ≤ 20 ms, SIGKILL ≤ 50 ms.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { provideServer } from '../scripts/lib/pg-cluster.mjs';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
const { createPostgresLocks } = require(path.join(here, '..', 'dist', 'cjs', 'postgres', 'index.js'));
const now = () => process.hrtime.bigint();

// ---------- child: one lock set driven over stdin ----------
if (process.argv[2] === '--child') {
  const [url, namespace, optionsJson] = process.argv.slice(3);
  const locks = createPostgresLocks({ connectionString: url, namespace, ...JSON.parse(optionsJson) });
  const held = new Map();
  const say = (line) => process.stdout.write(`${line}\n`);
  for await (const line of createInterface({ input: process.stdin })) {
    const [op, key] = line.split(' ');
    if (op === 'acquire') {
      const pending = locks.acquire(key, { timeoutMs: 60_000 });
      say('waiting');
      held.set(key, await pending);
      say(`acquired ${now()}`);
    } else if (op === 'release') {
      const lock = held.get(key);
      held.delete(key);
      const t = now();
      await lock.release();
      say(`released ${t}`);
    } else if (op === 'exit') {
      await locks.close();
      process.exit(0);
    }
  }
}

// ---------- parent ----------
const SMOKE = process.argv.includes('--smoke') || process.env.BENCH_SMOKE === '1';
const JSON_OUT = process.argv.includes('--json');
const C = SMOKE ? { handoffs: 3, kills: 2, keys: 100 } : { handoffs: 60, kills: 15, keys: 1000 };

const configured = process.env.SESSION_FLOCK_BENCH_PG_URL || process.env.SESSION_FLOCK_TEST_PG_URL;
const server = configured ? { url: configured, stop: () => undefined } : await provideServer();
if (server.url === null) {
  console.log(`bench/postgres.mjs: no PostgreSQL server (${server.why})`);
  process.exit(0);
}
process.on('exit', () => server.stop());
const pg = require('pg');
const admin = new pg.Client({ connectionString: server.url });
await admin.connect();

function child(namespace, options = {}) {
  const p = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', server.url, namespace, JSON.stringify(options)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: p.stdout })[Symbol.asyncIterator]();
  return {
    process: p,
    send: (line) => p.stdin.write(`${line}\n`),
    async expect(prefix) {
      const { value, done } = await lines.next();
      if (done || !value.startsWith(prefix)) throw new Error(`expected ${prefix}, got ${done ? 'the end' : value}`);
      return value;
    },
    async exit() {
      if (p.exitCode !== null || p.signalCode !== null) return;
      const exited = new Promise((resolve) => p.once('exit', resolve));
      p.stdin.write('exit\n');
      await exited;
    },
  };
}

const ns = (line) => BigInt(line.split(' ')[1]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const p90 = (xs) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * 0.9))];

async function blockedOnServer(lockKey) {
  for (;;) {
    const { rows } = await admin.query(
      `SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND ((classid::bigint << 32) | objid::bigint) = $1::bigint`,
      [lockKey],
    );
    if (rows[0].n > 0) return;
    await sleep(1);
  }
}

async function lockKeyOf(namespace, key) {
  const locks = createPostgresLocks({ connectionString: server.url, namespace });
  try {
    return (await locks.inspect(key)).lockKey;
  } finally {
    await locks.close();
  }
}

/** release() in the holder → acquire() resolves in the waiter, in ms; `busy`: the waiter's only session holds another key. */
async function handoff(busy) {
  const namespace = `bench-${randomUUID()}`;
  const holder = child(namespace);
  const waiter = child(namespace, busy ? { maxConnections: 1 } : {});
  const lockKey = await lockKeyOf(namespace, 'k');
  const samples = [];
  try {
    if (busy) {
      waiter.send('acquire other');
      await waiter.expect('waiting');
      await waiter.expect('acquired');
    }
    for (let i = 0; i < C.handoffs; i++) {
      await holdAndQueue(holder, waiter);
      // Blocked on the server, or (busy) its try has failed and it waits for a wake-up.
      if (busy) await sleep(30);
      else await blockedOnServer(lockKey);
      holder.send('release k');
      const released = ns(await holder.expect('released'));
      const acquired = ns(await waiter.expect('acquired'));
      samples.push(Number(acquired - released) / 1e6);
      waiter.send('release k');
      await waiter.expect('released');
    }
  } finally {
    await holder.exit();
    await waiter.exit();
  }
  return { medianMs: median(samples), p90Ms: p90(samples), n: samples.length };
}

/** `holder` takes key k, then `waiter` asks for it (and is told to wait). */
async function holdAndQueue(holder, waiter) {
  holder.send('acquire k');
  await holder.expect('waiting');
  await holder.expect('acquired');
  waiter.send('acquire k');
  await waiter.expect('waiting');
}

/** A holder SIGKILLed → a waiter blocked on the server holds the lock, in ms. */
async function sigkill() {
  const namespace = `bench-${randomUUID()}`;
  const lockKey = await lockKeyOf(namespace, 'k');
  const waiter = child(namespace);
  const samples = [];
  try {
    for (let i = 0; i < C.kills; i++) {
      const holder = child(namespace);
      await holdAndQueue(holder, waiter);
      await blockedOnServer(lockKey);
      const killed = now();
      holder.process.kill('SIGKILL');
      const acquired = ns(await waiter.expect('acquired'));
      samples.push(Number(acquired - killed) / 1e6);
      waiter.send('release k');
      await waiter.expect('released');
    }
  } finally {
    await waiter.exit();
  }
  return { medianMs: median(samples), p90Ms: p90(samples), n: samples.length };
}

/** One process takes `C.keys` distinct keys at once, then releases them all; sessions seen in pg_stat_activity. */
async function manyKeys() {
  const namespace = `bench-${randomUUID()}`;
  const locks = createPostgresLocks({ connectionString: server.url, namespace, application_name: `sf-bench-${process.pid}` });
  const keys = Array.from({ length: C.keys }, (_, i) => `session-${i}`);
  try {
    await (await locks.acquire('warm-up')).release();
    const t0 = now();
    const held = await Promise.all(keys.map((key) => locks.acquire(key, { timeoutMs: 60_000 })));
    const t1 = now();
    const { rows } = await admin.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1`, [`sf-bench-${process.pid}`]);
    const t2 = now();
    await Promise.all(held.map((lock) => lock.release()));
    const t3 = now();
    return { keys: C.keys, acquireMs: Number(t1 - t0) / 1e6, releaseMs: Number(t3 - t2) / 1e6, sessions: rows[0].n };
  } finally {
    await locks.close();
  }
}

const results = {
  mode: SMOKE ? 'smoke' : 'full',
  machine: { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, node: process.version },
  fastPath: await handoff(false),
  busy: await handoff(true),
  sigkill: await sigkill(),
  manyKeys: await manyKeys(),
};
await admin.end();

const ms = (x) => (x >= 100 ? `${x.toFixed(0)} ms` : x >= 10 ? `${x.toFixed(1)} ms` : `${x.toFixed(2)} ms`);
const target = (x, limit) => (SMOKE ? '' : x <= limit ? ` ✓ (≤ ${limit} ms)` : ` ✗ (target ≤ ${limit} ms)`);
if (JSON_OUT) console.log(JSON.stringify(results, null, 2));
else {
  console.log(
    [
      `### session-flock/postgres (${results.mode}) — ${results.machine.cpu}, ${results.machine.cores} cores, Node ${results.machine.node}`,
      '',
      '| scenario | median | p90 | n |',
      '| --- | ---: | ---: | ---: |',
      `| handoff, fast path (waiter blocked on the server) | ${ms(results.fastPath.medianMs)}${target(results.fastPath.medianMs, 2)} | ${ms(results.fastPath.p90Ms)} | ${results.fastPath.n} |`,
      `| handoff, every waiter session busy (pg_notify wake-up) | ${ms(results.busy.medianMs)}${target(results.busy.medianMs, 20)} | ${ms(results.busy.p90Ms)} | ${results.busy.n} |`,
      `| SIGKILLed holder → blocked waiter holds | ${ms(results.sigkill.medianMs)}${target(results.sigkill.medianMs, 50)} | ${ms(results.sigkill.p90Ms)} | ${results.sigkill.n} |`,
      '',
      `${results.manyKeys.keys} distinct keys in one process: all acquired in ${ms(results.manyKeys.acquireMs)}, all released in ${ms(results.manyKeys.releaseMs)}, on ${results.manyKeys.sessions} server session(s) (maxConnections 10).`,
      SMOKE ? '\n(smoke: tiny counts, no timing claims)' : '',
    ].join('\n'),
  );
}
process.exit(0);
