# shellcheck shell=bash
# Shared helpers for contrib/test and contrib/quickstart: messages, root checks, and the
# repository root. Source it; it defines functions and TG_ROOT, and runs nothing else.

# shellcheck disable=SC2034 # used by the scripts that source this file
TG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

tg_say() { printf '==> %s\n' "$*" >&2; }
tg_warn() { printf 'warning: %s\n' "$*" >&2; }
tg_die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

tg_is_root() { [ "$(id -u)" -eq 0 ]; }

# Runs a command as the `postgres` user when we are root (initdb and pg_ctl refuse to run
# as root), or as ourselves otherwise. Runs from / so that a working directory the
# postgres user cannot enter does not produce warnings.
tg_as_postgres() {
    if tg_is_root; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Number of CPUs, for make -j.
tg_ncpu() { getconf _NPROCESSORS_ONLN 2>/dev/null || echo 2; }
