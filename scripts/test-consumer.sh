#!/usr/bin/env bash
# Packs session-flock, installs the tarball into a new project while no C compiler,
# make or Python is reachable, proves nothing was compiled, and runs an ESM, a CJS and
# a type-checked TypeScript consumer from it. Expects prebuilds/ to be built already
# (`npm run prebuildify`). Set SF_CONSUMER_DROP_PREBUILDS=1 to pack without them and
# watch the install fail with the "paths tried" error instead of a compiler error.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$ROOT"
npm run build:ts >/dev/null
ls prebuilds/*/ >/dev/null 2>&1 || { echo "no prebuilds/: run npm run prebuildify first" >&2; exit 1; }
PACKROOT="$ROOT"
if [ "${SF_CONSUMER_DROP_PREBUILDS:-}" = 1 ]; then
  PACKROOT="$WORK/src"; mkdir -p "$PACKROOT"
  cp -r package.json README.md binding.gyp native dist scripts "$PACKROOT"/
  [ -f CMakeLists.txt ] && cp -r CMakeLists.txt cmake "$PACKROOT"/
fi
TARBALL="$(cd "$PACKROOT" && npm pack --silent --pack-destination "$WORK")"
echo "packed $TARBALL ($(du -k "$WORK/$TARBALL" | cut -f1) KiB)"

# A PATH with every tool but the compilers, make and Python.
BIN="$WORK/bin"; mkdir -p "$BIN"
for dir in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin "$(dirname "$(command -v node)")"; do
  [ -d "$dir" ] || continue
  for tool in "$dir"/*; do
    name="$(basename "$tool")"
    case "$name" in
      cc|gcc|g++|c++|clang|clang++|cpp|make|gmake|python|python3|python3.*|*-gcc|*-gcc-*|*-g++|*-g++-*|gcc-*|g++-*|x86_64-linux-gnu-*|aarch64-linux-gnu-*|cmake) continue ;;
    esac
    [ -e "$BIN/$name" ] || ln -s "$tool" "$BIN/$name"
  done
done
if PATH="$BIN" command -v cc gcc make python3 >/dev/null 2>&1; then echo "a compiler is still reachable" >&2; exit 1; fi

APP="$WORK/app"; mkdir -p "$APP"
cp "$ROOT"/test/consumer/* "$APP"/
cd "$APP"
echo '{ "name": "consumer", "private": true }' > package.json
echo "installing the tarball with no compiler on PATH"
PATH="$BIN" HOME="$WORK/home" npm_config_update_notifier=false npm_config_cache="${npm_config_cache:-$HOME/.npm}" \
  npm install --no-audit --no-fund "$WORK/$TARBALL" typescript@5 @types/node@20
test ! -e node_modules/session-flock/build || { echo "node_modules/session-flock/build exists: something compiled" >&2; exit 1; }
echo "no build/ folder: the prebuild was used"

RUN="$WORK/run"; mkdir -p "$RUN"
PATH="$BIN" node cjs.cjs "$RUN"
PATH="$BIN" node esm.mjs "$RUN"
PATH="$BIN" node node_modules/typescript/bin/tsc -p tsconfig.json
PATH="$BIN" node out/typed.js "$RUN"

echo "checking the package's types for ESM and CJS consumers (arethetypeswrong)"
cd "$ROOT"
node node_modules/@arethetypeswrong/cli/dist/index.js "$WORK/$TARBALL" --profile node16
echo "consumer test passed"
