# tests/integration/test_errors: a catalogue of bad requests (issue 12, item 5), each
# answered in the JSON error shape over HTTP/1.1, h2c and HTTP/2 over TLS, including the
# errors libh2o writes itself (server/error_filter.c). Included from tests/local.mk,
# after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_errors
TESTS += tests/integration/test_errors
tests_integration_test_errors_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_errors_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_errors_SOURCES = tests/integration/test_errors.c
tests_integration_test_errors_LDADD = $(TG_INTEGRATION_LDADD) $(LIBS)

endif
