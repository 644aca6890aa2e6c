# tests/integration/test_fleet_limits: the fleet-wide limits of issue 15 with real parts
# (three nodes on one PostgreSQL, haproxy round robin, a saturating h2load). It failed on
# the per-node limits before leasing (3.00x the rate limit, 600 of a 200 quota, 30 guesses
# of a budget of 10) and passes with them. `make check-fleet-limits` runs it alone (one
# test: `tests/integration/test_fleet_limits --filter 'quota/*'`).
# The sanitizer build neither builds nor runs it: its bounds are measured at saturation,
# which the sanitizers' slowdown distorts, and the lease code it drives runs under them in
# test_fleet_leases and test_policies (this keeps contrib/test within its 20 minutes).
# Included from tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

if !TG_SANITIZERS
check_PROGRAMS += tests/integration/test_fleet_limits
TESTS += tests/integration/test_fleet_limits
tests_integration_test_fleet_limits_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_fleet_limits_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_fleet_limits_SOURCES = tests/integration/test_fleet_limits.c
tests_integration_test_fleet_limits_LDADD = $(TG_INTEGRATION_LDADD) common/libtgcommon.a $(OPENSSL_LIBS) $(ARGON2_LIBS) $(LIBS)

.PHONY: check-fleet-limits
check-fleet-limits: all tests/integration/test_fleet_limits$(EXEEXT)
	tests/integration/test_fleet_limits$(EXEEXT)

endif
endif
