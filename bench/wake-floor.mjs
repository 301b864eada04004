// Node's own handoff floor: no lock at all. Two processes pass a token over a Unix
// socket; the waiter sits on an idle event loop with a pending promise that one byte
// resolves. Same line protocol as worker.mjs's serve mode, so run.mjs times it like a
// lock handoff (release → the waiter's await resumes).
//   node bench/wake-floor.mjs listen|connect <socket path>
// The listening side starts with the token (it "holds the lock" first). Each side prints
// "connected" once the socket is up (the listener prints "ready" before, when listening).
import * as fs from 'node:fs';
import * as net from 'node:net';
import { createInterface } from 'node:readline';

const [role, socketPath] = process.argv.slice(2);
const now = () => process.hrtime.bigint();
const say = (line) => process.stdout.write(`${line}\n`);
const one = Buffer.from([1]);

const socket = await new Promise((resolve, reject) => {
  if (role === 'listen') {
    fs.rmSync(socketPath, { force: true });
    const server = net.createServer((s) => {
      server.close();
      resolve(s);
    });
    server.on('error', reject);
    server.listen(socketPath, () => say('ready'));
  } else {
    const s = net.connect(socketPath, () => resolve(s));
    s.on('error', reject);
  }
});
say('connected');

let haveToken = role === 'listen';
let wake = null;
socket.on('data', (chunk) => {
  for (let i = 0; i < chunk.length; i++) {
    haveToken = true;
    if (wake !== null) {
      const resolve = wake;
      wake = null;
      resolve();
    }
  }
});

const input = createInterface({ input: process.stdin });
for await (const line of input) {
  if (line === 'acquire') {
    const pending = haveToken ? Promise.resolve() : new Promise((resolve) => (wake = resolve));
    say('waiting');
    await pending;
    say(`acquired ${now()}`);
  } else if (line === 'release') {
    const t = now();
    haveToken = false;
    socket.write(one);
    say(`released ${t}`);
  } else if (line === 'exit') process.exit(0);
}
