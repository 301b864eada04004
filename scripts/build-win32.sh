#!/usr/bin/env bash
# Cross-builds the win32-x64 addon with mingw-w64 -> prebuilds/win32-x64/session-flock.node
# (and the Windows C core test, .cache/build-win32/test_core_win32.exe).
source "$(dirname "$0")/lib/common.sh"
ensure_cmake
ensure_apt gcc-mingw-w64-x86-64-win32 binutils-mingw-w64-x86-64 mingw-w64-x86-64-dev
NAH="$(npm_unpack node-api-headers "$NODE_API_HEADERS_VERSION")"
node "$ROOT/scripts/check-sources.mjs"
BUILD="$CACHE/build-win32"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/mingw-w64-x86_64.cmake" \
  -DSF_BUILD_ADDON=ON -DSF_BUILD_TESTS=ON \
  -DSF_NODE_API_HEADERS="$NAH" -DSF_PREBUILD_DIR="$ROOT/prebuilds/win32-x64" >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
test -f "$ROOT/prebuilds/win32-x64/session-flock.node" || die "no prebuilds/win32-x64/session-flock.node"
# Shipped in the npm tarball: strip it as prebuildify --strip does for the host build.
x86_64-w64-mingw32-strip --strip-unneeded "$ROOT/prebuilds/win32-x64/session-flock.node"
log "built prebuilds/win32-x64/session-flock.node"
