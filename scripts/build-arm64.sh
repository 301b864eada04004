#!/usr/bin/env bash
# Cross-builds the linux-arm64 addon with aarch64-linux-gnu-gcc -> prebuilds/linux-arm64/session-flock.glibc.node.
# The glibc tag matters: node-gyp-build takes an untagged binary as matching musl too, so
# an untagged glibc build would be loaded (and fail) on Alpine arm64.
source "$(dirname "$0")/lib/common.sh"
ensure_apt gcc-aarch64-linux-gnu libc6-dev-arm64-cross
cross_build_addon linux-arm64 build-arm64 aarch64-linux-gnu aarch64-linux-gnu-strip -DSF_BUILD_TESTS=OFF
mv -f "$ROOT/prebuilds/linux-arm64/session-flock.node" "$ROOT/prebuilds/linux-arm64/session-flock.glibc.node"
log "tagged prebuilds/linux-arm64/session-flock.glibc.node"
