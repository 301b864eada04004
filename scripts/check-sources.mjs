// Fails when CMakeLists.txt and binding.gyp name different native/ sources.
// binding.gyp is JSON-with-comments-free Python literal syntax; here it is plain JSON.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { root, sourceList } from './lib/native-sources.mjs';

const gyp = JSON.parse(readFileSync(join(root, 'binding.gyp'), 'utf8').replace(/#.*$/gm, ''));
const target = gyp.targets.find((t) => t.target_name === 'session_flock');
if (!target) throw new Error('binding.gyp: no session_flock target');
const gypSets = { binding: new Set(target.sources), posix: new Set(), win32: new Set() };
for (const [cond, then, otherwise] of target.conditions ?? []) {
  if (cond !== "OS=='win'") {
    // Other conditions (warnings as errors in CI) only change flags.
    if (then?.sources || otherwise?.sources) throw new Error(`binding.gyp: sources under the condition ${cond}`);
    continue;
  }
  for (const s of then?.sources ?? []) gypSets.win32.add(s);
  for (const s of otherwise?.sources ?? []) gypSets.posix.add(s);
}

const list = (name) => new Set(sourceList(name));
const cmakeSets = {
  // binding.gyp's common list is CMake's binding list plus the platform-neutral core files.
  binding: new Set([...list('SF_BINDING_SOURCES'), ...list('SF_SHARED_SOURCES')]),
  posix: list('SF_POSIX_SOURCES'),
  win32: list('SF_WIN32_SOURCES'),
};

let bad = 0;
for (const key of Object.keys(gypSets)) {
  const a = [...gypSets[key]].sort().join(' ');
  const b = [...cmakeSets[key]].sort().join(' ');
  if (a !== b) {
    console.error(`source lists drift (${key}): binding.gyp [${a}] vs CMakeLists.txt [${b}]`);
    bad++;
  }
}
// Every native/*.c must be built by someone.
const all = new Set([...gypSets.binding, ...gypSets.posix, ...gypSets.win32]);
for (const f of (await import('node:fs')).readdirSync(join(root, 'native'))) {
  if (f.endsWith('.c') && !all.has(`native/${f}`)) {
    console.error(`native/${f} is in no source list`);
    bad++;
  }
}
if (bad) process.exit(1);
console.log('check-sources: binding.gyp and CMakeLists.txt agree');
