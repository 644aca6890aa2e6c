# shellcheck shell=bash
# The Debian bookworm packages tollgate needs to build and run, and those its tests add,
# installed only when missing: `apt-get update` once, then one `apt-get install`. Source
# after common.sh.

# Two lists, so that a machine that only runs tollgate gets nothing it does not need.
# Build and run (contrib/quickstart): the toolchain, the libraries configure.ac asks
# pkg-config for, a PostgreSQL 15 server (the quickstart starts one of its own), openssl
# (JWT secret, self-signed certificate) and curl (the commands the quickstart prints).
TG_PACKAGES_BUILD=(
    build-essential autoconf automake libtool pkg-config
    libh2o-evloop-dev libpq-dev libjansson-dev libjwt-dev libssl-dev libargon2-dev
    postgresql-15 openssl curl
)
# Tests only (contrib/test): Criterion, libcurl, real clients (h2load from
# nghttp2-client, python3-h2 for frame-level HTTP/2), clang for the analyzer and for
# building with another compiler, chromium for the dashboard's browser test (tests/browser:
# playwright-core drives /usr/bin/chromium), haproxy as the real load balancer of
# tests/integration/test_fleet_proxy, prometheus for its promtool
# (tests/contrib/test_prometheus_rules.sh), systemd (systemd-analyze verify of
# contrib/systemd/), dpkg-dev and debhelper (tests/contrib/test_deb.sh builds the Debian
# package); node >= 20 and npm come with the machine (not Debian's older nodejs, whose npm
# package would conflict).
TG_PACKAGES_TEST=(
    libcriterion-dev libcurl4-openssl-dev nghttp2-client python3-h2 clang chromium iproute2 util-linux haproxy prometheus
    systemd dpkg-dev debhelper
)

# libjwt 1.10.2 as first released in bookworm has a security bug that Debian fixed in
# this revision (bookworm-security); never build against anything older.
TG_LIBJWT_MIN_VERSION=1.10.2-1+deb12u1

tg_apt_updated=0

# Prints the packages of "$@" that dpkg does not report as installed.
tg_missing_packages() {
    local pkg status
    for pkg in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
        [ "$status" = "install ok installed" ] || printf '%s\n' "$pkg"
    done
}

tg_apt() {
    tg_is_root || tg_die "installing packages needs root (run this script as root, or install: $*)"
    export DEBIAN_FRONTEND=noninteractive
    if [ "$tg_apt_updated" -eq 0 ]; then
        tg_say "apt-get update"
        apt-get update -qq
        tg_apt_updated=1
    fi
    tg_say "apt-get install $*"
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

tg_check_libjwt() {
    local version
    version=$(dpkg-query -W -f='${Version}' libjwt0 2>/dev/null || true)
    if [ -n "$version" ] && dpkg --compare-versions "$version" ge "$TG_LIBJWT_MIN_VERSION"; then
        return 0
    fi
    # Maybe only the package lists were old: try once to get the fixed revision.
    tg_apt libjwt0 libjwt-dev
    version=$(dpkg-query -W -f='${Version}' libjwt0 2>/dev/null || true)
    if [ -z "$version" ] || ! dpkg --compare-versions "$version" ge "$TG_LIBJWT_MIN_VERSION"; then
        tg_die "libjwt0 ${version:-(not installed)} is older than $TG_LIBJWT_MIN_VERSION, which has Debian's security fix; enable the bookworm-security suite in /etc/apt/sources.list(.d) and run again"
    fi
}

# Installs the missing packages of the lists named by "$@" (build, test).
tg_install_packages() {
    local list wanted=() missing
    for list in "$@"; do
        case $list in
        build) wanted+=("${TG_PACKAGES_BUILD[@]}") ;;
        test) wanted+=("${TG_PACKAGES_TEST[@]}") ;;
        *) tg_die "tg_install_packages: unknown package list $list" ;;
        esac
    done
    mapfile -t missing < <(tg_missing_packages "${wanted[@]}")
    if [ "${#missing[@]}" -gt 0 ]; then
        tg_apt "${missing[@]}"
        mapfile -t missing < <(tg_missing_packages "${wanted[@]}")
        [ "${#missing[@]}" -eq 0 ] || tg_die "still missing after apt-get install: ${missing[*]}"
    fi
    tg_check_libjwt
}
