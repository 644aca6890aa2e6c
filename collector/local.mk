# collector/: tollgate-collector, which drains the ring into PostgreSQL. It links the
# libraries below it (partitions/, shm/, common/) and no other program's code.
noinst_LIBRARIES += collector/libtgcollector.a
collector_libtgcollector_a_CFLAGS = $(AM_CFLAGS) $(PQ_CFLAGS)
collector_libtgcollector_a_SOURCES = \
	collector/settings.c collector/settings.h \
	collector/db.c collector/db.h \
	collector/copy_binary.c collector/copy_binary.h \
	collector/rollup_deltas.c collector/rollup_deltas.h \
	collector/position.c collector/position.h \
	collector/partition_cache.c collector/partition_cache.h \
	collector/prune.c collector/prune.h \
	collector/compact.c collector/compact.h \
	collector/spill.c collector/spill.h \
	collector/drain.c collector/drain.h

TG_COLLECTOR_LIBS = collector/libtgcollector.a partitions/libtgpartitions.a shm/libtgshm.a common/libtgcommon.a $(PQ_LIBS) $(LIBS)

bin_PROGRAMS += tollgate-collector
tollgate_collector_SOURCES = collector/main.c
tollgate_collector_CFLAGS = $(collector_libtgcollector_a_CFLAGS)
tollgate_collector_LDADD = $(TG_COLLECTOR_LIBS)
