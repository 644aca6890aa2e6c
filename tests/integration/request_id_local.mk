# tests/integration/test_request_id: X-Request-Id and --access-log against a real
# tollgated, PostgreSQL and upstream. Included from tests/local.mk.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_request_id
TESTS += tests/integration/test_request_id
tests_integration_test_request_id_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_request_id_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_request_id_SOURCES = tests/integration/test_request_id.c
tests_integration_test_request_id_LDADD = $(TG_INTEGRATION_LDADD)

endif
