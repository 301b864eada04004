// The fenced code blocks of the Markdown docs (README.md and docs/), for the doc tests.
// As a command: `node scripts/doc-blocks.mjs <lang>` prints those blocks as JSON.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Every fenced block of README.md and docs/**.md: `{ file, line, lang, flags, code }`,
 * where `lang` is the info string's first word and `flags` the rest (`console exit=1`).
 */
export function codeBlocks() {
  const blocks = [];
  for (const file of markdownFiles([path.join(root, 'README.md'), path.join(root, 'docs')])) {
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      const open = /^(\s*)(```+)(.*)$/.exec(lines[i]);
      if (open === null) continue;
      const [, indent, fence, info] = open;
      const body = [];
      let j = i + 1;
      for (; j < lines.length && !lines[j].startsWith(indent + fence); j++) body.push(lines[j].slice(indent.length));
      const [lang = '', ...flags] = info.trim().split(/\s+/).filter(Boolean);
      blocks.push({ file: path.relative(root, file), line: i + 1, lang, flags, code: body.join('\n') + '\n' });
      i = j;
    }
  }
  return blocks;
}

function markdownFiles(paths) {
  const files = [];
  for (const p of paths) {
    if (!fs.existsSync(p)) continue;
    if (fs.statSync(p).isDirectory()) files.push(...markdownFiles(fs.readdirSync(p).sort().map((name) => path.join(p, name))));
    else if (p.endsWith('.md')) files.push(p);
  }
  return files;
}

/**
 * The steps of a `console` transcript: `{ command, output }` for each line starting with
 * `$ ` (`\` continuations joined), where output is the lines up to the next command.
 */
export function consoleSteps(code) {
  const steps = [];
  let current = null;
  let open = false;
  for (const line of code.replace(/\n$/, '').split('\n')) {
    if (open) current.command += '\n' + line;
    else if (line.startsWith('$ ')) steps.push((current = { command: line.slice(2), output: '' }));
    else if (current !== null) current.output += line + '\n';
    else continue;
    open = current.command.endsWith('\\') && !current.output;
  }
  return steps;
}

/**
 * A transcript's output with what differs from run to run made alike: the project folder
 * (`/tmp/docdemo` in the docs), numbers (pids, times, sizes) and the spaces that align
 * table columns around them.
 */
export function normalizeOutput(text, dir) {
  let out = text;
  if (dir) out = out.split(dir).join('/tmp/docdemo');
  return out
    .replace(/\d+/g, 'N')
    .replace(/[ \t]+/g, ' ')
    .replace(/ +$/gm, '')
    .trim();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const lang = process.argv[2];
  process.stdout.write(JSON.stringify(codeBlocks().filter((b) => b.lang === lang && !b.flags.includes('repo'))) + '\n');
}

/**
 * For the sample scripts' `--write`: replaces the body of README.md's block whose info
 * string is `<lang> sample=<sample>` with `body`.
 */
export function writeSample(lang, sample, body) {
  const readme = path.join(root, 'README.md');
  const text = fs.readFileSync(readme, 'utf8');
  const fence = `\`\`\`${lang} sample=${sample}\n`;
  const start = text.indexOf(fence);
  if (start === -1) throw new Error(`README.md has no ${fence.trim()} block`);
  const end = text.indexOf('```\n', start + fence.length);
  fs.writeFileSync(readme, text.slice(0, start + fence.length) + body + text.slice(end));
}
