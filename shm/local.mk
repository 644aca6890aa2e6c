# shm/: the shared-memory ring and shared counters. Depends on nothing else of ours.
noinst_LIBRARIES += shm/libtgshm.a
shm_libtgshm_a_SOURCES = shm/ring.c shm/ring.h shm/ring_layout.h \
	shm/revocations.c shm/revocations.h \
	shm/counters.c shm/counters.h \
	shm/token_stats.c shm/token_stats.h \
	shm/lease_line.c shm/lease_line.h \
	shm/throttle.c shm/throttle.h
