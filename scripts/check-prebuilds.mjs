// `prepack` (so `npm pack` and `npm publish`): refuses to make a tarball that users could
// only install with a compiler. It needs the compiled JavaScript and at least the linux-x64
// glibc prebuild, and names the command that makes whatever is missing. It builds nothing
// itself: the prebuilds come from several machines (see docs/development.md, "Prebuilds").
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const prebuilds = path.join(root, 'prebuilds');

// ELF e_machine values, so that an x64 folder holding some other build is caught.
const ELF_MACHINE = { x64: 0x3e, arm64: 0xb7 };

/** The libc a prebuild's file name is tagged with (node-gyp-build's tags), or null for none. */
function libcTag(file) {
  return file.split('.').find((tag) => tag === 'glibc' || tag === 'musl') ?? null;
}

/** Why a linux prebuild cannot be loaded there, or null when it looks right. */
function elfProblem(file, arch) {
  const header = Buffer.alloc(20);
  const fd = fs.openSync(file, 'r');
  try {
    fs.readSync(fd, header, 0, header.length, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (header.readUInt32BE(0) !== 0x7f454c46) return 'is not an ELF shared object';
  if (header.readUInt16LE(18) !== ELF_MACHINE[arch]) return `is not built for ${arch}`;
  return null;
}

/** The prebuilds for a platform-arch folder: [{ file, libc }]. */
function binaries(platformArch) {
  const dir = path.join(prebuilds, platformArch);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.node'))
    .map((f) => ({ file: path.join(dir, f), libc: libcTag(f) }));
}

const problems = [];
if (!fs.existsSync(path.join(root, 'dist', 'cjs', 'index.js')) || !fs.existsSync(path.join(root, 'dist', 'esm', 'index.mjs'))) {
  problems.push('dist/ (the compiled JavaScript) is missing: run `npm run build:ts`');
}
// An untagged Linux prebuild also loads on musl, where a glibc build fails: it must say glibc.
const linuxX64 = binaries('linux-x64').filter((b) => b.libc === 'glibc');
if (linuxX64.length === 0) {
  problems.push(
    'prebuilds/linux-x64/ holds no glibc-tagged binary (such as session-flock.glibc.node): ' +
      'run `npm run prebuildify` on a linux-x64 glibc machine (it also cross-builds win32-x64 and linux-arm64)',
  );
}
for (const { file } of linuxX64) {
  const problem = elfProblem(file, 'x64');
  if (problem !== null) problems.push(`${path.relative(root, file)} ${problem}: run \`npm run prebuildify\` again`);
}

if (problems.length > 0) {
  process.stderr.write(`session-flock will not be packed without its binaries:\n${problems.map((p) => `  - ${p}\n`).join('')}`);
  process.exit(1);
}

const present = fs.existsSync(prebuilds)
  ? fs.readdirSync(prebuilds).filter((d) => binaries(d).length > 0).sort()
  : [];
// The release workflow adds darwin-arm64, darwin-x64 and linux-x64 musl; a local pack may lack them.
process.stderr.write(`prebuilds: ${present.join(', ')}\n`);
