# Issue 7: no credential, token hash or password in any log line, error or metric.
# Every test of `make check` gets TG_FX_AUDIT_DIR: the integration fixture keeps each
# binary's tollgated logs, error responses, /metrics bodies and tollgatectl stderr there,
# with the list of secrets the tests used (tests/integration/fixture.h, "secrets audit").
# check_secrets runs after every other integration test of the run (its .log depends on
# theirs) and fails if any secret, or its hash, appears in what was kept.
# Included from tests/local.mk, last.
AM_TESTS_ENVIRONMENT = TG_FX_AUDIT_DIR='$(abs_top_builddir)/tests/audit'; export TG_FX_AUDIT_DIR;

if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/check_secrets
TESTS += tests/integration/check_secrets
tests_integration_check_secrets_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_check_secrets_CFLAGS = $(AM_CFLAGS)
tests_integration_check_secrets_SOURCES = tests/integration/check_secrets.c
tests_integration_check_secrets_LDADD = common/libtgcommon.a $(OPENSSL_LIBS) $(LIBS)

# After every other integration test (automake's parallel harness runs a .log's
# prerequisites first). Listed by hand: filtering $(TEST_LOGS) needs GNU make functions,
# which automake -Wportability refuses. A new integration test goes here too;
# check_secrets fails when a test binary of this build dir left no audit records. The
# target is named through a variable: automake would take a literal one for an override
# of its own rule (which runs the test), while make merges the prerequisites into it.
TG_CHECK_SECRETS_LOG = tests/integration/check_secrets.log
$(TG_CHECK_SECRETS_LOG): tests/integration/test_foundation.log tests/integration/test_collector.log \
	tests/integration/test_ctl.log tests/integration/test_identity.log tests/integration/test_metering.log \
	tests/integration/test_policies.log tests/integration/test_throttle.log tests/integration/test_usage.log \
	tests/integration/test_hardening.log tests/integration/test_dashboard.log \
	tests/integration/test_contract.log tests/integration/test_proxy.log tests/integration/test_authz.log \
	tests/integration/test_errors.log tests/integration/test_config.log \
	tests/integration/test_revocation.log tests/integration/test_audit.log

endif
