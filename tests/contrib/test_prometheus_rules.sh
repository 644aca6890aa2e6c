#!/usr/bin/env bash
# contrib/prometheus/alerts.yml: promtool accepts the rules, and its unit tests
# (alerts_test.yml: a firing and a not-firing case per alert) pass. Skipped (exit 77)
# only when promtool is not installed (Debian package prometheus, a test dependency).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
[ -f "$src/contrib/prometheus/alerts.yml" ] || src=$(cd "${srcdir:-.}" && pwd)
if ! command -v promtool >/dev/null 2>&1; then
    echo "SKIP: promtool not found (apt-get install prometheus)"
    exit 77
fi
cd "$src/contrib/prometheus"
promtool check rules alerts.yml
promtool test rules alerts_test.yml
