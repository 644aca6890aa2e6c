# tests/integration/test_metrics: --metrics-listen, every counter exported, the latency
# histogram, against a real tollgated and PostgreSQL. Included from tests/local.mk.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_metrics
TESTS += tests/integration/test_metrics
tests_integration_test_metrics_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_metrics_CFLAGS = $(TG_TEST_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS)
tests_integration_test_metrics_SOURCES = tests/integration/test_metrics.c
tests_integration_test_metrics_LDADD = $(TG_INTEGRATION_LDADD) $(TG_SERVER_LIBS)

endif
