# tests/integration/test_collector: tollgate-collector against a real ring and a real
# PostgreSQL (the fixture's clusters). Included from tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_collector
TESTS += tests/integration/test_collector
tests_integration_test_collector_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_collector_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_collector_SOURCES = tests/integration/test_collector.c
tests_integration_test_collector_LDADD = $(TG_INTEGRATION_LDADD) collector/libtgcollector.a partitions/libtgpartitions.a shm/libtgshm.a \
	common/libtgcommon.a $(PQ_LIBS) $(LIBS)

endif

# An LD_PRELOAD shim that fails one fdopendir() call (collector/recovery_survives_a_failed_spool_listing).
# Built without the sanitizers: it is preloaded into a sanitized collector too.
if HAVE_TEST_DEPS
EXTRA_tests_integration_test_collector_DEPENDENCIES = tests/integration/fail_fdopendir.so
tests/integration/fail_fdopendir.so: $(srcdir)/tests/integration/fail_fdopendir.c
	$(AM_V_CC)$(MKDIR_P) tests/integration && $(CC) -shared -fPIC -O2 -Wall -Wextra -Werror -o $@ $(srcdir)/tests/integration/fail_fdopendir.c -ldl
CLEANFILES += tests/integration/fail_fdopendir.so
EXTRA_DIST += tests/integration/fail_fdopendir.c
endif
