# tests/integration/test_fleet_throttle: the failed-authentication throttle of a fleet
# (three tollgated nodes on one PostgreSQL behind haproxy): one budget per client address
# for the fleet, real credentials still served on every node. Included from
# tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_fleet_throttle
TESTS += tests/integration/test_fleet_throttle
tests_integration_test_fleet_throttle_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_fleet_throttle_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_fleet_throttle_SOURCES = tests/integration/test_fleet_throttle.c
tests_integration_test_fleet_throttle_LDADD = $(TG_INTEGRATION_LDADD) common/libtgcommon.a $(OPENSSL_LIBS) $(ARGON2_LIBS) $(LIBS)

endif
