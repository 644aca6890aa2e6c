# tests/unit/test_restart_policy: server/restart_policy.c, the collector's restart rule.
# Included from tests/local.mk.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/unit/test_restart_policy
TESTS += tests/unit/test_restart_policy
tests_unit_test_restart_policy_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_restart_policy_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_restart_policy_SOURCES = tests/unit/test_restart_policy.c
tests_unit_test_restart_policy_LDADD = $(TG_SERVER_LIBS) $(CRITERION_LIBS)

endif
