# shellcheck shell=bash
# The moving parts of contrib/chaos, the fault-injection suite: processes started in groups
# of their own and stopped by id, a throwaway PostgreSQL that can be killed, stopped and
# restarted, tollgated instances, a steady h2load load with per-request logs, snapshots of
# the ring's counters and of the usage table, and the drain wait (poll with a deadline).
# Source after common.sh and postgres.sh; call chaos_init first.

# ---------------------------------------------------------------- state (set by chaos_init)
CHAOS_TMP=""      # scratch directory, removed on exit
CHAOS_PIDFILE=""  # every process group started here, one pid a line
CHAOS_MOUNTS=""   # tmpfs mounts to undo, one a line
CHAOS_T0=0        # start of the run (seconds)
CHAOS_CTL=""      # tollgatectl
CHAOS_TOLLGATED=""
CHAOS_PG_DIR=""
CHAOS_PG_PORT=""
CHAOS_DBURL=""
CHAOS_PSQL=()

chaos_log() { printf '[chaos %4ss] %s\n' "$(($(date +%s) - CHAOS_T0))" "$*" >&2; }

# Seconds since the epoch with microseconds (for windows and rates).
chaos_now() { date +%s.%6N; }

# Float helpers (awk): chaos_calc EXPR with $a $b style variables passed as -v.
chaos_sub() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a - b }'; }
chaos_add() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.6f", a + b }'; }
chaos_lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# Sleeps until the absolute time T (seconds); a measurement window, never synchronisation.
chaos_sleep_until() {
    local left
    left=$(chaos_sub "$1" "$(chaos_now)")
    chaos_lt 0 "$left" && sleep "$left"
    return 0
}

chaos_init() {
    CHAOS_T0=$(date +%s)
    CHAOS_TMP=$(mktemp -d /tmp/tollgate-chaos.XXXXXX)
    chmod 755 "$CHAOS_TMP" # the postgres user must reach its data directory inside
    mkdir -p "$CHAOS_TMP/logs"
    CHAOS_PIDFILE=$CHAOS_TMP/pids
    CHAOS_MOUNTS=$CHAOS_TMP/mounts
    : >"$CHAOS_PIDFILE"
    : >"$CHAOS_MOUNTS"
}

# ---------------------------------------------------------------- processes
# chaos_stop_group PID [GRACE_S]: SIGTERM the process group PID leads, SIGKILL after GRACE_S.
chaos_stop_group() {
    local pid=$1 grace=${2:-10} i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    return 0
}

# chaos_bg NAME CMD...: runs CMD in a session of its own (its pid leads the group), output
# in logs/NAME.log; prints the pid and remembers it for the cleanup.
chaos_bg() {
    local name=$1 pid
    shift
    setsid "$@" >"$CHAOS_TMP/logs/$name.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >>"$CHAOS_PIDFILE"
    echo "$pid"
}

chaos_forget() { sed -i "/^$1\$/d" "$CHAOS_PIDFILE"; }

# Undoes everything: processes, PostgreSQL (never left stopped), mounts, rings, scratch.
chaos_cleanup() {
    local pid m
    [ -n "$CHAOS_TMP" ] || return 0
    while read -r pid; do [ -n "$pid" ] && chaos_stop_group "$pid" 5; done <"$CHAOS_PIDFILE"
    if [ -n "$CHAOS_PG_DIR" ] && [ -f "$CHAOS_PG_DIR/data/postmaster.pid" ]; then
        chaos_pg_signal CONT 2>/dev/null
        tg_as_postgres "$TG_PG_BINDIR/pg_ctl" -D "$CHAOS_PG_DIR/data" -m fast -t 20 -w stop >/dev/null 2>&1 ||
            tg_as_postgres "$TG_PG_BINDIR/pg_ctl" -D "$CHAOS_PG_DIR/data" -m immediate -w stop >/dev/null 2>&1
    fi
    while read -r m; do [ -n "$m" ] && umount "$m" 2>/dev/null; done <"$CHAOS_MOUNTS"
    rm -f /dev/shm/tgchaos-"$$"-* 2>/dev/null
    if [ -n "${TG_CHAOS_KEEP_TMP:-}" ]; then
        chaos_log "kept $CHAOS_TMP"
    else
        rm -rf "$CHAOS_TMP"
    fi
    CHAOS_TMP=""
}

# A free loopback TCP port: one the kernel hands out for port 0 (never one a connection or
# listener holds right now); without python3, random candidates, skipping anything listening.
# Free when asked, not reserved: chaos_tollgated retries with another when it is taken.
chaos_free_port() {
    local p i
    if p=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null) &&
        [ -n "$p" ]; then
        echo "$p"
        return 0
    fi
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# chaos_wait_http URL SECONDS: polls until anything answers 200.
chaos_wait_http() {
    local url=$1 deadline=$(($(date +%s) + $2))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        curl -sf -o /dev/null --max-time 1 "$url" && return 0
        sleep 0.1
    done
    return 1
}

# ---------------------------------------------------------------- PostgreSQL
chaos_psql() { "${CHAOS_PSQL[@]}" -c "$1" 2>>"$CHAOS_TMP/logs/psql.log"; }

chaos_pg_start() {
    CHAOS_PG_DIR=$CHAOS_TMP/pg
    CHAOS_PG_PORT=$(chaos_free_port) || return 1
    # initdb here rather than in tg_pg_local_start for --no-sync: a throwaway cluster need not
    # wait for its template files to reach the disk (the server itself runs with fsync on)
    mkdir -p "$CHAOS_PG_DIR"
    if tg_is_root; then chown postgres: "$CHAOS_PG_DIR" && chmod 700 "$CHAOS_PG_DIR"; fi
    tg_as_postgres "$TG_PG_BINDIR/initdb" --no-sync -D "$CHAOS_PG_DIR/data" -A trust -U postgres -E UTF8 --no-locale \
        >"$CHAOS_TMP/logs/initdb.log" 2>&1 || return 1
    CHAOS_DBURL=$(tg_pg_local_start "$CHAOS_PG_DIR" "$CHAOS_PG_PORT" tollgate 2>>"$CHAOS_TMP/logs/pg-start.log") || return 1
    CHAOS_PSQL=("$TG_PG_BINDIR/psql" "$CHAOS_DBURL" -X -q -t -A -v ON_ERROR_STOP=1)
}

chaos_pg_pid() { head -n 1 "$CHAOS_PG_DIR/data/postmaster.pid" 2>/dev/null; }

chaos_pg_ready() { "$TG_PG_BINDIR/pg_isready" -q -h "$CHAOS_PG_DIR" -p "$CHAOS_PG_PORT"; }

# chaos_pg_procs: the postmaster, then its children. Each backend calls setsid(), so the
# postmaster's process group holds the postmaster alone: signal them one by one.
chaos_pg_procs() {
    local pm
    pm=$(chaos_pg_pid)
    [ -n "$pm" ] && kill -0 "$pm" 2>/dev/null || return 1
    echo "$pm"
    pgrep -P "$pm"
    return 0
}

# kill -9 of the postmaster and every backend, then waits until none is left.
chaos_pg_kill9() {
    local procs p deadline alive
    mapfile -t procs < <(chaos_pg_procs) || return 1
    [ "${#procs[@]}" -gt 0 ] || return 1
    kill -KILL "${procs[@]}" 2>/dev/null
    deadline=$(($(date +%s) + 20))
    while :; do
        alive=0
        for p in "${procs[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && return 0
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# Starts the cluster again (crash recovery included); retries until SECONDS have passed.
chaos_pg_restart() {
    local deadline=$(($(date +%s) + ${1:-60}))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        # a subshell: tg_pg_local_start exits on failure
        if (tg_pg_local_start "$CHAOS_PG_DIR" "$CHAOS_PG_PORT" tollgate) >/dev/null 2>>"$CHAOS_TMP/logs/pg-start.log"; then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

# chaos_pg_signal STOP|CONT: the whole cluster, postmaster first (a stopped postmaster
# starts no new backend while the others are being stopped).
chaos_pg_signal() {
    local procs
    mapfile -t procs < <(chaos_pg_procs) || return 1
    [ "${#procs[@]}" -gt 0 ] && kill "-$1" "${procs[@]}"
}

# ---------------------------------------------------------------- tollgated
# chaos_ctl ARGS...: tollgatectl against the suite's database.
chaos_ctl() { TOLLGATE_DATABASE_URL=$CHAOS_DBURL "$CHAOS_CTL" "$@"; }

# chaos_token NAME: creates an API token for the suite's user; prints "PLAINTEXT ID".
chaos_token() {
    local plain id
    plain=$(chaos_ctl token create --email "$CHAOS_EMAIL" --name "$1" 2>"$CHAOS_TMP/logs/token-$1.err") || return 1
    id=$(sed -n 's/.*created token id=\([0-9a-f-]*\).*/\1/p' "$CHAOS_TMP/logs/token-$1.err")
    [ -n "$plain" ] && [ -n "$id" ] || return 1
    echo "$plain $id"
}

# chaos_tollgated NAME RING_CAPACITY SPOOL_DIR [FLAGS...]: starts an instance with ring
# /tgchaos-PID-NAME and node id chaos-NAME; prints "PID PORT" once /healthz answers and the
# collector has attached to the ring. RING_CAPACITY "default" passes no --ring-capacity (the
# instance runs with tollgated's default). Environment variables for the collector pass through.
chaos_tollgated() {
    local name=$1 cap=$2 spool=$3 port pid deadline attempt up capflag=()
    shift 3
    [ "$cap" = default ] || capflag=(--ring-capacity "$cap")
    # a port free when chosen can be taken before tollgated binds it: then it exits at once,
    # saying so, and another port is tried
    for attempt in 1 2 3; do
        port=$(chaos_free_port) || return 1
        pid=$(chaos_bg "tollgated-$name" "$CHAOS_TOLLGATED" --listen "127.0.0.1:$port" --database-url "$CHAOS_DBURL" \
            --workers "$CHAOS_WORKERS" --jwt-secret-file "$CHAOS_TMP/jwt.key" --ring "/tgchaos-$$-$name" \
            "${capflag[@]}" --spool-dir "$spool" --node-id "chaos-$name" --log-level info "$@")
        up=0
        deadline=$(($(date +%s) + 30))
        while [ "$(date +%s)" -lt "$deadline" ] && kill -0 "$pid" 2>/dev/null; do
            if curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz"; then
                up=1
                break
            fi
            sleep 0.1
        done
        [ "$up" = 1 ] && kill -0 "$pid" 2>/dev/null && break # answered, and it was this tollgated
        chaos_stop_group "$pid"
        chaos_forget "$pid"
        grep -qE 'in use|EADDRINUSE' "$CHAOS_TMP/logs/tollgated-$name.log" || return 1
        cp "$CHAOS_TMP/logs/tollgated-$name.log" "$CHAOS_TMP/logs/tollgated-$name.port-taken-$attempt.log"
        chaos_log "port $port was taken before tollgated '$name' bound it; trying another"
    done
    [ "$up" = 1 ] || return 1
    deadline=$(($(date +%s) + 30))
    until [ "$(chaos_collector_pid "/tgchaos-$$-$name")" -gt 0 ] 2>/dev/null; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
    echo "$pid $port"
}

# ---------------------------------------------------------------- the ring
# chaos_ring_stats RING FILE: `tollgatectl ring stats` into FILE.
chaos_ring_stats() { "$CHAOS_CTL" ring stats --ring "$1" >"$2" 2>>"$CHAOS_TMP/logs/ring-stats.err"; }

# chaos_stat FILE KEY: the number after "KEY:" in a ring stats snapshot (0 when absent).
chaos_stat() {
    awk -v k="$2:" 'index($0, k) == 1 { v = substr($0, length(k) + 1); sub(/^[ \t]+/, "", v); split(v, w, /[ \t]/); print w[1] + 0; found = 1; exit }
        END { if (!found) print 0 }' "$1"
}

# chaos_delta FILE0 FILE1 KEY
chaos_delta() { echo $(($(chaos_stat "$2" "$3") - $(chaos_stat "$1" "$3"))); }

chaos_collector_pid() {
    local f=$CHAOS_TMP/ring-now
    chaos_ring_stats "$1" "$f" || {
        echo 0
        return 0
    }
    chaos_stat "$f" "collector pid"
}

# chaos_children MASTER KIND: pids of the master's children of KIND (worker|collector).
chaos_children() {
    local p cmd
    for p in $(pgrep -P "$1" 2>/dev/null); do
        cmd=$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) || continue
        case $2:$cmd in
        worker:"tollgated: worker"*) echo "$p" ;;
        collector:tollgate-collector*) echo "$p" ;;
        esac
    done
}

# chaos_wait_commit RING SINCE_MS SECONDS: waits until a collector has committed a batch
# after SINCE_MS (unix ms): the ring's "last commit" is stamped by the collector after each
# COMMIT. 0, or 1 at the deadline.
chaos_wait_commit() {
    local ring=$1 since=$2 deadline=$(($(date +%s) + $3)) f=$CHAOS_TMP/ring-wait last ms
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if chaos_ring_stats "$ring" "$f"; then
            last=$(sed -n 's/^last commit: *\([^ ]*\).*/\1/p' "$f")
            ms=0
            [ -n "$last" ] && [ "$last" != never ] && ms=$(date -d "$last" +%s%3N 2>/dev/null || echo 0)
            [ "$ms" -gt "$since" ] && return 0
        fi
        sleep 0.1
    done
    return 1
}

# chaos_restart_timeline LOG KILL_MS: where the collector's restart after a kill at KILL_MS
# (unix ms) went, from log timestamps: the master seeing the death, the fork, the new
# collector's main(), and its own milestones ("first batch committed since start").
chaos_restart_timeline() {
    local log=$1 kill_ms=$2 died forked began line off
    ms_of() { date -d "$(sed -n 's/^{"ts":"\([^"]*\)".*/\1/p' <<<"$1")" +%s%3N; }
    line=$(grep '"child died, restarting","kind":"collector"' "$log" | while read -r l; do
        [ "$(ms_of "$l")" -ge "$kill_ms" ] && { echo "$l"; break; }; done)
    [ -n "$line" ] || { echo "no death logged after the kill"; return 0; }
    died=$(ms_of "$line")
    off=$(sed -n 's/.*"restart_in_ms":\([0-9]*\).*/\1/p' <<<"$line")
    line=$(grep '"msg":"collector started"' "$log" | while read -r l; do
        [ "$(ms_of "$l")" -ge "$died" ] && { echo "$l"; break; }; done)
    forked=$([ -n "$line" ] && ms_of "$line" || echo "$died")
    line=$(grep '"first batch committed since start"' "$log" | while read -r l; do
        b=$(sed -n 's/.*"began_unix_ms":\([0-9]*\).*/\1/p' <<<"$l")
        [ "$b" -ge "$forked" ] && { echo "$l"; break; }; done)
    [ -n "$line" ] || { echo "death seen after $((died - kill_ms)) ms, restart_in_ms $off, forked +$((forked - kill_ms)) ms; no first commit logged"; return 0; }
    began=$(sed -n 's/.*"began_unix_ms":\([0-9]*\).*/\1/p' <<<"$line")
    field() { sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<<"$line"; }
    local b=$((began - kill_ms))
    at() { # a milestone, ms after the kill; "-" when it was not reached
        local v
        v=$(field "$1")
        if [ "${v:-0}" -gt 0 ]; then echo $((b + v)); else echo -; fi
    }
    local depth
    depth=$(grep '"msg":"started"' "$log" | grep "\"pid\":$(sed -n 's/.*"pid":\([0-9]*\),"component".*/\1/p' <<<"$line")," |
        sed -n 's/.*"capacity":\([0-9]*\),"depth":\([0-9]*\).*/\2 of \1/p')
    echo "ring depth when the new collector started: ${depth:-?} records; ms after the kill: master saw the death $((died - kill_ms)) (restart_in_ms $off), forked $((forked - kill_ms)), collector main() $b, ring attached $(at attached_ms), first records released $(at first_release_ms), database connected $(at connected_ms), position recovered $(at recovered_ms), first commit $(at first_commit_ms)"
}

# chaos_spill_files DIR: number of spill files in a spool directory.
chaos_spill_files() { find "$1" -maxdepth 1 -name 'spill-*.tgs' 2>/dev/null | wc -l; }

# chaos_wait_drained RING SPOOL SECONDS: waits until the ring is empty, the spool holds no
# spill file, a collector is attached, and the usage table stopped growing over two polls.
chaos_wait_drained() {
    local ring=$1 spool=$2 deadline=$(($(date +%s) + $3)) f=$CHAOS_TMP/ring-drain rows prev=-1 calm=0
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if chaos_ring_stats "$ring" "$f" && [ "$(chaos_stat "$f" depth)" -eq 0 ] &&
            [ "$(chaos_stat "$f" "collector pid")" -gt 0 ] && [ "$(chaos_spill_files "$spool")" -eq 0 ]; then
            rows=$(chaos_psql "SELECT count(*) FROM api_token_usage")
            if [ "$rows" = "$prev" ]; then
                calm=$((calm + 1))
                [ "$calm" -ge 2 ] && return 0
            else
                calm=0
            fi
            prev=$rows
        else
            calm=0
        fi
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------- load
# chaos_load_start DIR URL TOKEN RATE: h2load runs of CHAOS_RUN_SECS back to back, each at
# RATE requests/s over CHAOS_CLIENTS h2c connections, until DIR/stop exists. Every run
# leaves its summary (DIR/out.N) and per-request log (DIR/req.N: start µs, status, µs).
# Prints the pid of the loop.
chaos_load_start() {
    local dir=$1 url=$2 token=$3 rate=$4 per n
    mkdir -p "$dir"
    per=$(((rate + CHAOS_CLIENTS - 1) / CHAOS_CLIENTS))
    n=$((per * CHAOS_CLIENTS * CHAOS_RUN_SECS))
    (
        i=0
        # the directory disappears when the suite is interrupted: stop then too
        while [ -d "$dir" ] && [ ! -e "$dir/stop" ]; do
            i=$((i + 1))
            # -N: a run never waits forever on a connection that went silent
            timeout -s KILL 120 h2load -c "$CHAOS_CLIENTS" -m 4 -t 1 --rps "$per" -n "$n" -N 15s \
                -H "authorization: Bearer $token" --log-file "$dir/req.$i" "$url" >"$dir/out.$i" 2>&1 ||
                echo "run $i: h2load exit $?" >>"$dir/errors"
        done
    ) </dev/null >/dev/null 2>&1 &
    echo "$!" >>"$CHAOS_PIDFILE"
    echo "$!"
}

# chaos_burst DIR URL TOKEN N: one unpaced h2load run of N requests (the ring-too-small burst).
chaos_burst() {
    local dir=$1 url=$2 token=$3 n=$4
    mkdir -p "$dir"
    timeout -s KILL 120 h2load -c 16 -m 32 -t 1 -n "$n" -N 15s -H "authorization: Bearer $token" \
        --log-file "$dir/req.1" "$url" >"$dir/out.1" 2>&1 || echo "burst: h2load exit $?" >>"$dir/errors"
}

# chaos_saturate DIR URL TOKEN SECONDS: an unpaced h2load run for SECONDS (-c 16 -m 32, one
# thread: as fast as the server answers), in the background, summary in DIR/out.1 (no
# per-request log: a million lines); prints its pid.
chaos_saturate() {
    local dir=$1 url=$2 token=$3 secs=$4
    mkdir -p "$dir"
    (timeout -s KILL $((secs + 60)) h2load -c 16 -m 32 -t 1 -D "$secs" -N 15s -H "authorization: Bearer $token" \
        "$url" >"$dir/out.1" 2>&1 || echo "saturating run: h2load exit $?" >>"$dir/errors") </dev/null >/dev/null 2>&1 &
    echo "$!" >>"$CHAOS_PIDFILE"
    echo "$!"
}

# chaos_load_stop DIR PID: asks the loop to stop after its current run and waits for it.
chaos_load_stop() {
    local dir=$1 pid=$2 deadline
    touch "$dir/stop"
    deadline=$(($(date +%s) + 60))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "load loop did not stop within 60 s: killed" >>"$dir/errors"
            pkill -KILL -P "$pid" 2>/dev/null
            kill -KILL "$pid" 2>/dev/null
            break
        fi
        sleep 0.1
    done
    wait "$pid" 2>/dev/null
    chaos_forget "$pid"
    return 0
}

# chaos_load_totals DIR: "SUCCEEDED S2XX STARTED FAILED ERRORED RUNS" over every run's summary.
chaos_load_totals() {
    cat "$1"/out.* 2>/dev/null | awk '
        /^requests:/ { started += $4; succeeded += $8; failed += $10; errored += $12; runs++ }
        /^status codes:/ { s2 += $3 }
        END { printf "%d %d %d %d %d %d\n", succeeded, s2, started, failed, errored, runs }'
}

# chaos_load_rate DIR T0 T1: 2xx responses per second completed in [T0, T1) (seconds).
chaos_load_rate() {
    cat "$1"/req.* 2>/dev/null | awk -v t0="$2" -v t1="$3" '
        $2 >= 200 && $2 < 300 { t = ($1 + $3) / 1e6; if (t >= t0 && t < t1) n++ }
        END { if (t1 > t0) printf "%.0f", n / (t1 - t0); else print 0 }'
}

# chaos_load_count DIR T0 T1: the number of 2xx responses completed in [T0, T1).
chaos_load_count() {
    cat "$1"/req.* 2>/dev/null | awk -v t0="$2" -v t1="$3" '
        $2 >= 200 && $2 < 300 { t = ($1 + $3) / 1e6; if (t >= t0 && t < t1) n++ } END { print n + 0 }'
}
