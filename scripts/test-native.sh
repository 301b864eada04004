#!/usr/bin/env bash
# C unit tests of the lock core (ctest), plain and with -fsanitize=address,undefined,
# plus the check that CMakeLists.txt and binding.gyp build the same sources.
source "$(dirname "$0")/lib/common.sh"
ensure_cmake
ensure_apt gcc libc6-dev
node "$ROOT/scripts/check-sources.mjs"
for config in plain sanitize; do
  BUILD="$CACHE/build-native-$config"
  sanitize=OFF; [ "$config" = sanitize ] && sanitize=ON
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DSF_SANITIZE=$sanitize -DSF_BUILD_TESTS=ON >/dev/null
  cmake --build "$BUILD" -j "$(nproc)" >/dev/null
  log "ctest ($config)"
  (cd "$BUILD" && ctest --output-on-failure </dev/null)
done
