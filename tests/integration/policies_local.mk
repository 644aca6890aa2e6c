# tests/integration/test_policies: token policies end to end (allowedIps, rate limit,
# quota, live counts, rotation, order of checks, metered refusals, bad input) against a
# real PostgreSQL and a real tollgated (HTTP/1.1 and h2c). Included from tests/local.mk,
# after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_policies
TESTS += tests/integration/test_policies
tests_integration_test_policies_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_policies_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_policies_SOURCES = tests/integration/test_policies.c
tests_integration_test_policies_LDADD = $(TG_INTEGRATION_LDADD) common/libtgcommon.a $(OPENSSL_LIBS) $(ARGON2_LIBS) -lpthread $(LIBS)

endif
