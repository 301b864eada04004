// Fails when src/ breaks its layering (docs/development.md, "Layout") or has a circular
// import. Layers, bottom up: core/ (knows no backend), then the backends file/ and
// postgres/ (each knows only core/), then adapters/ and the public entry points
// (src/*.ts), then cli/. A module may import its own layer folder and the layers below
// it. Inside core/, the seam (core/backend.ts) is the floor: it imports nothing of core
// but the error types. Circles are checked over every import, `import type` included: a
// circle of types is still two files that cannot be read one without the other.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');

const allowed = {
  core: ['core'],
  file: ['core', 'file'],
  postgres: ['core', 'postgres'],
  adapters: ['core', 'file', 'postgres', 'adapters'],
  '.': ['core', 'file', 'postgres', 'adapters', '.'],
  cli: ['core', 'file', 'postgres', 'adapters', 'cli', '.'],
};
/** Modules whose imports are limited further than their layer's. */
const floors = {
  'core/backend': ['core/errors'],
};

const layerOf = (module) => (module.includes('/') ? module.slice(0, module.indexOf('/')) : '.');

const modules = readdirSync(src, { recursive: true })
  .map(String)
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
  .map((f) => f.split('\\').join('/').replace(/\.ts$/, ''));
const known = new Set(modules);

const problems = [];
const edges = new Map();
const importRe = /^\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?'(\.[^']*)'/gm;
for (const module of modules) {
  const text = readFileSync(join(src, `${module}.ts`), 'utf8');
  const layer = layerOf(module);
  if (!(layer in allowed)) problems.push(`src/${module}.ts: folder ${layer}/ is not a known layer`);
  const targets = new Set();
  for (const [, spec] of text.matchAll(importRe)) {
    let target = posix.normalize(posix.join(posix.dirname(module), spec));
    if (!known.has(target) && known.has(`${target}/index`)) target = `${target}/index`;
    if (!known.has(target)) {
      problems.push(`src/${module}.ts imports '${spec}', which is no module under src/`);
      continue;
    }
    const targetLayer = layerOf(target);
    if (!(allowed[layer] ?? []).includes(targetLayer)) {
      problems.push(`src/${module}.ts (${layer === '.' ? 'entry point' : `${layer}/`}) imports src/${target}.ts (${targetLayer === '.' ? 'entry point' : `${targetLayer}/`})`);
    }
    if (floors[module] !== undefined && !floors[module].includes(target)) {
      problems.push(`src/${module}.ts is a floor (it may import only ${floors[module].join(', ')}) but imports src/${target}.ts`);
    }
    targets.add(target);
  }
  edges.set(module, [...targets]);
}

// Every elementary circle would be too many to read: one circle per back edge of a
// depth-first search is reported, which is none exactly when there is no circle.
const state = new Map();
const stack = [];
function visit(module) {
  state.set(module, 'open');
  stack.push(module);
  for (const next of edges.get(module) ?? []) {
    if (state.get(next) === 'open') problems.push(`circular import: ${[...stack.slice(stack.indexOf(next)), next].map((m) => `src/${m}.ts`).join(' -> ')}`);
    else if (!state.has(next)) visit(next);
  }
  stack.pop();
  state.set(module, 'done');
}
for (const module of modules) if (!state.has(module)) visit(module);

if (problems.length > 0) {
  for (const p of problems) console.error(`check-layers: ${p}`);
  process.exit(1);
}
console.log(`check-layers: ${modules.length} modules under ${relative(root, src)}/ keep their layers, no circular imports (type imports included)`);
