# contrib/bench: the benchmark harness's own programs (issue 6). contrib/bench/run builds
# them by itself with build.mk, so the harness works before configure; this fragment
# also builds them with the project's flags (-O2, -Werror) so a plain `make` keeps them
# compiling.
#   contrib/bench/bare/bare   the bare libh2o hello-world, the yardstick of docs/performance.md
#   contrib/bench/copy_raw    raw COPY BINARY of usage rows, PostgreSQL's ingest ceiling
noinst_PROGRAMS += contrib/bench/bare/bare contrib/bench/copy_raw
contrib_bench_bare_bare_SOURCES = contrib/bench/bare/bare.c
contrib_bench_bare_bare_CFLAGS = $(AM_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS)
contrib_bench_bare_bare_LDADD = $(H2O_LIBS) $(OPENSSL_LIBS)
contrib_bench_copy_raw_SOURCES = contrib/bench/copy_raw.c
contrib_bench_copy_raw_CFLAGS = $(AM_CFLAGS) $(PQ_CFLAGS)
contrib_bench_copy_raw_LDADD = $(PQ_LIBS)
EXTRA_DIST += contrib/bench/run contrib/bench/crosscheck contrib/bench/ab contrib/bench/callgrind contrib/bench/build.mk contrib/bench/nginx/nginx.conf.in
