// Microseconds per uncontended acquire+release, next to a plain open+close, in one run.
// Usage: node scripts/microbench.mjs [iterations]
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { acquire, tryAcquireSync } = require('../dist/cjs/index.js');
const n = Number(process.argv[2] ?? 20000);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sf-micro-'));
const target = path.join(dir, 's.jsonl');
fs.writeFileSync(`${target}.lock`, '');

async function time(label, fn) {
  for (let i = 0; i < 1000; i++) await fn(); // warm up
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  const us = Number(process.hrtime.bigint() - start) / 1000 / n;
  return { label, us };
}

const rows = [];
for (let round = 0; round < 3; round++) {
  rows.push(await time('fs.openSync + fs.closeSync', () => fs.closeSync(fs.openSync(`${target}.lock`, 'r+'))));
  rows.push(await time('acquire + release, record: false', async () => (await acquire(target, { record: false })).releaseSync()));
  rows.push(await time('acquire + release, record: true', async () => (await acquire(target)).releaseSync()));
  rows.push(await time('tryAcquireSync + releaseSync, record: false', () => tryAcquireSync(target, { record: false }).releaseSync()));
}
const best = new Map();
for (const row of rows) best.set(row.label, Math.min(best.get(row.label) ?? Infinity, row.us));
const base = best.get('fs.openSync + fs.closeSync');
console.log(`| operation (best of 3 rounds × ${n}) | µs/op | × open+close |\n|---|---:|---:|`);
for (const [label, us] of best) console.log(`| ${label} | ${us.toFixed(2)} | ${(us / base).toFixed(2)} |`);
fs.rmSync(dir, { recursive: true, force: true });
