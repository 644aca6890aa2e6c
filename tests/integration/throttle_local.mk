# tests/integration/test_throttle: the per-address failed-authentication throttle end to
# end (429 after the budget, cached credentials still served, no lockout from another
# address, refill, off switch, no database or argon2id work when throttled) against a real
# PostgreSQL and a real tollgated. Included from tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_throttle
TESTS += tests/integration/test_throttle
tests_integration_test_throttle_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_throttle_CFLAGS = $(TG_TEST_CFLAGS) $(OPENSSL_CFLAGS)
tests_integration_test_throttle_SOURCES = tests/integration/test_throttle.c
tests_integration_test_throttle_LDADD = $(TG_INTEGRATION_LDADD) common/libtgcommon.a $(OPENSSL_LIBS) $(ARGON2_LIBS) $(LIBS)

endif
