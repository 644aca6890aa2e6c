#!/usr/bin/env bash
# The Debian package, end to end on this machine (root; contrib/test runs it once, it is
# not part of `make check`): builds the .deb from a clean copy of the checkout, installs
# it, checks every file is where docs/operations.md says, starts the installed tollgated
# as the tollgate user with the installed configuration against a throwaway PostgreSQL,
# gets /healthz and a metered request through (a token from the installed tollgatectl,
# its usage row in PostgreSQL), then purges the package and checks nothing of it is left
# but the tollgate user. systemd is not PID 1 here: tollgated is started directly.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=contrib/lib/common.sh
. "$src/contrib/lib/common.sh"
started=$(date +%s)
tg_is_root || tg_die "test_deb.sh installs a package: run it as root"
if dpkg-query -W -f='${Status}' tollgate 2>/dev/null | grep -q 'ok installed'; then
    tg_die "a tollgate package is already installed here; test_deb.sh would purge it: remove it first"
fi

work=$(mktemp -d /tmp/tollgate-deb.XXXXXX)
chmod 711 "$work" # the postgres and tollgate users pass through to the socket directory
pg_data=$work/pg
sock=$work/sock
ring=/tollgate-deb-$$
server_pid=
installed=0
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
    local rc=$?
    set +e
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid"
        wait "$server_pid" 2>/dev/null
    fi
    [ -f "$pg_data/postmaster.pid" ] && tg_as_postgres /usr/lib/postgresql/15/bin/pg_ctl -D "$pg_data" -m immediate -w stop >/dev/null 2>&1
    [ "$installed" -eq 1 ] && DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y -qq tollgate >/dev/null 2>&1
    rm -f "/dev/shm$ring"
    [ "$rc" -ne 0 ] && [ -f "$work/build.log" ] && tail -n 40 "$work/build.log" >&2
    [ "$rc" -ne 0 ] && [ -f "$work/tollgated.log" ] && tail -n 40 "$work/tollgated.log" >&2
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail=0
bad() {
    echo "FAIL: $*" >&2
    fail=1
}

# --- 1. build from a clean copy: the checkout's files (committed or not), no build dirs
tg_say "copying the checkout to $work/tollgate"
mkdir "$work/tollgate"
git -C "$src" ls-files -z --cached --others --exclude-standard |
    (cd "$src" && tar --null -T - -cf -) | tar -xf - -C "$work/tollgate"
ac_version=$(sed -n 's/^AC_INIT(\[tollgate\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")
deb_version=$(cd "$work/tollgate" && dpkg-parsechangelog -SVersion)
[ "${deb_version%-*}" = "$ac_version" ] || bad "debian/changelog says $deb_version, configure.ac says $ac_version"
tg_say "dpkg-buildpackage -us -uc -b"
(cd "$work/tollgate" && DEB_BUILD_OPTIONS="nocheck noddebs parallel=$(tg_ncpu)" nice dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 ||
    tg_die "dpkg-buildpackage failed"
built=$(date +%s)
debs=("$work"/tollgate_*.deb)
[ -f "${debs[0]}" ] || tg_die "dpkg-buildpackage made no tollgate_*.deb"

# --- 2. install, and everything in its place
tg_say "apt-get install ./$(basename "${debs[0]}")"
installed=1
(cd "$work" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "./$(basename "${debs[0]}")") >"$work/install.log" 2>&1 ||
    {
        cat "$work/install.log" >&2
        tg_die "apt-get install failed"
    }
files=(
    /usr/bin/tollgated /usr/bin/tollgate-collector /usr/bin/tollgatectl
    /lib/systemd/system/tollgated.service /lib/systemd/system/tollgated.socket /lib/systemd/system/tollgated-tls.socket
    /usr/lib/sysusers.d/tollgate.conf /usr/lib/tmpfiles.d/tollgate.conf
    /etc/tollgate/tollgate.conf /etc/tollgate/jwt-secret
    /usr/share/doc/tollgate/README.md /usr/share/doc/tollgate/operations.md /usr/share/doc/tollgate/openapi.yaml
    /usr/share/doc/tollgate/copyright
    /usr/share/tollgate/prometheus/alerts.yml /usr/share/tollgate/grafana/tollgate.json
)
for f in "${files[@]}"; do
    [ -e "$f" ] || bad "the package does not install $f"
done
getent passwd tollgate >/dev/null || bad "no tollgate user after install"
[ "$(stat -c '%a %U:%G' /var/lib/tollgate/spool 2>/dev/null)" = "750 tollgate:tollgate" ] ||
    bad "/var/lib/tollgate/spool is $(stat -c '%a %U:%G' /var/lib/tollgate/spool 2>&1), not 750 tollgate:tollgate"
[ "$(stat -c '%a %U:%G' /etc/tollgate/tollgate.conf)" = "640 root:tollgate" ] || bad "/etc/tollgate/tollgate.conf is $(stat -c '%a %U:%G' /etc/tollgate/tollgate.conf)"
[ "$(stat -c '%a %U' /etc/tollgate/jwt-secret)" = "600 tollgate" ] || bad "/etc/tollgate/jwt-secret is $(stat -c '%a %U' /etc/tollgate/jwt-secret)"
dpkg-query -W -f='${Conffiles}\n' tollgate | grep -q '^ /etc/tollgate/tollgate.conf ' || bad "/etc/tollgate/tollgate.conf is not a conffile"
cmp -s "$src/contrib/tollgate.conf.example" /etc/tollgate/tollgate.conf || bad "/etc/tollgate/tollgate.conf is not contrib/tollgate.conf.example"
[ "$(/usr/bin/tollgated --version)" = "tollgated $ac_version" ] || bad "tollgated --version: $(/usr/bin/tollgated --version 2>&1)"
# the installed units, with the installed binaries: no error, no warning
out=$(systemd-analyze verify /lib/systemd/system/tollgated.service /lib/systemd/system/tollgated.socket \
    /lib/systemd/system/tollgated-tls.socket 2>&1) || bad "systemd-analyze verify of the installed units failed"
[ -z "$out" ] || bad "systemd-analyze verify: $out"
# not enabled: the configuration needs a database first (docs/operations.md)
ls /etc/systemd/system/*/tollgated* >/dev/null 2>&1 && bad "the package enabled a unit"

# --- 3. a throwaway PostgreSQL: socket only, in $work/sock
mkdir -p "$pg_data" "$sock"
chown postgres: "$pg_data" "$sock"
chmod 755 "$sock"
pg_port=$((50000 + $$ % 10000))
tg_as_postgres /usr/lib/postgresql/15/bin/initdb -D "$pg_data" -A trust -U postgres -E UTF8 --no-locale >"$work/initdb.log" 2>&1 ||
    tg_die "initdb failed: $(tail -n 5 "$work/initdb.log")"
tg_as_postgres /usr/lib/postgresql/15/bin/pg_ctl -D "$pg_data" -l "$pg_data/postgres.log" -w -t 60 \
    -o "-p $pg_port -k $sock -c listen_addresses='' -c fsync=off" start >/dev/null || tg_die "PostgreSQL did not start"
# the roles of docs/operations.md's walkthrough: tollgate owns the database and may create
# the tollgate_app role the first migration makes
/usr/lib/postgresql/15/bin/psql -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$pg_port" -U postgres -d postgres \
    -c 'CREATE ROLE tollgate LOGIN CREATEROLE' -c 'CREATE DATABASE tollgate OWNER tollgate' >/dev/null
db_url="host=$sock port=$pg_port user=tollgate dbname=tollgate"
as_tollgate() { setpriv --reuid tollgate --regid tollgate --init-groups "$@"; }

# --- 4. the installed tollgatectl, as tollgate: schema, a tenant, a user and a token
ctl() { TOLLGATE_DATABASE_URL=$db_url as_tollgate /usr/bin/tollgatectl --config /etc/tollgate/tollgate.conf "$@"; }
ctl migrate >"$work/migrate.log" 2>&1 || tg_die "tollgatectl migrate failed: $(tail -n 5 "$work/migrate.log")"
ctl tenant create debtest >/dev/null
openssl rand -base64 18 | ctl user create --tenant debtest --email deb@example.com >/dev/null
token=$(ctl token create --email deb@example.com --name deb-test)
[ -n "$token" ] || tg_die "tollgatectl token create printed no token"

# --- 5. the installed tollgated as the tollgate user, with the installed configuration
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
tg_say "starting /usr/bin/tollgated as tollgate on 127.0.0.1:$port"
# through the environment: the database URL; the flags move the listener and the ring
# off the defaults a real installation on this machine would use
# setpriv execs tollgated: $! is the master (a shell function here would put a subshell
# between them, and the SIGTERM below would miss the server)
TOLLGATE_DATABASE_URL=$db_url setpriv --reuid tollgate --regid tollgate --init-groups /usr/bin/tollgated --config /etc/tollgate/tollgate.conf --listen "127.0.0.1:$port" \
    --ring "$ring" --workers 1 >"$work/tollgated.log" 2>&1 &
server_pid=$!
deadline=$(($(date +%s) + 30))
until curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; do
    kill -0 "$server_pid" 2>/dev/null || tg_die "tollgated exited"
    [ "$(date +%s)" -lt "$deadline" ] || tg_die "no 200 from /healthz within 30 s"
    sleep 0.1
done
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/v1/me")
[ "$code" = 200 ] || bad "GET /api/v1/me with the token answered $code"
# metered: the installed collector stores the request's usage row
psql_q() { /usr/lib/postgresql/15/bin/psql -X -q -tA -h "$sock" -p "$pg_port" -U postgres -d tollgate -c "$1"; }
deadline=$(($(date +%s) + 30))
until [ "$(psql_q 'SELECT count(*) FROM api_token_usage')" -ge 1 ]; do
    [ "$(date +%s)" -lt "$deadline" ] || {
        bad "no usage row within 30 s of the metered request"
        break
    }
    sleep 0.2
done
kill -TERM "$server_pid"
wait "$server_pid" || bad "tollgated exited $? on SIGTERM"
server_pid=

# --- 6. purge: nothing of the package is left (the tollgate user stays, as Debian's do)
tg_say "apt-get remove --purge tollgate"
DEBIAN_FRONTEND=noninteractive apt-get remove --purge -y -qq tollgate >"$work/purge.log" 2>&1 || bad "apt-get remove --purge failed"
installed=0
for f in "${files[@]}" /etc/tollgate /usr/share/doc/tollgate /var/lib/tollgate; do
    [ -e "$f" ] && bad "$f is still there after the purge"
done
left=$(find /etc/systemd /var/lib/systemd/deb-systemd-helper-enabled -name '*tollgate*' 2>/dev/null || true)
[ -z "$left" ] || bad "systemd state left after the purge: $left"
dpkg-query -W tollgate >/dev/null 2>&1 && bad "dpkg still knows the package"

tg_say "test_deb: build $((built - started)) s, whole test $(($(date +%s) - started)) s"
exit $fail
