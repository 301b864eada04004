// The native/ source lists, read from CMakeLists.txt: the one place that names them for
// every build that node-gyp does not make (the cross builds, the C tests, the darwin build).
// scripts/check-sources.mjs keeps binding.gyp in step with them.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The files of `set(NAME ...)` in CMakeLists.txt, e.g. sourceList('SF_POSIX_SOURCES'). */
export function sourceList(name) {
  const cmake = readFileSync(join(root, 'CMakeLists.txt'), 'utf8');
  const m = cmake.match(new RegExp(`set\\(${name}\\s+([^)]*)\\)`));
  if (!m) throw new Error(`CMakeLists.txt: no set(${name} ...)`);
  return m[1].split(/\s+/).filter(Boolean);
}

/** Every source of the addon on a POSIX system: the Node-API glue, the shared core, the flock(2) core. */
export function posixAddonSources() {
  return [...sourceList('SF_BINDING_SOURCES'), ...sourceList('SF_SHARED_SOURCES'), ...sourceList('SF_POSIX_SOURCES')];
}
