#!/usr/bin/env bash
# The package on Bun and Deno (devDependencies `bun` and `deno`, pinned in the lockfile; their
# binaries are the npm registry's @oven/bun-<platform> and @deno/<platform> packages in
# node_modules, never a global install). Packs session-flock, installs the tarball the way
# each runtime's users would — `bun add <tarball>` (Bun blocks dependency install scripts)
# and `deno install` of `npm:session-flock` with nodeModulesDir (Deno ignores them too),
# from a loopback registry that serves the tarball and passes the rest through to the npm
# registry — proves nothing was compiled, runs test/runtimes/suite.mjs under Node, Bun and
# Deno, and checks the README's runtime table against what the runs showed.
# Expects prebuilds/ (`npm run prebuildify`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
WORK="$(mktemp -d)"
REGISTRY_PID=
cleanup() {
  [ -n "$REGISTRY_PID" ] && kill "$REGISTRY_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cd "$ROOT"
npm run build:ts >/dev/null
ls prebuilds/*/ >/dev/null 2>&1 || { echo "no prebuilds/: run npm run prebuildify first" >&2; exit 1; }
TARBALL="$WORK/$(npm pack --silent --pack-destination "$WORK")"
echo "packed $(basename "$TARBALL")"

# The runtimes' binaries come from their platform packages (@oven/bun-<platform>,
# @deno/<platform>), which the npm registry ships like any package. Bun's postinstall moves
# its binary into node_modules/bun/bin (and, if the platform package were missing, would
# fetch that same package's tarball from the npm registry); Deno's only links it. Either
# place will do, so a blocked or skipped postinstall does not matter.
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) BUN_PKG=@oven/bun-linux-x64 DENO_PKG=@deno/linux-x64-glibc ;;
  Linux-aarch64) BUN_PKG=@oven/bun-linux-aarch64 DENO_PKG=@deno/linux-arm64-glibc ;;
  Darwin-arm64) BUN_PKG=@oven/bun-darwin-aarch64 DENO_PKG=@deno/darwin-arm64 ;;
  Darwin-x86_64) BUN_PKG=@oven/bun-darwin-x64 DENO_PKG=@deno/darwin-x64 ;;
  *) echo "no bun/deno platform package known for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
pinned() { node -p "require('./package-lock.json').packages['node_modules/$1'].version"; }
find_runtime() { # <expected version> <candidate>...: the first that runs and says that version
  local want="$1" bin; shift
  for bin in "$@"; do
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | head -1 | grep -qw "$want"; then echo "$bin"; return; fi
  done
  echo "no runtime binary of version $want among: $* (npm install: bun and deno are devDependencies)" >&2
  return 1
}
BUN="$(find_runtime "$(pinned bun)" "$ROOT/node_modules/$BUN_PKG/bin/bun" "$ROOT/node_modules/bun/bin/bun.exe")"
DENO="$(find_runtime "$(pinned deno)" "$ROOT/node_modules/$DENO_PKG/deno" "$ROOT/node_modules/deno/deno")"
NODE="$(command -v node)"
echo "node $("$NODE" --version), bun $("$BUN" --version), $("$DENO" --version | head -1)"
export NO_COLOR=1 DO_NOT_TRACK=1 DENO_NO_UPDATE_CHECK=1 DENO_DIR="$WORK/deno-dir" BUN_INSTALL_CACHE_DIR="$WORK/bun-cache"

scratch() { # <dir>: a consumer project holding the suite's files
  mkdir -p "$1"
  cp "$ROOT"/test/runtimes/*.mjs "$ROOT"/test/runtimes/*.cjs "$1"/
  rm -f "$1/local-registry.mjs" "$1/check-readme.mjs"
}
no_compile() { # <package dir>
  [ -d "$1/prebuilds" ] || { echo "$1 has no prebuilds/" >&2; exit 1; }
  test ! -e "$1/build" || { echo "$1/build exists: something compiled" >&2; exit 1; }
}

echo "== bun add of the tarball (dependency install scripts blocked, as Bun does by default)"
BUN_APP="$WORK/bun-app"; scratch "$BUN_APP"
echo '{ "name": "bun-consumer", "private": true }' > "$BUN_APP/package.json"
(cd "$BUN_APP" && "$BUN" add "$TARBALL")
no_compile "$BUN_APP/node_modules/session-flock"

echo "== deno install of npm:session-flock with nodeModulesDir (from a loopback registry)"
DENO_APP="$WORK/deno-app"; scratch "$DENO_APP"
VERSION="$(node -p "require('./package.json').version")"
echo "{ \"nodeModulesDir\": \"auto\", \"imports\": { \"session-flock\": \"npm:session-flock@$VERSION\" } }" > "$DENO_APP/deno.json"
"$NODE" "$ROOT/test/runtimes/local-registry.mjs" "$TARBALL" > "$WORK/registry.url" &
REGISTRY_PID=$!
for _ in $(seq 1 100); do [ -s "$WORK/registry.url" ] && break; sleep 0.1; done
(cd "$DENO_APP" && NPM_CONFIG_REGISTRY="$(cat "$WORK/registry.url")" "$DENO" install --entrypoint suite.mjs npm:session-flock)
kill "$REGISTRY_PID"; REGISTRY_PID=   # from here on every Deno run is --cached-only
no_compile "$(cd "$DENO_APP/node_modules/session-flock" && pwd -P)"

status=0
run_suite() { # <name> <app dir> <runtime argv prefix json> <with-GC prefix json> <command...>
  local name="$1" app="$2" argv="$3" gc_argv="$4"; shift 4
  mkdir -p "$WORK/files"
  (cd "$app" && SF_NODE="$NODE" SF_RUNTIME_ARGV="$argv" SF_RUNTIME_GC_ARGV="$gc_argv" SF_WORK="$WORK/files" \
    timeout 600 "$@") | tee "$WORK/$name.out" || status=1
}
DENO_RUN="[\"$DENO\",\"run\",\"-A\",\"--cached-only\"]"
DENO_RUN_GC="[\"$DENO\",\"run\",\"-A\",\"--cached-only\",\"--v8-flags=--expose-gc\"]"
run_suite node "$BUN_APP" "[\"$NODE\"]" "[\"$NODE\",\"--expose-gc\"]" "$NODE" suite.mjs
run_suite bun "$BUN_APP" "[\"$BUN\"]" "[\"$BUN\"]" "$BUN" suite.mjs
run_suite deno "$DENO_APP" "$DENO_RUN" "$DENO_RUN_GC" "$DENO" run -A --cached-only suite.mjs

echo "== README runtime table against what the runs showed"
grep -h '^FEATURES ' "$WORK"/node.out "$WORK"/bun.out "$WORK"/deno.out | "$NODE" "$ROOT/test/runtimes/check-readme.mjs" "$ROOT/README.md" || status=1
counts="$(grep -hE '^(node|bun|deno): [0-9]+ passed, [0-9]+ failed' "$WORK"/*.out || true)"
passed=$(awk '{ p += $2 } END { print p + 0 }' <<<"$counts")
failed=$(awk '{ f += $4 } END { print f + 0 }' <<<"$counts")
[ "$(wc -l <<<"$counts")" -eq 3 ] || { echo "a runtime's suite did not finish" >&2; status=1; }
echo "runtimes: $passed passed, $failed failed"
exit "$status"
