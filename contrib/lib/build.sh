# shellcheck shell=bash
# Out-of-tree autotools builds of this checkout. Source after common.sh.

# An in-tree configure (someone ran ./configure in the checkout) makes every out-of-tree
# configure refuse with "source directory already configured"; undo it.
tg_unconfigure_source() {
    if [ -f "$TG_ROOT/config.status" ]; then
        tg_warn "the source tree was configured in place; running make distclean there"
        make -C "$TG_ROOT" distclean >/dev/null 2>&1 || rm -f "$TG_ROOT/config.status"
    fi
}

# Regenerates configure and the Makefile.in files (always, when $1 is "force"; otherwise
# only when configure is missing or older than its inputs).
tg_autoreconf() {
    local inputs=("$TG_ROOT/configure.ac" "$TG_ROOT/Makefile.am") f
    if [ "${1:-}" != force ] && [ -x "$TG_ROOT/configure" ]; then
        local stale=0
        for f in "${inputs[@]}" "$TG_ROOT"/*/local.mk "$TG_ROOT"/*/*/local.mk "$TG_ROOT"/*/*_local.mk "$TG_ROOT"/*/*/*_local.mk; do
            [ -e "$f" ] && [ "$f" -nt "$TG_ROOT/configure" ] && stale=1
        done
        [ "$stale" -eq 0 ] && return 0
    fi
    tg_say "autoreconf -fi"
    local log
    log=$(mktemp)
    if ! (cd "$TG_ROOT" && autoreconf -fi) >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        tg_die "autoreconf failed"
    fi
    rm -f "$log"
}

# tg_fresh_build DIR [configure args...]: removes DIR, configures into it and builds.
# Logs go to DIR/configure.out and DIR/make.out; the tail is shown on failure.
# Returns non-zero on failure (does not exit).
tg_fresh_build() {
    local dir=$1
    shift
    rm -rf "${TG_ROOT:?}/$dir"
    mkdir -p "$TG_ROOT/$dir"
    tg_say "configure $* (in $dir/)"
    if ! (cd "$TG_ROOT/$dir" && ../configure "$@") >"$TG_ROOT/$dir/configure.out" 2>&1; then
        tail -n 30 "$TG_ROOT/$dir/configure.out" >&2
        tg_warn "configure failed in $dir/ (full output: $dir/configure.out, $dir/config.log)"
        return 1
    fi
    tg_say "make -j$(tg_ncpu) (in $dir/)"
    if ! make -C "$TG_ROOT/$dir" -j"$(tg_ncpu)" >"$TG_ROOT/$dir/make.out" 2>&1; then
        grep -E -B2 -A6 'error|Error' "$TG_ROOT/$dir/make.out" | tail -n 60 >&2 || tail -n 60 "$TG_ROOT/$dir/make.out" >&2
        tg_warn "make failed in $dir/ (full output: $dir/make.out)"
        return 1
    fi
}

# tg_build DIR [configure args...]: incremental build in DIR; falls back to a fresh one
# when DIR is missing, was configured for another checkout, or the incremental build fails.
tg_build() {
    local dir=$1
    if [ -f "$TG_ROOT/$dir/Makefile" ] && grep -qxF "abs_top_builddir = $TG_ROOT/$dir" "$TG_ROOT/$dir/Makefile"; then
        tg_say "make -j$(tg_ncpu) (in $dir/)"
        if make -C "$TG_ROOT/$dir" -j"$(tg_ncpu)" >"$TG_ROOT/$dir/make.out" 2>&1; then
            return 0
        fi
        tg_warn "incremental build in $dir/ failed; rebuilding from scratch"
    fi
    tg_fresh_build "$@"
}

# Path of a built program in DIR (top level or a module folder), or nothing.
tg_built_program() {
    local dir=$1 name=$2 sub
    for sub in "" server/ ctl/ collector/; do
        if [ -x "$TG_ROOT/$dir/$sub$name" ] && [ ! -d "$TG_ROOT/$dir/$sub$name" ]; then
            printf '%s\n' "$TG_ROOT/$dir/$sub$name"
            return 0
        fi
    done
    return 1
}
