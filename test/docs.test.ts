// Every code block of README.md and docs/ runs here, so the docs cannot drift from the code:
// - `ts` blocks are type-checked (strict, node16) against the built package's types;
// - `js` blocks run as ES modules against the built package;
// - `console` blocks are transcripts: each `$ ` command runs with the built CLI as
//   `session-flock` / `npx session-flock`, must print what the transcript shows (stdout
//   and stderr together; numbers, the folder and column spacing may differ) and must exit
//   with the status the block's `exit=N` flag gives (0 by default);
// - a `sample=<script>[:<argument>]` block (`console` or `text`) is a sample of what is
//   printed in a scene nobody can type in one line (holders, waiters, a killed holder, a
//   leak): the script sets the scene up for real and prints the output, which must match
//   the block (`node scripts/<script> [<argument>] --write` rewrites the block);
// - `sh repo` blocks are the contributor's commands: `.ci/run` must run each of them;
// - `sh` blocks (what a user types to install) run in scripts/test-consumer.sh, where
//   `npm install session-flock` installs the packed tarball;
// - `text` blocks are output, not code.
// Every relative link and #anchor between them must resolve, too.
// Blocks run as written in a fresh, empty folder where `session-flock` is installed.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ES module shared with scripts/test-consumer.sh
import { codeBlocks, consoleSteps, normalizeOutput } from '../scripts/doc-blocks.mjs';
import { root, tempDir } from './helpers';

interface CodeBlock {
  file: string;
  line: number;
  lang: string;
  flags: string[];
  code: string;
}
const blocks: CodeBlock[] = codeBlocks();
const where = (block: CodeBlock): string => `${block.file}:${block.line}`;
const of = (lang: string, flag?: string): CodeBlock[] =>
  blocks.filter((b) => b.lang === lang && (flag === undefined ? !b.flags.includes('repo') : b.flags.includes(flag)));
const KNOWN = new Set(['ts', 'js', 'console', 'sh', 'text']);

/** A folder where `session-flock` resolves to this build, as if installed from npm. */
function project(): string {
  const dir = tempDir();
  const modules = path.join(dir, 'node_modules');
  fs.mkdirSync(path.join(modules, '@types'), { recursive: true });
  fs.mkdirSync(path.join(modules, '.bin'));
  fs.symlinkSync(root, path.join(modules, 'session-flock'));
  fs.symlinkSync(path.join(root, 'node_modules', '@types', 'node'), path.join(modules, '@types', 'node'));
  for (const peer of ['pg', '@types/pg']) {
    if (fs.existsSync(path.join(root, 'node_modules', peer))) fs.symlinkSync(path.join(root, 'node_modules', peer), path.join(modules, peer));
  }
  const { bin } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  for (const [name, file] of Object.entries(bin)) fs.symlinkSync(path.join(root, file), path.join(modules, '.bin', name));
  fs.writeFileSync(path.join(dir, 'package.json'), '{ "name": "docs", "private": true, "type": "module" }\n');
  return dir;
}

describe('documentation code blocks', () => {
  it('every block has a language this test knows how to run', () => {
    const unknown = blocks.filter((b) => !KNOWN.has(b.lang)).map((b) => `${where(b)} \`\`\`${b.lang}`);
    expect(unknown).toEqual([]);
    expect(blocks.length).toBeGreaterThan(0);
  });

  it('TypeScript blocks type-check against the built package', () => {
    const ts = of('ts');
    expect(ts.length).toBeGreaterThan(0);
    const dir = project();
    const files = ts.map((block, i) => {
      const name = `block${i}.ts`;
      fs.writeFileSync(path.join(dir, name), block.code);
      return name;
    });
    fs.writeFileSync(
      path.join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          lib: ['ES2022', 'ESNext.Disposable'],
          module: 'node16',
          moduleResolution: 'node16',
          strict: true,
          noEmit: true,
          types: ['node'],
          skipLibCheck: false,
        },
        files,
      }),
    );
    const tsc = spawnSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { cwd: dir, encoding: 'utf8' });
    const report = tsc.stdout.replace(/block(\d+)\.ts/g, (_, i: string) => where(ts[Number(i)]));
    expect(report).toBe('');
    expect(tsc.status).toBe(0);
  });

  for (const block of of('js')) {
    it(`JavaScript block at ${where(block)} runs`, () => {
      const dir = project();
      fs.writeFileSync(path.join(dir, 'block.mjs'), block.code);
      const run = spawnSync(process.execPath, ['block.mjs'], { cwd: dir, encoding: 'utf8', timeout: 30_000 });
      expect(run.stderr).not.toMatch(/Error/);
      expect({ status: run.status, signal: run.signal }).toEqual({ status: 0, signal: null });
    });
  }

  for (const block of of('console').filter((b) => !b.flags.some((f) => f.startsWith('sample=')))) {
    const expected = Number(/^exit=(\d+)$/.exec(block.flags.find((f) => f.startsWith('exit=')) ?? 'exit=0')![1]);
    it(`console transcript at ${where(block)} runs and prints what it shows (exit ${expected})`, () => {
      const steps: { command: string; output: string }[] = consoleSteps(block.code);
      expect(steps.length).toBeGreaterThan(0);
      const dir = project();
      const env = { ...process.env, PATH: `${path.join(dir, 'node_modules', '.bin')}${path.delimiter}${process.env.PATH}` };
      steps.forEach(({ command, output }, i) => {
        // One pipe for both streams keeps their order, as a terminal shows them.
        const run = spawnSync('bash', ['-c', `exec 2>&1\n${command}`], { cwd: dir, env, encoding: 'utf8', timeout: 30_000 });
        const last = i === steps.length - 1;
        expect({ command, status: run.status, output: normalizeOutput(run.stdout, fs.realpathSync(dir)) }).toEqual({
          command,
          status: last ? expected : 0,
          output: normalizeOutput(output),
        });
      });
    });
  }

  for (const block of blocks.filter((b) => b.flags.some((f) => f.startsWith('sample=')))) {
    const [script, ...args] = block.flags.find((f) => f.startsWith('sample='))!.slice('sample='.length).split(':');
    it.runIf(process.platform === 'linux')(`sample output at ${where(block)} is what scripts/${[script, ...args].join(' ')} prints`, () => {
      const run = spawnSync(process.execPath, [path.join(root, 'scripts', script), ...args], { encoding: 'utf8', timeout: 60_000 });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      expect(normalizeOutput(run.stdout)).toBe(normalizeOutput(block.code));
    });
  }

  it("the README's size of the source maps is what dist/ holds", () => {
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
    expect(readme).toContain('source maps\n(about half of `dist/`, around 100 KB of the compressed download)');
    const files = (fs.readdirSync(path.join(root, 'dist'), { recursive: true }) as string[]).map((f) => path.join(root, 'dist', f)).filter((f) => fs.statSync(f).isFile());
    const maps = files.filter((f) => f.endsWith('.map'));
    const size = (list: string[]): number => list.reduce((sum, f) => sum + fs.statSync(f).size, 0);
    const share = size(maps) / size(files);
    expect(share, 'about half').toBeGreaterThan(0.4);
    expect(share, 'about half').toBeLessThan(0.6);
    // What the maps add to the tarball, which gzips its files as one stream.
    const compressed = zlib.gzipSync(Buffer.concat(maps.sort().map((f) => fs.readFileSync(f)))).length;
    expect(compressed, 'around 100 KB').toBeGreaterThan(70_000);
    expect(compressed, 'around 100 KB').toBeLessThan(150_000);
  });

  it('every relative link and #anchor of the docs resolves', () => {
    const slug = (heading: string): string => heading.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-');
    const prose = (file: string): string => fs.readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
    const files = [...new Set(blocks.map((b) => b.file)), 'README.md', ...fs.readdirSync(path.join(root, 'docs')).map((f) => `docs/${f}`)];
    const broken: string[] = [];
    for (const file of new Set(files)) {
      for (const [, link] of prose(path.join(root, file)).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(link)) continue;
        const [target, anchor] = link.split('#');
        const resolved = target ? path.join(path.dirname(path.join(root, file)), target) : path.join(root, file);
        if (!fs.existsSync(resolved)) broken.push(`${file}: ${link} (no such file)`);
        else if (anchor && resolved.endsWith('.md') && ![...prose(resolved).matchAll(/^#+ (.*)$/gm)].some(([, h]) => slug(h) === anchor)) {
          broken.push(`${file}: ${link} (no such heading)`);
        }
      }
    }
    expect(broken).toEqual([]);
  });
});
