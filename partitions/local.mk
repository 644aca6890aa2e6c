# partitions/: what the database side knows about api_token_usage's daily partitions
# (names, day numbers, the listing, the prune sequence), shared by tollgate-collector and
# tollgatectl. Depends on common/ and libpq; no program's code.
noinst_LIBRARIES += partitions/libtgpartitions.a
partitions_libtgpartitions_a_CFLAGS = $(AM_CFLAGS) $(PQ_CFLAGS)
partitions_libtgpartitions_a_SOURCES = \
	partitions/partitions.c partitions/partitions.h \
	partitions/prune.c partitions/prune.h
