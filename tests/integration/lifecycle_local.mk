# tests/integration/test_lifecycle: tollgated under a service manager — sockets passed
# as systemd passes them, its notify socket, SIGHUP reloads and a restart under h2load —
# against a real tollgated and PostgreSQL. Included from tests/local.mk.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_lifecycle
TESTS += tests/integration/test_lifecycle
tests_integration_test_lifecycle_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_lifecycle_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_lifecycle_SOURCES = tests/integration/test_lifecycle.c
tests_integration_test_lifecycle_LDADD = $(TG_INTEGRATION_LDADD) $(LIBS)

endif
