#!/usr/bin/env bash
# Cross-builds the win32-x64 addon with mingw-w64 -> prebuilds/win32-x64/session-flock.node
# (and the Windows C core test, .cache/build-win32/test_core_win32.exe).
source "$(dirname "$0")/lib/common.sh"
ensure_apt gcc-mingw-w64-x86-64-win32 binutils-mingw-w64-x86-64 mingw-w64-x86-64-dev
cross_build_addon win32-x64 build-win32 mingw-w64-x86_64 x86_64-w64-mingw32-strip -DSF_BUILD_TESTS=ON
