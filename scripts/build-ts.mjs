// Compiles src/ to CommonJS (dist/cjs) and adds thin ESM entry points that
// re-export it, so ESM and CJS consumers share one module instance.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
// dist/ is overwritten in place (not deleted first) so that a process using it meanwhile keeps working.
rmSync(join(root, 'dist', 'esm'), { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
// Outputs whose source is gone (a module moved or deleted) are removed, so that nothing
// keeps loading a stale copy by its old path.
for (const file of readdirSync(join(root, 'dist', 'cjs'), { recursive: true })) {
  const base = String(file).replace(/(\.d\.ts|\.js\.map|\.js)$/, '');
  if (base === String(file) || existsSync(join(root, 'src', `${base}.ts`))) continue;
  rmSync(join(root, 'dist', 'cjs', String(file)));
}
writeFileSync(join(root, 'dist', 'cjs', 'package.json'), '{ "type": "commonjs" }\n');

// Each public entry (a module under src/, as package.json "exports" names it): its export
// names are read from the compiled CJS module.
const entries = ['index', 'adapters/session-write-lock', 'postgres/index'].filter((name) => existsSync(join(root, 'dist', 'cjs', `${name}.js`)));
for (const name of entries) {
  const names = Object.keys(require(join(root, 'dist', 'cjs', `${name}.js`))).filter((n) => n !== 'default' && n !== '__esModule');
  const esm = join(root, 'dist', 'esm', `${name}.mjs`);
  const cjs = relative(dirname(esm), join(root, 'dist', 'cjs', `${name}.js`)).split(sep).join('/');
  mkdirSync(dirname(esm), { recursive: true });
  writeFileSync(esm, `import cjs from '${cjs}';\nexport const { ${names.join(', ')} } = cjs;\n`);
  writeFileSync(join(root, 'dist', 'esm', `${name}.d.mts`), `export * from '${cjs}';\n`);
}
const cli = join(root, 'dist', 'cjs', 'cli', 'main.js');
if (existsSync(cli)) chmodSync(cli, 0o755);
