#!/usr/bin/env node
// session-flock vs the peers, side by side in one run, on tmpfs and on disk.
//   npm run bench                 full run (a few minutes), table + bench/results.json
//   node bench/run.mjs --smoke    tiny counts, no timing claims (CI: keeps the bench from rotting)
//   node bench/run.mjs --only=session-flock,fs-ext,c-wake   a subset (names as in peers.mjs, plus
//                                 c, c-record, c-wake and node-wake); --scenarios=handoff,uncontended likewise
// The handoff table also shows the floors no library can beat on this machine: Node's own
// wake-up (an idle event loop woken by one byte on a Unix socket, promise resolved), C with
// a wait thread blocked in flock waking an epoll loop through an eventfd, and two C
// processes ping-ponging flock. Peers are interleaved round by round, so a busy machine
// slows them alike: compare ratios within one run, not absolute times across runs.
// Correctness is checked even in smoke mode: the contention count must be exact for
// session-flock and the C baseline, or the run exits 1.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { available, peers } from './peers.mjs';
import { provideServer } from '../scripts/lib/pg-cluster.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const SMOKE = process.argv.includes('--smoke') || process.env.BENCH_SMOKE === '1';
const only = process.argv.find((a) => a.startsWith('--only='))?.slice(7).split(',');
const onlyScenarios = process.argv.find((a) => a.startsWith('--scenarios='))?.slice(12).split(',');
// rounds: kernel-lock peers are measured this many times, interleaved with the other peers
// (medians / pooled samples); polling peers once (their numbers are set by the poll interval).
// Handoffs run in more, shorter rounds (handoffRounds × handoffs per peer) so that drift on a
// shared machine lands on every peer alike; so does the uncontended loop (uncRounds processes
// of uncMs each per peer), since one process keeps its own speed, 20–40% off another's on a
// small VM, for its whole life.
const C = SMOKE
  ? { rounds: 1, uncRounds: 1, uncIters: 300, uncMs: 200, handoffRounds: 1, handoffs: 20, pollHandoffs: 4, contendN: 25, procs: 4, crashReps: 1, crashCapMs: 1_000, scenarioCapMs: 30_000 }
  : { rounds: 3, uncRounds: 9, uncIters: 50_000, uncMs: 700, handoffRounds: 8, handoffs: 150, pollHandoffs: 100, contendN: 500, procs: 4, crashReps: 5, crashCapMs: 15_000, scenarioCapMs: 180_000 };

// ---------- where: tmpfs and disk ----------
const TMPFS_MAGIC = 0x01021994;
const fsType = (p) => {
  try {
    return fs.statfsSync(p).type === TMPFS_MAGIC ? 'tmpfs' : 'disk';
  } catch {
    return 'unknown';
  }
};
const places = [];
if (fs.existsSync('/dev/shm') && fsType('/dev/shm') === 'tmpfs') places.push({ name: 'tmpfs', base: '/dev/shm' });
{
  const candidates = [os.tmpdir(), path.join(root, 'node_modules', '.cache')];
  const disk = candidates.find((p) => fs.existsSync(p) && fsType(p) === 'disk');
  if (disk) places.push({ name: 'disk', base: disk });
}
const mounts = (() => {
  try {
    return fs.readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    return '';
  }
})();
const fsOf = (p) => {
  // The longest mount point that contains p: "ext4 /dev/vda" style, for the report.
  let best = { mnt: '', desc: 'unknown' };
  for (const line of mounts.split('\n')) {
    const [dev, mnt, type] = line.split(' ');
    if (mnt && (p === mnt || p.startsWith(mnt.endsWith('/') ? mnt : mnt + '/')) && mnt.length >= best.mnt.length) best = { mnt, desc: `${type} (${dev} on ${mnt})` };
  }
  return best.desc;
};

// ---------- a PostgreSQL server for session-flock/postgres (started here unless configured) ----------
const pgServer = !only || only.includes('session-flock-postgres') ? await provideServer() : { url: null, stop: () => undefined, why: 'not selected' };
if (pgServer.url !== null) process.env.SESSION_FLOCK_BENCH_PG_URL = pgServer.url;
process.on('exit', () => pgServer.stop());

// ---------- peers, plus the C baseline and the floors ----------
const wanted = (n) => !only || only.includes(n);
const peerNames = Object.keys(peers).filter((n) => wanted(n) && available(n));
const missingPeers = Object.keys(peers)
  .filter((n) => !peerNames.includes(n) && wanted(n))
  .map((n) => (n === 'session-flock-postgres' ? `${n} (${pgServer.why})` : n));
let baseline = null;
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sflock-bench-'));
if (wanted('c') || wanted('c-record') || wanted('c-wake')) {
  try {
    baseline = path.join(workDir, 'baseline');
    execFileSync('cc', ['-O2', '-pthread', '-o', baseline, path.join(here, 'baseline.c')], { stdio: 'pipe' });
  } catch (e) {
    baseline = null;
    missingPeers.push(`c, c-record, c-wake (no working cc with epoll/eventfd: ${String(e.message).split('\n')[0]})`);
  }
}
/** Floors: measured in the handoff scenario only, as what a lock handoff cannot beat. */
const FLOORS = {
  'node-wake': 'Floor: Node, idle event loop woken by 1 byte on a Unix socket',
  'c-wake': 'Floor: C, wait thread in flock → eventfd → epoll loop',
};
const floorNames = [...(wanted('node-wake') ? ['node-wake'] : []), ...(baseline && wanted('c-wake') ? ['c-wake'] : [])];
/** The C loop with the holder record's system calls added: the floor of `record: true`, uncontended only. */
const C_RECORD = 'c-record';
const cNames = [...(baseline && wanted('c') ? ['c'] : []), ...(baseline && wanted(C_RECORD) ? [C_RECORD] : [])];
const contenders = [...peerNames, ...cNames, ...floorNames];
const isFloor = (n) => n in FLOORS;
const isC = (n) => n === 'c' || n === C_RECORD || n === 'c-wake';
/** Which contenders a scenario runs: the floors only make sense for the handoff, the record's C loop uncontended. */
const inScenario = (sname) =>
  sname === 'handoff'
    ? [...contenders.filter((n) => n !== 'c' && n !== C_RECORD), ...contenders.filter((n) => n === 'c')]
    : contenders.filter((n) => !isFloor(n) && (n !== C_RECORD || sname === 'uncontended'));
if (!peerNames.includes('session-flock')) {
  console.error(`session-flock itself cannot be loaded (run \`npm run build\` first): ${dist()}`);
  process.exit(1);
}
function dist() {
  return process.env.SFLOCK_DIST ?? path.join(root, 'dist', 'cjs', 'index.js');
}
const label = (n, sname) =>
  n === 'c'
    ? sname === 'handoff'
      ? 'Floor: C, two processes ping-ponging flock'
      : 'C baseline (open+flock+unlock+close)'
    : n === C_RECORD
      ? "C baseline + the holder record's calls (fstat, pwrite; ftruncate before the unlock)"
      : (FLOORS[n] ?? peers[n].label);
const kind = (n) => (isC(n) || isFloor(n) ? 'kernel' : peers[n].kind);
const command = (n, args) => {
  if (n === 'c') return [baseline, args];
  if (n === C_RECORD) return [baseline, ['uncontended-record', ...args.slice(1)]];
  if (n === 'c-wake') return [baseline, ['serve-thread', ...args.slice(1)]];
  if (n === 'node-wake') return [process.execPath, [path.join(here, 'wake-floor.mjs'), ...args]];
  return [process.execPath, [path.join(here, 'worker.mjs'), args[0], n, ...args.slice(1)]];
};

// ---------- process plumbing ----------
function start(n, args) {
  const [cmd, argv] = command(n, args);
  const child = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
  child.stdin.on('error', () => {});
  const queue = [];
  const waiters = [];
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  createInterface({ input: child.stdout }).on('line', (l) => {
    queue.push(l);
    while (waiters.length && queue.length) waiters.shift()(queue.shift());
  });
  const exited = new Promise((r) => child.on('close', (code, signal) => r({ code, signal }))); // after stdout is drained
  return {
    child,
    exited,
    send: (l) => child.stdin.write(`${l}\n`),
    next: (ms = C.scenarioCapMs) =>
      new Promise((resolve, reject) => {
        if (queue.length) return resolve(queue.shift());
        const t = setTimeout(() => reject(new Error(`${label(n)}: no answer within ${ms} ms ${stderr.slice(0, 300)}`)), ms);
        waiters.push((l) => {
          clearTimeout(t);
          resolve(l);
        });
        exited.then(({ code, signal }) => {
          clearTimeout(t);
          if (!queue.length) reject(new Error(`${label(n)} exited (${code ?? signal}): ${stderr.slice(0, 500)}`));
        });
      }),
    stderr: () => stderr,
  };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const expectLine = async (p, prefix) => {
  const l = await p.next();
  if (!l.startsWith(prefix)) throw new Error(`expected ${prefix}, got ${l}: ${p.stderr()}`);
  return l;
};
const ns = (line) => BigInt(line.split(' ')[1]);
const pct = (xs, q) => {
  const a = [...xs].sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.floor(q * a.length))];
};
let seq = 0;
const freshTarget = (dir, n) => {
  const t = path.join(dir, `${n}-${seq++}.jsonl`);
  fs.writeFileSync(t, '');
  return t;
};

// ---------- scenarios ----------
async function uncontended(n, dir, extra = {}) {
  const p = start(n, ['uncontended', freshTarget(dir, n), String(C.uncIters), String(C.uncMs)]);
  const r = JSON.parse(await p.next());
  await p.exited;
  return { usPerOp: r.usPerOp, iters: r.iters, ...extra };
}

/** The two processes of a handoff: two lock servers, or for the Node floor two ends of one socket. */
async function handoffPair(n, target) {
  if (n !== 'node-wake') return [start(n, ['serve', target]), start(n, ['serve', target])];
  const socketPath = `${target}.sock`;
  const a = start(n, ['listen', socketPath]);
  await expectLine(a, 'ready');
  const b = start(n, ['connect', socketPath]);
  await Promise.all([expectLine(a, 'connected'), expectLine(b, 'connected')]);
  return [a, b];
}

async function handoff(n, dir) {
  const target = freshTarget(dir, n);
  const [a, b] = await handoffPair(n, target);
  const count = kind(n) === 'polling' ? C.pollHandoffs : C.handoffs;
  const samples = [];
  try {
    let [holder, waiter] = [a, b];
    holder.send('acquire');
    await expectLine(holder, 'waiting');
    await expectLine(holder, 'acquired');
    for (let i = 0; i < count; i++) {
      waiter.send('acquire');
      await expectLine(waiter, 'waiting');
      await sleep(2); // the waiter is now blocked in the kernel (or sleeping in its poll loop)
      holder.send('release');
      const released = ns(await expectLine(holder, 'released'));
      const acquired = ns(await expectLine(waiter, 'acquired'));
      samples.push(Number(acquired - released) / 1e3);
      [holder, waiter] = [waiter, holder];
    }
    holder.send('release');
    await expectLine(holder, 'released');
  } finally {
    for (const p of [a, b]) p.child.kill('SIGKILL');
    await Promise.all([a.exited, b.exited]);
  }
  return { samples };
}

async function contention(n, dir) {
  const target = freshTarget(dir, n);
  const counter = `${target}.count`;
  fs.writeFileSync(counter, '0');
  const ps = Array.from({ length: C.procs }, () => start(n, ['contend', target, counter, String(C.contendN)]));
  try {
    for (const p of ps) await expectLine(p, 'ready');
    const t0 = process.hrtime.bigint();
    for (const p of ps) p.send('go');
    for (const p of ps) await expectLine(p, 'done');
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const count = Number(fs.readFileSync(counter, 'utf8'));
    const expected = C.procs * C.contendN;
    return { wallMs, count, expected, exact: count === expected };
  } finally {
    for (const p of ps) p.child.kill('SIGKILL');
    await Promise.all(ps.map((p) => p.exited));
  }
}

async function crash(n, dir) {
  const target = freshTarget(dir, n);
  const holder = start(n, ['serve', target]);
  const waiter = start(n, ['serve', target]);
  try {
    holder.send('acquire');
    await expectLine(holder, 'waiting');
    await expectLine(holder, 'acquired');
    waiter.send('acquire');
    await expectLine(waiter, 'waiting');
    await sleep(50);
    const t0 = process.hrtime.bigint();
    holder.child.kill('SIGKILL');
    try {
      const t1 = ns(await waiter.next(C.crashCapMs));
      return { recoveryMs: Number(t1 - t0) / 1e6, recovered: true };
    } catch {
      return { recoveryMs: null, recovered: false, capMs: C.crashCapMs };
    }
  } finally {
    for (const p of [holder, waiter]) p.child.kill('SIGKILL');
    await Promise.all([holder.exited, waiter.exited]);
  }
}

// ---------- run ----------
const scenarios = [
  ['uncontended', uncontended],
  ['handoff', handoff],
  ['contention', contention],
  ['crash', crash],
].filter(([sname]) => !onlyScenarios || onlyScenarios.includes(sname));
const results = {
  when: new Date().toISOString(),
  mode: SMOKE ? 'smoke' : 'full',
  counts: C,
  machine: { node: process.version, platform: `${os.type()} ${os.release()} ${os.arch()}`, cpu: os.cpus()[0]?.model, cores: os.cpus().length },
  places: places.map((p) => ({ ...p, filesystem: fsOf(p.base) })),
  peers: Object.fromEntries(
    contenders.map((n) => [n, { label: label(n), note: isC(n) ? 'compiled with cc -O2 at bench time' : isFloor(n) ? 'bench/wake-floor.mjs' : peers[n].note, version: version(n) }]),
  ),
  missing: missingPeers,
  data: {},
};
function version(n) {
  if (isC(n) || isFloor(n)) return null;
  const pkg = { 'session-flock': '../package.json', 'session-flock-norecord': '../package.json', 'session-flock-postgres': '../package.json', pidfile: null }[n] ?? `${n}/package.json`;
  if (pkg === null) return null;
  try {
    return JSON.parse(fs.readFileSync(pkg.startsWith('..') ? path.join(root, 'package.json') : path.join(root, 'node_modules', pkg), 'utf8')).version;
  } catch {
    return null;
  }
}

const median = (xs) => pct(xs, 0.5);
const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
/** Folds the runs of one peer in one scenario into one result. */
function aggregate(sname, runs) {
  const bad = runs.find((r) => r.error);
  if (bad) return bad;
  if (sname === 'uncontended') return { usPerOp: median(runs.map((r) => r.usPerOp)), runsUsPerOp: runs.map((r) => r.usPerOp), iters: runs.map((r) => r.iters) };
  if (sname === 'handoff') {
    const all = runs.flatMap((r) => r.samples);
    return {
      handoffs: all.length,
      rounds: runs.length,
      meanUs: mean(all),
      p50Us: pct(all, 0.5),
      p99Us: pct(all, 0.99),
      maxUs: Math.max(...all),
      roundP50Us: runs.map((r) => pct(r.samples, 0.5)),
    };
  }
  if (sname === 'contention') {
    const wrong = runs.find((r) => !r.exact);
    return { wallMs: median(runs.map((r) => r.wallMs)), runsWallMs: runs.map((r) => r.wallMs), exact: !wrong, count: (wrong ?? runs[0]).count, expected: runs[0].expected };
  }
  if (sname === 'crash') {
    const ok = runs.filter((r) => r.recovered).map((r) => r.recoveryMs);
    return ok.length === runs.length
      ? { recovered: true, recoveryMs: median(ok), maxMs: Math.max(...ok), reps: runs.length }
      : { recovered: false, capMs: runs[0].capMs ?? C.crashCapMs, reps: runs.length };
  }
  return runs[0];
}

let failed = false;
for (const place of places) {
  const dir = fs.mkdtempSync(path.join(place.base, 'sflock-bench-'));
  results.data[place.name] = {};
  // A PostgreSQL lock does not live in the filesystem: measured in the first place only.
  const measured = contenders.filter((n) => n !== 'session-flock-postgres' || place === places[0]);
  try {
    for (const [sname, fn] of scenarios) {
      const these = inScenario(sname).filter((n) => measured.includes(n));
      const runs = Object.fromEntries(these.map((n) => [n, []]));
      const reps = (n) =>
        sname === 'uncontended'
          ? C.uncRounds
          : kind(n) === 'polling'
            ? 1
            : sname === 'crash'
              ? C.crashReps
              : sname === 'handoff'
                ? C.handoffRounds
                : C.rounds;
      const maxReps = Math.max(...these.map(reps));
      for (let round = 0; round < maxReps; round++) {
        for (const n of these) {
          if (round >= reps(n) || runs[n].some((r) => r.error)) continue;
          process.stderr.write(`  ${place.name} ${sname} ${label(n, sname)} #${round + 1} ... `);
          const t = Date.now();
          let r;
          try {
            r = await fn(n, dir);
          } catch (e) {
            r = { error: String(e.message).split('\n')[0] };
          }
          runs[n].push(r);
          process.stderr.write(`${((Date.now() - t) / 1000).toFixed(1)} s\n`);
        }
      }
      results.data[place.name][sname] = {};
      for (const n of these) {
        const r = aggregate(sname, runs[n]);
        if ((n.startsWith('session-flock') || isC(n) || isFloor(n)) && (r.error || r.exact === false)) failed = true;
        results.data[place.name][sname][n] = r;
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
fs.rmSync(workDir, { recursive: true, force: true });

// ---------- report ----------
const fmtUs = (us) => (us >= 10_000 ? `${(us / 1000).toFixed(0)} ms` : us >= 1000 ? `${(us / 1000).toFixed(1)} ms` : us >= 10 ? `${us.toFixed(0)} µs` : `${us.toFixed(2)} µs`);
const fmtMs = (ms) => (ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 100 ? `${ms.toFixed(0)} ms` : `${ms.toFixed(1)} ms`);
const ratio = (x, best) => (x == null || best == null ? '' : x / best < 1.05 ? '**1.0×**' : `${(x / best).toFixed(x / best >= 100 ? 0 : 1)}×`);
const times = (x, ref) => (x == null || ref == null || !(ref > 0) ? '' : `${(x / ref).toFixed(x / ref >= 10 ? 0 : 2)}×`);
const dataOf = (place, sname) => results.data[place.name][sname] ?? {};
/** One row per contender, one value + ratio column pair per place; ratios against the C baseline where it ran, else the fastest row. */
function table(sname, title, metric, cell, key) {
  const reference = (p) => {
    const d = dataOf(p, sname);
    if (key(d.c) != null) return { name: 'C', value: key(d.c) };
    const vals = inScenario(sname).map((n) => key(d[n])).filter((v) => v != null);
    return { name: 'fastest', value: vals.length ? Math.min(...vals) : null };
  };
  const refs = places.map(reference);
  const lines = [
    `### ${title}`,
    '',
    `| Peer | ${places.map((p, i) => `${p.name}: ${metric} | × ${refs[i].name}`).join(' | ')} |`,
    `| --- | ${places.map(() => '---: | ---:').join(' | ')} |`,
  ];
  for (const n of inScenario(sname)) {
    const cells = places.map((p, i) => {
      const r = dataOf(p, sname)[n];
      if (!r) return ' | ';
      if (r.error) return `error: ${r.error.slice(0, 60)} | `;
      return `${cell(r)} | ${ratio(key(r), refs[i].value)}`;
    });
    lines.push(`| ${label(n, sname)} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}
const ran = (sname) => scenarios.some(([n]) => n === sname);
/** The npm peers a session writer could use instead (not session-flock itself, not the floors). */
const otherLibraries = peerNames.filter((n) => !n.startsWith('session-flock'));
function bestPeer(d) {
  let best = null;
  for (const n of otherLibraries) if (d[n]?.p50Us != null && (best === null || d[n].p50Us < d[best].p50Us)) best = n;
  return best;
}
/** Handoff, one table per place: median and p99, as ratios to the best other library and to each floor. */
function handoffTable(place) {
  const d = dataOf(place, 'handoff');
  const best = bestPeer(d);
  const refs = [
    ['best peer', best],
    ['Node floor', 'node-wake'],
    ['C wait thread', 'c-wake'],
    ['C flock', 'c'],
  ].filter(([, n]) => n !== null && d[n]?.p50Us != null);
  const lines = [
    `### Handoff on ${place.name}: release() → the waiting process's code resumes (an async helper around acquire, awaited)`,
    '',
    `| Peer | median | p99 | ${refs.map(([what]) => `× ${what}`).join(' | ')} |`,
    `| --- | ---: | ---: | ${refs.map(() => '---:').join(' | ')} |`,
  ];
  for (const n of inScenario('handoff')) {
    const r = d[n];
    if (!r) continue;
    if (r.error) {
      lines.push(`| ${label(n, 'handoff')} | error: ${r.error.slice(0, 60)} | | ${refs.map(() => '').join(' | ')} |`);
      continue;
    }
    const ratios = refs.map(([what, ref]) => (what === 'best peer' ? `${times(r.p50Us, d[ref].p50Us)} (p99 ${times(r.p99Us, d[ref].p99Us)})` : times(r.p50Us, d[ref].p50Us)));
    lines.push(`| ${label(n, 'handoff')} | ${fmtUs(r.p50Us)} | ${fmtUs(r.p99Us)} | ${ratios.join(' | ')} |`);
  }
  if (best) lines.push('', `Best peer here: ${label(best, 'handoff')}. Ratios are of medians (to the best peer also of p99s); below 1.00× is faster.`);
  return lines.join('\n');
}
/** The fastest of the other Node libraries in one scenario's data, by `key`. */
function bestOf(d, key) {
  let best = null;
  for (const n of otherLibraries) if (key(d[n]) != null && (best === null || key(d[n]) < key(d[best]))) best = n;
  return best;
}
/** The project's performance targets, per place, from this run. */
function goalsTable() {
  const rows = [];
  const goal = (what, target, f) => rows.push(`| ${what} | ${target} | ${places.map((p) => f(p) ?? '').join(' | ')} |`);
  const un = (p, n) => dataOf(p, 'uncontended')[n]?.usPerOp;
  const ho = (p, n) => dataOf(p, 'handoff')[n]?.p50Us;
  const wall = (p, n) => (dataOf(p, 'contention')[n]?.exact ? dataOf(p, 'contention')[n].wallMs : null);
  goal('uncontended, default options ÷ best Node peer', '≤ 1.00×', (p) => {
    const best = bestOf(dataOf(p, 'uncontended'), (r) => r?.usPerOp);
    return best ? `${times(un(p, 'session-flock'), un(p, best))} (${best})` : null;
  });
  goal('uncontended, record on ÷ record off', '≤ 1.30×', (p) => times(un(p, 'session-flock'), un(p, 'session-flock-norecord')));
  goal('uncontended, record off ÷ C loop', '≤ 3×', (p) => times(un(p, 'session-flock-norecord'), un(p, 'c')));
  goal("uncontended, the record's calls in C ÷ C loop (record on's floor)", '', (p) => times(un(p, C_RECORD), un(p, 'c')));
  goal('contention wall, default options ÷ fs-ext', '≤ 1.00×', (p) => times(wall(p, 'session-flock'), wall(p, 'fs-ext')));
  goal('handoff median, record off ÷ best peer', '≤ 1.00×', (p) => {
    const best = bestPeer(dataOf(p, 'handoff'));
    return best ? `${times(ho(p, 'session-flock-norecord'), ho(p, best))} (${best})` : null;
  });
  goal('handoff median, record on ÷ record off', '≤ 1.15×', (p) => times(ho(p, 'session-flock'), ho(p, 'session-flock-norecord')));
  return [`### Targets`, '', `| ratio | target | ${places.map((p) => p.name).join(' | ')} |`, `| --- | ---: | ${places.map(() => '---:').join(' | ')} |`, ...rows].join('\n');
}
const md = [
  `## Benchmark (${results.mode}) — ${results.machine.cpu}, ${results.machine.cores} cores, ${results.machine.platform}, Node ${results.machine.node}`,
  '',
  `Places: ${results.places.map((p) => `${p.name} = ${p.base} [${p.filesystem}]`).join('; ')}. Lower is better. Kernel-lock peers and floors run interleaved, round by round: ${C.uncRounds} round(s) of ${C.uncMs} ms for uncontended, ${C.rounds} for contention, ${C.handoffRounds} round(s) × ${C.handoffs} handoffs (samples pooled), ${C.crashReps} crash repetition(s); polling peers run one round (but for uncontended). On a shared machine compare the ratios within one run, not absolute times across runs.`,
  '',
  goalsTable(),
  '',
  ran('uncontended') ? table('uncontended', 'Uncontended: mean per acquire+release (median of rounds)', 'mean', (r) => fmtUs(r.usPerOp), (r) => r?.usPerOp) : '',
  '',
  ...(ran('handoff') ? places.flatMap((p) => [handoffTable(p), '']) : []),
  !ran('contention') ? '' : table(
    'contention',
    `Contention: ${C.procs} processes × ${C.contendN} locked increments, wall time`,
    'wall',
    (r) => `${fmtMs(r.wallMs)} ${r.exact ? '✓' : `✗ count ${r.count}/${r.expected}`}`,
    (r) => (r?.exact ? r.wallMs : null),
  ),
  '',
  !ran('crash') ? '' : table(
    'crash',
    'Crash: SIGKILLed holder → another process holds (median)',
    'recovery',
    (r) => (r.recovered ? fmtMs(r.recoveryMs) : `> ${fmtMs(r.capMs)} (not recovered)`),
    (r) => (r?.recovered ? r.recoveryMs : null),
  ),
  '',
  `Peers: ${contenders.map((n) => `${label(n)}${results.peers[n].version ? ` ${results.peers[n].version}` : ''} — ${results.peers[n].note}`).join('; ')}.`,
  missingPeers.length ? `\nNot run: ${missingPeers.join(', ')}.` : '',
].join('\n');
results.markdown = md;
fs.writeFileSync(path.join(here, 'results.json'), JSON.stringify(results, null, 2) + '\n');
console.log(md);
// session-flock/postgres's own scenarios (shared connections), on the same server.
if (pgServer.url !== null && wanted('session-flock-postgres')) {
  const pgBench = spawnSync(process.execPath, [path.join(here, 'postgres.mjs'), ...(SMOKE ? ['--smoke'] : [])], { stdio: 'inherit' });
  if (pgBench.status !== 0) failed = true;
}
if (failed) {
  console.error('\nFAILED: session-flock or the C baseline lost a count or errored (see above).');
  process.exit(1);
}
