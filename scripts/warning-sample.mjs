// The README's sample process warnings ("Warnings"), made for real:
// `node scripts/warning-sample.mjs long-hold|leak` runs a small program that takes a lock
// and holds it too long, or drops it while held, and prints the warning Node prints, with
// the program's folder shown as /tmp/warn and the stack cut after the program's own frames.
// test/docs.test.ts checks that the README shows it; `--write` puts it into README.md.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSample } from './doc-blocks.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

// The line and column numbers in the README's stacks are these programs' own.
const programs = {
  'long-hold': {
    file: 'lh.js',
    args: [],
    code: `const { acquire } = require('session-flock');
async function compactTranscript() {
  const lock = await acquire('s.jsonl', { maxHoldMs: 200 });
  setTimeout(() => lock.release(), 400);
}
compactTranscript();
`,
  },
  leak: {
    file: 'leak.js',
    args: ['--expose-gc'],
    code: `const { acquire } = require('session-flock');
async function appendTurn() {
  await acquire('t.jsonl');
}
appendTurn().then(() => {
  // The leak watch starts on the next turn; collect until the finalizer has run.
  const timer = setInterval(() => globalThis.gc(), 20);
  process.on('warning', () => clearInterval(timer));
});
`,
  },
};

const which = process.argv[2];
const program = programs[which];
if (program === undefined) throw new Error(`usage: warning-sample.mjs ${Object.keys(programs).join('|')} [--write]`);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-flock-warn-'));
let output;
try {
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(root, path.join(dir, 'node_modules', 'session-flock'), 'junction');
  fs.writeFileSync(path.join(dir, program.file), program.code);
  const run = spawnSync(process.execPath, [...program.args, program.file], { cwd: dir, encoding: 'utf8', timeout: 20_000 });
  if (run.status !== 0) throw new Error(`${program.file} exited with ${run.status}: ${run.stderr}`);
  const lines = run.stderr.split(dir).join('/tmp/warn').split('\n');
  const first = lines.findIndex((l) => /^\(node:\d+\) \[SESSION_FLOCK_/.test(l));
  if (first === -1) throw new Error(`no warning from ${program.file}: ${run.stderr}`);
  const own = [];
  for (const line of lines.slice(first + 1)) {
    if (!line.includes(`/tmp/warn/${program.file}:`)) break;
    own.push(line);
  }
  output = [lines[first], ...own, '    ...'].join('\n') + '\n';
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}

if (process.argv.includes('--write')) writeSample('text', `warning-sample.mjs:${which}`, output);
else process.stdout.write(output);
