#!/usr/bin/env bash
# Cross-builds the linux-arm64 addon with aarch64-linux-gnu-gcc -> prebuilds/linux-arm64/session-flock.node
source "$(dirname "$0")/lib/common.sh"
ensure_cmake
ensure_apt gcc-aarch64-linux-gnu libc6-dev-arm64-cross
NAH="$(npm_unpack node-api-headers "$NODE_API_HEADERS_VERSION")"
node "$ROOT/scripts/check-sources.mjs"
BUILD="$CACHE/build-arm64"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" \
  -DSF_BUILD_ADDON=ON -DSF_BUILD_TESTS=OFF \
  -DSF_NODE_API_HEADERS="$NAH" -DSF_PREBUILD_DIR="$ROOT/prebuilds/linux-arm64" >/dev/null
cmake --build "$BUILD" -j "$(nproc)"
test -f "$ROOT/prebuilds/linux-arm64/session-flock.node" || die "no prebuilds/linux-arm64/session-flock.node"
# Shipped in the npm tarball: strip it as prebuildify --strip does for the host build.
aarch64-linux-gnu-strip --strip-unneeded "$ROOT/prebuilds/linux-arm64/session-flock.node"
log "built prebuilds/linux-arm64/session-flock.node"
