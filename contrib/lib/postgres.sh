# shellcheck shell=bash
# A local PostgreSQL 15 for contrib/quickstart: a cluster in a directory of our own, its
# Unix socket in the same directory, no TCP listener, reused when it already runs.
# Source after common.sh.

TG_PG_BINDIR=/usr/lib/postgresql/15/bin

# True when the postgres user can reach DIR (every parent must be searchable by it).
tg_pg_dir_reachable() {
    local dir=$1
    if tg_is_root; then
        runuser -u postgres -- test -x "$dir" 2>/dev/null
    else
        test -x "$dir"
    fi
}

# tg_pg_local_start DIR PORT DBNAME: makes sure a cluster in DIR/data runs, listening on
# the socket DIR/.s.PGSQL.PORT, and that database DBNAME exists. Prints the conninfo.
tg_pg_local_start() {
    local dir=$1 port=$2 dbname=$3
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if tg_is_root; then
        getent passwd postgres >/dev/null || tg_die "no postgres user: install postgresql-15"
        chown postgres: "$dir"
        chmod 700 "$dir"
        tg_pg_dir_reachable "$dir" ||
            tg_die "the postgres user cannot reach $dir (a parent directory is not searchable by it); set TOLLGATE_DATABASE_URL to a database of your own, or move the checkout"
    fi

    if "$TG_PG_BINDIR/pg_isready" -q -h "$dir" -p "$port"; then
        tg_say "PostgreSQL already running in $dir (port $port)"
    else
        if [ ! -f "$dir/data/PG_VERSION" ]; then
            tg_say "initdb $dir/data"
            tg_as_postgres "$TG_PG_BINDIR/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
                {
                    cat "$dir/initdb.log" >&2
                    tg_die "initdb failed"
                }
        fi
        tg_say "starting PostgreSQL in $dir (socket only, port $port)"
        tg_as_postgres "$TG_PG_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
            -o "-p $port -k $dir -c listen_addresses=''" start >/dev/null ||
            {
                tail -n 20 "$dir/postgres.log" >&2
                tg_die "PostgreSQL did not start (log: $dir/postgres.log)"
            }
    fi

    local psql=("$TG_PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres -d postgres)
    if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$dbname'")" != 1 ]; then
        tg_say "creating database $dbname"
        "${psql[@]}" -c "CREATE DATABASE \"$dbname\"" >/dev/null
    fi
    printf 'host=%s port=%s user=postgres dbname=%s\n' "$dir" "$port" "$dbname"
}

# tg_pg_local_stop DIR: stops the cluster in DIR/data if it runs.
tg_pg_local_stop() {
    local dir=$1
    [ -f "$dir/data/postmaster.pid" ] || return 0
    tg_as_postgres "$TG_PG_BINDIR/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
}
