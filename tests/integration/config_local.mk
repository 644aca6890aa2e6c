# tests/integration/test_config: one configuration file for the suite, and the master's
# supervision of children that cannot run (issue 12). Included from tests/local.mk.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_config
TESTS += tests/integration/test_config
tests_integration_test_config_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_config_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_config_SOURCES = tests/integration/test_config.c
tests_integration_test_config_LDADD = $(TG_INTEGRATION_LDADD) $(LIBS)

endif
