# tests/unit/test_throttle: shm/throttle.c (keyed hash, GCRA budgets, memories, eviction,
# processes racing on one key) and server/auth_throttle.c's client keys, with an injected
# clock. Included from tests/local.mk, after the shared test variables.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/unit/test_throttle
TESTS += tests/unit/test_throttle
tests_unit_test_throttle_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_throttle_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) $(PQ_CFLAGS)
tests_unit_test_throttle_SOURCES = tests/unit/test_throttle.c tests/unit/race.h
tests_unit_test_throttle_LDADD = $(TG_SERVER_LIBS) $(CRITERION_LIBS)

endif
