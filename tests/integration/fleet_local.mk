# tests/integration/test_fleet: three nodes on one PostgreSQL behind haproxy (usage lands
# once, revocation reaches every node), and usage reads from a pg_basebackup -R standby.
# Included from tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_fleet
TESTS += tests/integration/test_fleet
tests_integration_test_fleet_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_fleet_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_fleet_SOURCES = tests/integration/test_fleet.c
tests_integration_test_fleet_LDADD = $(TG_INTEGRATION_LDADD) common/libtgcommon.a $(OPENSSL_LIBS) $(ARGON2_LIBS) $(LIBS)

endif
