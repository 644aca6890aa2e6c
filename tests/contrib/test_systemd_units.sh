#!/usr/bin/env bash
# contrib/systemd/: the units pass `systemd-analyze verify` with no warning (ExecStart
# pointed at this build's binaries: verify wants them executable), and the sysusers.d and
# tmpfiles.d entries, applied to a scratch root, make the tollgate user and a spool that
# is the configuration's spool-dir, writable by the service and by no one else.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
[ -d "$src/contrib/systemd" ] || src=$(cd "${srcdir:-.}" && pwd)
build=$(pwd) # make check runs tests from the top build directory
units=$src/contrib/systemd
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() {
    echo "$*"
    fail=1
}

for tool in systemd-analyze systemd-sysusers systemd-tmpfiles; do
    command -v "$tool" >/dev/null || {
        echo "$tool is missing: install the systemd package (contrib/lib/packages.sh lists it)"
        exit 1
    }
done

# 1. verify: the units as installed, but running this build's programs
for prog in tollgated tollgate-collector tollgatectl; do
    [ -x "$build/$prog" ] || bad "no $build/$prog: run this from the build directory after make"
done
mkdir "$tmp/units"
for unit in tollgated.service tollgated.socket tollgated-tls.socket; do
    sed "s#/usr/bin/\(tollgated\|tollgate-collector\|tollgatectl\)\b#$build/\1#g" "$units/$unit" >"$tmp/units/$unit"
done
grep -q "^ExecStart=$build/tollgated " "$tmp/units/tollgated.service" || bad "tollgated.service does not start /usr/bin/tollgated"
if ! (cd "$tmp/units" && systemd-analyze verify ./tollgated.service ./tollgated.socket ./tollgated-tls.socket) >"$tmp/verify.out" 2>&1; then
    bad "systemd-analyze verify failed:"
elif [ -s "$tmp/verify.out" ]; then
    bad "systemd-analyze verify warned (unknown keys and bad values are only warnings):"
fi
cat "$tmp/verify.out"

# the contract with tollgated: named sockets, notify with watchdog, reload by SIGHUP
grep -qx 'FileDescriptorName=http' "$units/tollgated.socket" || bad "tollgated.socket does not name its socket http"
grep -qx 'FileDescriptorName=https' "$units/tollgated-tls.socket" || bad "tollgated-tls.socket does not name its socket https"
# shellcheck disable=SC2016 # $MAINPID is systemd's, not ours
for line in 'Type=notify' 'NotifyAccess=main' 'WatchdogSec=30s' 'ExecReload=/bin/kill -HUP $MAINPID' \
    'ExecStart=/usr/bin/tollgated --config /etc/tollgate/tollgate.conf' 'User=tollgate' 'RemoveIPC=no'; do
    grep -qxF "$line" "$units/tollgated.service" || bad "tollgated.service lacks: $line"
done

# 2. sysusers.d and tmpfiles.d into a scratch root
root=$tmp/root
mkdir -p "$root/etc"
systemd-sysusers --root="$root" "$units/tollgate.sysusers" >"$tmp/sysusers.out" 2>&1 || {
    cat "$tmp/sysusers.out"
    bad "systemd-sysusers failed"
}
entry=$(grep '^tollgate:' "$root/etc/passwd" || true)
[ -n "$entry" ] || bad "sysusers made no tollgate user"
IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
[ "$home" = /var/lib/tollgate ] || bad "tollgate's home is $home, not /var/lib/tollgate"
[ "$shell" = /usr/sbin/nologin ] || bad "tollgate has the login shell $shell"
if [ "${uid:-0}" -eq 0 ] || [ "${uid:-0}" -ge 1000 ]; then
    bad "tollgate is not a system user (uid $uid)"
fi
systemd-tmpfiles --create --root="$root" "$units/tollgate.tmpfiles" >"$tmp/tmpfiles.out" 2>&1 || {
    cat "$tmp/tmpfiles.out"
    bad "systemd-tmpfiles --create failed"
}
spool=$(sed -n 's/^spool-dir *= *//p' "$src/contrib/tollgate.conf.example")
[ -n "$spool" ] || bad "contrib/tollgate.conf.example sets no spool-dir"
if [ -d "$root$spool" ]; then
    got=$(stat -c '%a %u:%g' "$root$spool")
    [ "$got" = "750 $uid:$gid" ] || bad "$spool is $got, not 750 $uid:$gid (tollgate)"
else
    bad "tmpfiles.d does not make the configuration's spool-dir $spool"
fi
rw=$(sed -n 's/^ReadWritePaths=//p' "$units/tollgated.service")
case "$spool/" in "$rw"/*) ;; *) bad "the spool $spool is outside ReadWritePaths=$rw" ;; esac
exit $fail
