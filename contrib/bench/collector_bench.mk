# contrib/bench/collector_bench: tollgate-collector draining a full ring vs a raw COPY BINARY
# (and COPY text) of the same rows into the same table, one private PostgreSQL (fsync on).
# Uses the integration fixture, so it exists only with the test dependencies.
# Run: ./contrib/bench/collector_bench [-n ROWS] [-r ROUNDS]   (from the build directory)
if HAVE_TEST_DEPS
noinst_PROGRAMS += contrib/bench/collector_bench
contrib_bench_collector_bench_CPPFLAGS = $(AM_CPPFLAGS)
contrib_bench_collector_bench_CFLAGS = $(TG_TEST_CFLAGS)
contrib_bench_collector_bench_SOURCES = contrib/bench/collector_bench.c
contrib_bench_collector_bench_LDADD = $(TG_INTEGRATION_LDADD) collector/libtgcollector.a partitions/libtgpartitions.a shm/libtgshm.a \
	common/libtgcommon.a $(PQ_LIBS) $(LIBS) -lm
endif
