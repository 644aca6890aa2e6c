# tests/integration/test_readyz: GET /readyz against a real tollgated, PostgreSQL and
# ring (the test attaches to it to stand in for the collector). Included from tests/local.mk.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_readyz
TESTS += tests/integration/test_readyz
tests_integration_test_readyz_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_readyz_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_readyz_SOURCES = tests/integration/test_readyz.c
tests_integration_test_readyz_LDADD = $(TG_INTEGRATION_LDADD) shm/libtgshm.a common/libtgcommon.a $(LIBS)

endif
