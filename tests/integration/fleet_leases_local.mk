# tests/integration/test_fleet_leases: fleet-wide rate limits and quotas by leasing, two nodes
# on one PostgreSQL hammered straight (the basics; test_fleet_limits.c has haproxy + h2load).
# Included from tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_fleet_leases
TESTS += tests/integration/test_fleet_leases
tests_integration_test_fleet_leases_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_fleet_leases_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_fleet_leases_SOURCES = tests/integration/test_fleet_leases.c
tests_integration_test_fleet_leases_LDADD = $(TG_INTEGRATION_LDADD) common/libtgcommon.a $(OPENSSL_LIBS) $(ARGON2_LIBS) $(LIBS)

endif
