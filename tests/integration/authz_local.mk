# tests/integration/test_authz: issue 11's authorization matrix — every route and method
# against every kind of caller, and the table docs/security.md prints. Included from
# tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_authz
TESTS += tests/integration/test_authz
tests_integration_test_authz_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_authz_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_authz_SOURCES = tests/integration/test_authz.c
tests_integration_test_authz_LDADD = $(TG_INTEGRATION_LDADD)

endif
