// A lock holder in its own process (Node, Bun or Deno), driven over stdin/stdout with one
// JSON object a line, so it needs no runtime's IPC channel: the suite sends {seq, op, ...}
// and reads {seq, ok, ...} or {seq, ok: false, error}. Imports the package by name.
import { acquire, tryAcquireSync } from 'session-flock';
import { createInterface } from 'node:readline';

const locks = new Map();
let nextId = 1;

async function handle(msg) {
  switch (msg.op) {
    case 'acquire': {
      const lock = await acquire(msg.target, msg.options);
      locks.set(nextId, lock);
      return { id: nextId++ };
    }
    case 'try': {
      const lock = tryAcquireSync(msg.target, msg.options);
      if (lock === null) return { id: null };
      locks.set(nextId, lock);
      return { id: nextId++ };
    }
    case 'release':
      await locks.get(msg.id).release();
      locks.delete(msg.id);
      return {};
  }
  throw new Error(`unknown op ${msg.op}`);
}

const send = (msg) => process.stdout.write(`${JSON.stringify(msg)}\n`);
createInterface({ input: process.stdin }).on('line', (line) => {
  const msg = JSON.parse(line);
  handle(msg).then(
    (result) => send({ seq: msg.seq, ok: true, ...result }),
    (error) => send({ seq: msg.seq, ok: false, error: { name: error.name, code: error.code, message: error.message } }),
  );
}).on('close', () => process.exit(0));
send({ ready: true, pid: process.pid });
