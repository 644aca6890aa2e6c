# tests/unit/test_ring: shm/ring.c with real processes (forked producers, SIGKILL, SIGSTOP).
if HAVE_TEST_DEPS
check_PROGRAMS += tests/unit/test_ring
TESTS += tests/unit/test_ring
tests_unit_test_ring_SOURCES = tests/unit/test_ring.c
tests_unit_test_ring_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_ring_LDADD = shm/libtgshm.a $(CRITERION_LIBS) -lrt
endif
