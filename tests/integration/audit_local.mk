# tests/integration/test_audit: the audit log (schema 0009, GET /api/v1/audit,
# tollgatectl audit) against a real PostgreSQL and a real tollgated. Included from
# tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_audit
TESTS += tests/integration/test_audit
tests_integration_test_audit_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_audit_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_audit_SOURCES = tests/integration/test_audit.c
tests_integration_test_audit_LDADD = $(TG_INTEGRATION_LDADD) $(LIBS)

endif
