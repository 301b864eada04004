#!/usr/bin/env bash
# Packs session-flock and installs the tarball into new projects while no C compiler,
# make or Python is reachable:
#   1. a normal install: proves nothing was compiled, runs an ESM, a CJS and a TypeScript
#      consumer (tsc with moduleResolution node16, and a node10 type check);
#   2. an install with --ignore-scripts (pnpm 10, Bun and npm's allowScripts skip dependency
#      install scripts): the prebuild loads all the same;
#   3. a tarball without prebuilds: the normal install fails with the paths tried (not a
#      compiler error); with --ignore-scripts it installs, imports, and the first use
#      fails with ERR_SESSION_FLOCK_NO_BINDING;
# then checks the tarball's types with arethetypeswrong's default profile (node10, node16
# CJS and ESM, bundler). Expects prebuilds/ to be built already (`npm run prebuildify`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$ROOT"
npm run build:ts >/dev/null
ls prebuilds/*/ >/dev/null 2>&1 || { echo "no prebuilds/: run npm run prebuildify first" >&2; exit 1; }
TARBALL="$WORK/$(npm pack --silent --pack-destination "$WORK")"
echo "packed $(basename "$TARBALL") ($(du -k "$TARBALL" | cut -f1) KiB)"
BARE="$WORK/bare"; mkdir -p "$BARE/src"
cp -r package.json README.md binding.gyp native dist scripts "$BARE/src"/
cp LICENSE CHANGELOG.md SECURITY.md "$BARE/src"/
BARE_TARBALL="$BARE/$(cd "$BARE/src" && npm pack --silent --ignore-scripts --pack-destination "$BARE")"  # --ignore-scripts: past prepack's refusal
echo "packed $(basename "$BARE_TARBALL") without prebuilds"

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

# new_app DIR: an empty project holding the consumer files.
new_app() {
  mkdir -p "$1"
  cp "$ROOT"/test/consumer/* "$1"/
  echo '{ "name": "consumer", "private": true }' > "$1/package.json"
}
# install DIR npm-args...: npm install in DIR with no compiler on PATH.
install() {
  local dir="$1"; shift
  (cd "$dir" && PATH="$BIN" HOME="$WORK/home" npm_config_update_notifier=false npm_config_cache="${npm_config_cache:-$HOME/.npm}" \
    npm install --no-audit --no-fund "$@")
}
RUN="$WORK/run"; mkdir -p "$RUN"

echo "1. installing the tarball with no compiler on PATH"
APP="$WORK/app"; new_app "$APP"
install "$APP" "$TARBALL" typescript@5 @types/node@20
test ! -e "$APP/node_modules/session-flock/build" || { echo "node_modules/session-flock/build exists: something compiled" >&2; exit 1; }
echo "no build/ folder: the prebuild was used"
(cd "$APP"
  PATH="$BIN" node cjs.cjs "$RUN"
  PATH="$BIN" node esm.mjs "$RUN"
  PATH="$BIN" node node_modules/typescript/bin/tsc -p tsconfig.json
  PATH="$BIN" node out/typed.js "$RUN"
  PATH="$BIN" node node_modules/typescript/bin/tsc -p tsconfig.node10.json && echo "node10 types ok")

echo "2. installing the tarball with --ignore-scripts (no install script runs)"
APP2="$WORK/app-no-scripts"; new_app "$APP2"
install "$APP2" --ignore-scripts "$TARBALL"
(cd "$APP2" && PATH="$BIN" node cjs.cjs "$RUN" && PATH="$BIN" node esm.mjs "$RUN")

echo "3. a tarball without prebuilds"
APP3="$WORK/app-bare"; new_app "$APP3"
if install "$APP3" "$BARE_TARBALL" >"$WORK/bare-install.log" 2>&1; then
  cat "$WORK/bare-install.log" >&2; echo "installing without a prebuild or a compiler succeeded" >&2; exit 1
fi
grep -q 'Paths tried:' "$WORK/bare-install.log" && grep -q 'A build from source was not attempted' "$WORK/bare-install.log" \
  || { cat "$WORK/bare-install.log" >&2; echo "the failed install did not list the paths tried" >&2; exit 1; }
echo "the install failed with the paths tried, as it should"
install "$APP3" --ignore-scripts "$BARE_TARBALL"
(cd "$APP3" && PATH="$BIN" node no-binding.mjs "$RUN")

echo "4. the docs' install commands (\`sh\` blocks of README.md and docs/), with npm install session-flock taking this tarball"
DOCS="$WORK/docs"; new_app "$DOCS"
node "$ROOT/scripts/doc-blocks.mjs" sh | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    for (const b of JSON.parse(s)) process.stdout.write(`echo "+ ${b.file}:${b.line}"\n${b.code}`);
  });' > "$WORK/doc-blocks.sh"
grep -q 'npm install session-flock' "$WORK/doc-blocks.sh" || { echo "the docs show no npm install session-flock" >&2; exit 1; }
(cd "$DOCS" && PATH="$BIN" HOME="$WORK/home" npm_config_update_notifier=false npm_config_cache="${npm_config_cache:-$HOME/.npm}" SF_TARBALL="$TARBALL" bash -euo pipefail -c '
  # The registry name is this build: what would be published is this tarball.
  npm() { if [ "$1 ${2:-}" = "install session-flock" ]; then shift 2; command npm install --no-audit --no-fund "$SF_TARBALL" "$@"; else command npm "$@"; fi; }
  source "$0"' "$WORK/doc-blocks.sh")
(cd "$DOCS" && PATH="$BIN" node -e "require('session-flock'); import('session-flock').then(() => console.log('the docs install gives an importable package'))")

echo "checking the package's types for every resolver (arethetypeswrong, default profile)"
node "$ROOT/node_modules/@arethetypeswrong/cli/dist/index.js" "$TARBALL"
echo "consumer test passed"
