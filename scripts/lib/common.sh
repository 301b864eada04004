# Shared by the build/test scripts: strict mode, apt packages, npm-pack downloads.
# Source it; it sets ROOT (the repo) and CACHE (ROOT/.cache, git-ignored).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="$ROOT/.cache"
mkdir -p "$CACHE"
export DEBIAN_FRONTEND=noninteractive

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ensure_apt pkg...: installs the Debian packages that are missing (apt-get update once).
ensure_apt() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get"
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo -n)
  log "installing ${missing[*]}"
  if [ ! -e "$CACHE/.apt-updated" ] || [ -n "$(find "$CACHE/.apt-updated" -mmin +720 2>/dev/null)" ]; then
    "${sudo[@]}" apt-get update -q </dev/null >&2
    touch "$CACHE/.apt-updated"
  fi
  "${sudo[@]}" apt-get install -y -q "${missing[@]}" </dev/null >&2
}

# npm_unpack name version: `npm pack` once into .cache/dl, unpacked once into
# .cache/<name>-<version>/package; prints that directory. A scoped name (@scope/name) is
# stored as scope-name, the way npm pack names its tarball.
npm_unpack() {
  local name="$1" version="$2"
  local flat="${name#@}"
  flat="${flat//\//-}"
  local dest="$CACHE/$flat-$version"
  if [ ! -e "$dest/.ok" ]; then
    mkdir -p "$CACHE/dl"
    local tgz="$CACHE/dl/$flat-$version.tgz"
    if [ ! -s "$tgz" ]; then
      log "npm pack $name@$version"
      (cd "$CACHE/dl" && npm pack --silent "$name@$version" </dev/null >/dev/null)
    fi
    [ -s "$tgz" ] || die "npm pack $name@$version produced no $tgz"
    rm -rf "$dest" && mkdir -p "$dest"
    tar -xzf "$tgz" -C "$dest"
    touch "$dest/.ok"
  fi
  printf '%s\n' "$dest/package"
}

NODE_VERSION="${SF_NODE_VERSION:-20.20.2}"
NODE_API_HEADERS_VERSION="${SF_NODE_API_HEADERS_VERSION:-1.9.0}"

ensure_cmake() { ensure_apt cmake make; }

# cross_build_addon PLATFORM BUILD_DIR TOOLCHAIN STRIP [cmake -D...]: cross-builds the addon
# from the shared sources into prebuilds/PLATFORM/session-flock.node (CMake, toolchain file
# cmake/TOOLCHAIN.cmake, build tree $CACHE/BUILD_DIR) and strips it, as prebuildify --strip
# does for the host build, since it ships in the npm tarball.
cross_build_addon() {
  local platform="$1" build="$CACHE/$2" toolchain="$3" strip="$4"
  shift 4
  ensure_cmake
  local nah out="$ROOT/prebuilds/$platform/session-flock.node"
  nah="$(npm_unpack node-api-headers "$NODE_API_HEADERS_VERSION")"
  node "$ROOT/scripts/check-sources.mjs"
  cmake -S "$ROOT" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/$toolchain.cmake" -DSF_BUILD_ADDON=ON \
    -DSF_NODE_API_HEADERS="$nah" -DSF_PREBUILD_DIR="$ROOT/prebuilds/$platform" "$@" >/dev/null
  cmake --build "$build" -j "$(nproc)"
  test -f "$out" || die "no prebuilds/$platform/session-flock.node"
  "$strip" --strip-unneeded "$out"
  log "built prebuilds/$platform/session-flock.node"
}
