# tests/: Criterion unit tests (tests/unit) and integration tests against a real
# PostgreSQL and a real tollgated (tests/integration).
#
# `make check` builds the programs first (check depends on all), so integration tests
# find tollgated and tollgatectl under $(abs_top_builddir) (TG_BUILDDIR in AM_CPPFLAGS).
# Each Criterion binary runs its tests one process per test; the fixture shares one
# PostgreSQL cluster per binary (see tests/integration/fixture.h).

if HAVE_TEST_DEPS

# Flags every test gets: Criterion, libcurl, libpq, jansson.
TG_TEST_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(CURL_CFLAGS) $(PQ_CFLAGS) $(JANSSON_CFLAGS)
TG_TEST_LIBS = $(CRITERION_LIBS) $(CURL_LIBS) $(PQ_LIBS) $(JANSSON_LIBS)

# The integration fixture: every integration test links it first.
noinst_LIBRARIES += tests/integration/libtgfixture.a
tests_integration_libtgfixture_a_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_libtgfixture_a_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_libtgfixture_a_SOURCES = \
	tests/integration/fixture.c tests/integration/fixture.h tests/integration/fixture_upstream.c \
	tests/integration/fixture_haproxy.c tests/integration/fixture_fleet.c
TG_INTEGRATION_LDADD = tests/integration/libtgfixture.a $(TG_TEST_LIBS)

# Issue 2: the server's process model, protocols, limits and bad input, end to end.
check_PROGRAMS += tests/integration/test_foundation
TESTS += tests/integration/test_foundation
tests_integration_test_foundation_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_foundation_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_foundation_SOURCES = tests/integration/test_foundation.c
tests_integration_test_foundation_LDADD = $(TG_INTEGRATION_LDADD)

endif

# Per-module test fragments (each wraps its own rules in `if HAVE_TEST_DEPS`); keep
# these includes last so the variables above exist for them.
include tests/build/local.mk
include tests/integration/config_local.mk
include tests/contrib/local.mk
include tests/unit/common_local.mk
include tests/integration/ctl_local.mk
include tests/unit/ring_local.mk
include tests/unit/jwt_local.mk
include tests/unit/auth_memo_local.mk
include tests/integration/identity_local.mk
include tests/integration/authz_local.mk
include tests/integration/collector_local.mk
include tests/integration/metering_local.mk
include tests/integration/usage_local.mk
include tests/unit/token_stats_local.mk
include tests/integration/policies_local.mk
include tests/integration/fleet_proxy_local.mk
include tests/integration/fleet_local.mk
include tests/integration/fleet_leases_local.mk
include tests/integration/fleet_limits_local.mk
include tests/unit/throttle_local.mk
include tests/unit/token_cache_local.mk
include tests/integration/throttle_local.mk
include tests/integration/fleet_throttle_local.mk
include tests/integration/hardening_local.mk
include tests/integration/errors_local.mk
include tests/integration/dashboard_local.mk
include tests/integration/proxy_local.mk
include tests/integration/audit_local.mk
include tests/fuzz/fuzz_local.mk
include tests/integration/secrets_local.mk
include tests/integration/contract_local.mk
include tests/integration/readyz_local.mk
include tests/integration/credential_table_local.mk
include tests/unit/route_table_local.mk
include tests/integration/lifecycle_local.mk
include tests/integration/metrics_local.mk
include tests/unit/latency_local.mk
include tests/unit/restart_policy_local.mk
include tests/integration/request_id_local.mk
