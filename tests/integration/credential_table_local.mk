# tests/integration/test_credential_table: the node's one credential table with a real
# tollgated of two workers and a private PostgreSQL (stopped in one test). Included from tests/local.mk.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_credential_table
TESTS += tests/integration/test_credential_table
tests_integration_test_credential_table_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_credential_table_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_credential_table_SOURCES = tests/integration/test_credential_table.c
tests_integration_test_credential_table_LDADD = $(TG_INTEGRATION_LDADD) shm/libtgshm.a common/libtgcommon.a $(LIBS)

endif
