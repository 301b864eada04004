// One benchmark process for one peer. Modes:
//   uncontended <peer> <target> <maxIters> <maxMs>   → one JSON line
//   serve <peer> <target>    stdin: acquire | release | exit; stdout: waiting | acquired <ns> | released <ns>
//                            (acquired: where the caller of an async helper around lock() resumes)
//   contend <peer> <target> <counter> <n>   ready → (stdin go) → n locked increments → done
// Times are process.hrtime (CLOCK_MONOTONIC on Linux), comparable across processes.
import * as fs from 'node:fs';
import { createInterface } from 'node:readline';
import { peers } from './peers.mjs';

const [mode, name, target, ...rest] = process.argv.slice(2);
const peer = peers[name].load();
const now = () => process.hrtime.bigint();
const say = (line) => process.stdout.write(`${line}\n`);
if (!fs.existsSync(target)) fs.writeFileSync(target, ''); // proper-lockfile wants the target to exist

if (mode === 'uncontended') {
  const [maxIters, maxMs] = rest.map(Number);
  for (let i = 0; i < Math.min(200, maxIters); i++) await peer.unlock(await peer.lock(target)); // warm-up
  const t0 = now();
  const limit = t0 + BigInt(maxMs) * 1_000_000n;
  let iters = 0;
  while (iters < maxIters) {
    await peer.unlock(await peer.lock(target));
    iters++;
    if ((iters & 63) === 0 && now() > limit) break;
  }
  const ns = Number(now() - t0);
  say(JSON.stringify({ iters, ms: ns / 1e6, usPerOp: ns / 1e3 / iters }));
  process.exit(0);
}

const input = createInterface({ input: process.stdin });
if (mode === 'serve') {
  // As user code takes a lock: an async helper awaits the library's promise, and its caller
  // awaits the helper. The handoff ends where the caller resumes, after both hops, so work a
  // library defers to a microtask at its grant is counted, as its users pay for it.
  const take = async () => {
    const lock = await peer.lock(target);
    return lock;
  };
  let held = null;
  for await (const line of input) {
    if (line === 'acquire') {
      const pending = take();
      say('waiting');
      held = await pending;
      say(`acquired ${now()}`);
    } else if (line === 'release') {
      const t = now();
      await peer.unlock(held);
      held = null;
      say(`released ${t}`);
    } else if (line === 'exit') process.exit(0);
  }
} else if (mode === 'contend') {
  const [counter, n] = [rest[0], Number(rest[1])];
  say('ready');
  for await (const line of input) if (line === 'go') break;
  const buf = Buffer.alloc(32);
  for (let i = 0; i < n; i++) {
    const h = await peer.lock(target);
    // Exactly what baseline.c does: read, pwrite at 0, ftruncate (no O_TRUNC rewrite).
    const fd = fs.openSync(counter, 'r+');
    const len = fs.readSync(fd, buf, 0, buf.length, 0);
    const next = Buffer.from(String(Number(buf.toString('utf8', 0, len) || '0') + 1));
    fs.writeSync(fd, next, 0, next.length, 0);
    fs.ftruncateSync(fd, next.length);
    fs.closeSync(fd);
    await peer.unlock(h);
  }
  say('done');
  process.exit(0);
}
