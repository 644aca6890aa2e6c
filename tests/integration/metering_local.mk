# tests/integration/test_metering: metering end to end (docs/api.md "What is metered", docs/collector.md,
# §6) against a real PostgreSQL, a real tollgated and its collector, over HTTP/1.1 and
# h2c, with h2load for load. Included from tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_metering
TESTS += tests/integration/test_metering
tests_integration_test_metering_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_metering_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_metering_SOURCES = tests/integration/test_metering.c
tests_integration_test_metering_LDADD = $(TG_INTEGRATION_LDADD) shm/libtgshm.a $(LIBS)

endif

# An LD_PRELOAD shim that kills a worker right after it wrote a chosen response
# (metering/a_response_sent_before_a_kill_has_its_row). Built without the sanitizers: it is
# preloaded into a sanitized tollgated too.
if HAVE_TEST_DEPS
EXTRA_tests_integration_test_metering_DEPENDENCIES = tests/integration/kill_after_write.so
tests/integration/kill_after_write.so: $(srcdir)/tests/integration/kill_after_write.c
	$(AM_V_CC)$(MKDIR_P) tests/integration && $(CC) -shared -fPIC -O2 -Wall -Wextra -Werror -o $@ $(srcdir)/tests/integration/kill_after_write.c -ldl
CLEANFILES += tests/integration/kill_after_write.so
EXTRA_DIST += tests/integration/kill_after_write.c
endif
