# tests/unit/test_latency: server/latency.c's route classes, buckets and series.
# Included from tests/local.mk.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/unit/test_latency
TESTS += tests/unit/test_latency
tests_unit_test_latency_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_latency_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) $(PQ_CFLAGS)
tests_unit_test_latency_SOURCES = tests/unit/test_latency.c
tests_unit_test_latency_LDADD = $(TG_SERVER_LIBS) $(CRITERION_LIBS)

endif
