#!/usr/bin/env bash
# contrib/quickstart installs what tollgate needs to build and run, and no test tool: runs
# the real script with apt-get and dpkg-query replaced by stubs (nothing is installed, so
# it asks for everything it wants) and checks the one package list it asked for.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$src/contrib/quickstart" ] || src=$(cd "${srcdir:-.}" && pwd)
stubs=$(mktemp -d)
trap 'rm -rf "$stubs"' EXIT
# dpkg-query: every package is missing; apt-get: records what it was asked to install
printf '#!/bin/sh\nexit 1\n' >"$stubs/dpkg-query"
printf '#!/bin/sh\n[ "$1" = install ] && printf "%%s\\n" "$@" >>"%s/installed"\nexit 0\n' "$stubs" >"$stubs/apt-get"
# quickstart refuses to install as another user than root: pretend
printf '#!/bin/sh\n[ "$1" = -u ] && { echo 0; exit 0; }\nexec /usr/bin/id "$@"\n' >"$stubs/id"
chmod +x "$stubs/dpkg-query" "$stubs/apt-get" "$stubs/id"
# it stops at "still missing after apt-get install": the stubs install nothing
PATH="$stubs:$PATH" "$src/contrib/quickstart" >"$stubs/out" 2>&1 && { echo "quickstart went on past the stubs"; exit 1; }
[ -s "$stubs/installed" ] || { echo "quickstart asked for no package:"; cat "$stubs/out"; exit 1; }
fail=0
for need in libh2o-evloop-dev libpq-dev postgresql-15 build-essential; do
    grep -qx "$need" "$stubs/installed" || { echo "quickstart does not install $need"; fail=1; }
done
for test_only in chromium libcriterion-dev nghttp2-client python3-h2 clang libcurl4-openssl-dev haproxy; do
    grep -qx "$test_only" "$stubs/installed" && { echo "quickstart installs the test tool $test_only"; fail=1; }
done
exit $fail
