# contrib/bench/ring_bench: ns per tg_ring_append with 1 and 2 producer processes (fork),
# 256-byte records, the consumer keeping up. Run: ./contrib/bench/ring_bench [-n N] [-r RUNS]
noinst_PROGRAMS += contrib/bench/ring_bench
contrib_bench_ring_bench_SOURCES = contrib/bench/ring_bench.c
contrib_bench_ring_bench_LDADD = shm/libtgshm.a -lrt

# contrib/bench/ring_sink: consumes a tollgated ring without PostgreSQL, so that request-path
# benchmarks with the collector detached store every record instead of filling the ring.
noinst_PROGRAMS += contrib/bench/ring_sink
contrib_bench_ring_sink_SOURCES = contrib/bench/ring_sink.c
contrib_bench_ring_sink_LDADD = shm/libtgshm.a -lrt
