// Reads the FEATURES lines of the runtime suites on stdin and fails unless the README's
// "Bun and Deno" table says the same: each row's first word per runtime column, and the
// runtime versions in the header.  Usage: ... | node check-readme.mjs README.md
import { readFileSync } from 'node:fs';

const rows = {
  // suite feature key -> the start of its row's first cell in the README table
  cjsRequire: 'CJS `require`',
  envCleanupHook: 'Worker terminated while holding',
  workers: 'Worker terminated mid-wait',
  finalizationRegistry: 'Leak release by GC',
  emitWarning: 'Warnings',
  diagnosticsChannel: '`diagnostics_channel`',
  nodeDebug: '`NODE_DEBUG=session-flock`',
  permissions: 'Permission flags',
};
const names = { node: 'Node', bun: 'Bun', deno: 'Deno' };

const readme = readFileSync(process.argv[2], 'utf8');
const section = readme.split(/^## /m).find((s) => s.startsWith('Bun and Deno'));
if (!section) throw new Error('README has no "## Bun and Deno" section');
const table = section.split('\n').filter((line) => line.startsWith('|')).map((line) => line.split('|').slice(1, -1).map((c) => c.trim()));
const [header] = table;
const runs = readFileSync(0, 'utf8').trim().split('\n').map((line) => JSON.parse(line.replace(/^FEATURES /, '')));
const problems = [];
for (const run of runs) {
  const column = header.findIndex((cell) => cell.startsWith(names[run.runtime]));
  if (column < 0) {
    problems.push(`no ${names[run.runtime]} column`);
    continue;
  }
  if (run.runtime !== 'node' && header[column] !== `${names[run.runtime]} ${run.version}`) {
    problems.push(`header says "${header[column]}", the run was ${names[run.runtime]} ${run.version}`);
  }
  for (const [key, label] of Object.entries(rows)) {
    const row = table.find((cells) => cells[0].startsWith(label));
    if (!row) {
      problems.push(`no row "${label}"`);
      continue;
    }
    const said = row[column].split(/[\s,(;:]/)[0].toLowerCase();
    if (said !== run.features[key]) problems.push(`${label} / ${names[run.runtime]}: README says "${said}", the run showed "${run.features[key]}"`);
  }
}
if (runs.length === 0) problems.push('no FEATURES lines on stdin');
if (problems.length) {
  console.error(`README runtime table differs from the runs:\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
console.log(`README runtime table matches the ${runs.map((r) => r.runtime).join(', ')} runs`);
