// Compiles src/ to CommonJS (dist/cjs) and adds thin ESM entry points that
// re-export it, so ESM and CJS consumers share one module instance.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync, chmodSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
// dist/ is overwritten in place (not deleted first) so that a process using it meanwhile keeps working.
rmSync(join(root, 'dist', 'esm'), { recursive: true, force: true });
// The addon's interface version has one source, native/interface_version.h: the module
// that src/file/binding.ts checks the loaded addon against is made from it (and ignored by git).
const header = readFileSync(join(root, 'native', 'interface_version.h'), 'utf8');
const version = /^#define SF_INTERFACE_VERSION (\d+)$/m.exec(header)?.[1];
if (version === undefined) throw new Error('native/interface_version.h: no #define SF_INTERFACE_VERSION <n>');
const versionModule = join(root, 'src', 'file', 'interface-version.ts');
const versionText = `// Made by scripts/build-ts.mjs from native/interface_version.h: edit that instead.\n/** The shape of the addon this TypeScript was written against. */\nexport const INTERFACE_VERSION = ${version};\n`;
if (!existsSync(versionModule) || readFileSync(versionModule, 'utf8') !== versionText) writeFileSync(versionModule, versionText);
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.json')], { stdio: 'inherit' });
// Outputs whose source is gone (a module moved or deleted) are removed, so that nothing
// keeps loading a stale copy by its old path.
for (const file of readdirSync(join(root, 'dist', 'cjs'), { recursive: true })) {
  const base = String(file).replace(/(\.d\.ts|\.js\.map|\.js)$/, '');
  if (base === String(file) || existsSync(join(root, 'src', `${base}.ts`))) continue;
  rmSync(join(root, 'dist', 'cjs', String(file)));
}
writeFileSync(join(root, 'dist', 'cjs', 'package.json'), '{ "type": "commonjs" }\n');

// The public entry points: package.json subpath -> module under src/. This list is the one
// place to add one (e.g. './postgres': 'postgres/index'): the ESM wrappers below and
// package.json's "exports" and "typesVersions" (which old resolvers, TypeScript's
// moduleResolution node10, read instead of "exports") are all generated from it. An entry
// whose source does not exist yet is left out.
const PUBLIC_ENTRIES = {
  '.': 'index',
  './session-write-lock': 'adapters/session-write-lock',
  './postgres': 'postgres/index',
};
const entries = Object.entries(PUBLIC_ENTRIES).filter(([, module]) => existsSync(join(root, 'src', `${module}.ts`)));

// Each entry's ESM wrapper re-exports the names read from its compiled CJS module.
for (const [, name] of entries) {
  const names = Object.keys(require(join(root, 'dist', 'cjs', `${name}.js`))).filter((n) => n !== 'default' && n !== '__esModule');
  const esm = join(root, 'dist', 'esm', `${name}.mjs`);
  const cjs = relative(dirname(esm), join(root, 'dist', 'cjs', `${name}.js`)).split(sep).join('/');
  mkdirSync(dirname(esm), { recursive: true });
  writeFileSync(esm, `import cjs from '${cjs}';\nexport const { ${names.join(', ')} } = cjs;\n`);
  writeFileSync(join(root, 'dist', 'esm', `${name}.d.mts`), `export * from '${cjs}';\n`);
}

const packagePath = join(root, 'package.json');
const packageText = readFileSync(packagePath, 'utf8');
const pkg = JSON.parse(packageText);
pkg.exports = {
  ...Object.fromEntries(
    entries.map(([subpath, name]) => [
      subpath,
      {
        import: { types: `./dist/esm/${name}.d.mts`, default: `./dist/esm/${name}.mjs` },
        require: { types: `./dist/cjs/${name}.d.ts`, default: `./dist/cjs/${name}.js` },
      },
    ]),
  ),
  './package.json': './package.json',
};
const typesVersions = {
  '*': Object.fromEntries(entries.filter(([subpath]) => subpath !== '.').map(([subpath, name]) => [subpath.slice(2), [`./dist/cjs/${name}.d.ts`]])),
};
// Beside "types", where a reader looks for it.
const ordered = Object.fromEntries(
  Object.entries(pkg).flatMap(([key, value]) =>
    key === 'typesVersions' ? [] : key === 'types' ? [[key, value], ['typesVersions', typesVersions]] : [[key, value]],
  ),
);
const generated = `${JSON.stringify(ordered, null, 2)}\n`;
if (generated !== packageText) {
  // A build (and so npm test) never changes a tracked file: it only says what to run.
  if (!process.argv.includes('--update-package-json')) {
    console.error('package.json "exports"/"typesVersions" differ from PUBLIC_ENTRIES in scripts/build-ts.mjs: run node scripts/build-ts.mjs --update-package-json and commit package.json');
    process.exit(1);
  }
  writeFileSync(packagePath, generated);
  console.log('package.json: "exports" and "typesVersions" regenerated from PUBLIC_ENTRIES in scripts/build-ts.mjs');
}
const cli = join(root, 'dist', 'cjs', 'cli', 'main.js');
if (existsSync(cli)) chmodSync(cli, 0o755);
