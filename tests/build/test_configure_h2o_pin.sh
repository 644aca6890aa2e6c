#!/usr/bin/env bash
# configure accepts only the libh2o it was written for: with a libh2o-evloop.pc of another
# version first on PKG_CONFIG_PATH, the real configure must stop and say why.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
real_pc=$(pkg-config --variable=pcfiledir libh2o-evloop)/libh2o-evloop.pc
sed 's/^Version:.*/Version: 0.13.6/' "$real_pc" >"$tmp/libh2o-evloop.pc"
cd "$tmp"
if PKG_CONFIG_PATH="$tmp" "$src/configure" >configure.out 2>&1; then
    echo "configure accepted libh2o-evloop 0.13.6"
    exit 1
fi
grep -q "libh2o-evloop 0.13.6 found, but tollgate needs exactly 0.13.5 (h2o 2.2.5)" configure.out || {
    echo "configure failed without saying why:"
    tail -5 configure.out
    exit 1
}
