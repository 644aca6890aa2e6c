# tests/integration/test_dashboard: the token dashboard (GET /dashboard/) served by a real
# tollgated over HTTP/1.1 and h2c, and driven in a real browser by tests/browser/dashboard.mjs
# (node + playwright-core from tests/browser/package-lock.json + Debian's chromium; contrib/test
# installs both). Included from tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_dashboard
TESTS += tests/integration/test_dashboard
tests_integration_test_dashboard_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_dashboard_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_dashboard_SOURCES = tests/integration/test_dashboard.c
tests_integration_test_dashboard_LDADD = $(TG_INTEGRATION_LDADD) $(LIBS)

endif

EXTRA_DIST += tests/browser/package.json tests/browser/package-lock.json tests/browser/dashboard.mjs
