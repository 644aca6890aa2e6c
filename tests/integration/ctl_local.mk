# tests/integration/test_ctl: tollgatectl against a real PostgreSQL (the fixture's
# throwaway cluster). Included from tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_ctl
TESTS += tests/integration/test_ctl
tests_integration_test_ctl_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_ctl_CFLAGS = $(TG_TEST_CFLAGS) $(OPENSSL_CFLAGS) $(ARGON2_CFLAGS)
tests_integration_test_ctl_SOURCES = tests/integration/test_ctl.c
nodist_tests_integration_test_ctl_SOURCES = schema/migrations_data.c
tests_integration_test_ctl_LDADD = $(TG_INTEGRATION_LDADD) common/libtgcommon.a $(OPENSSL_LIBS) $(ARGON2_LIBS) $(LIBS)

endif
