// Compiles src/ to CommonJS (dist/cjs) and adds thin ESM entry points that
// re-export it, so ESM and CJS consumers share one module instance.
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
// dist/ is overwritten in place (not deleted first) so that a process using it meanwhile keeps working.
rmSync(join(root, 'dist', 'esm'), { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
writeFileSync(join(root, 'dist', 'cjs', 'package.json'), '{ "type": "commonjs" }\n');

// Each public entry: its export names are read from the compiled CJS module.
const entries = ['index', 'session-write-lock'].filter((name) => existsSync(join(root, 'dist', 'cjs', `${name}.js`)));
mkdirSync(join(root, 'dist', 'esm'), { recursive: true });
for (const name of entries) {
  const names = Object.keys(require(join(root, 'dist', 'cjs', `${name}.js`))).filter((n) => n !== 'default' && n !== '__esModule');
  writeFileSync(
    join(root, 'dist', 'esm', `${name}.mjs`),
    `import cjs from '../cjs/${name}.js';\nexport const { ${names.join(', ')} } = cjs;\n`,
  );
  writeFileSync(join(root, 'dist', 'esm', `${name}.d.mts`), `export * from '../cjs/${name}.js';\n`);
}
const cli = join(root, 'dist', 'cjs', 'cli.js');
if (existsSync(cli)) chmodSync(cli, 0o755);
