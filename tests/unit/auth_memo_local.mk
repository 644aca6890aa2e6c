# tests/unit/test_auth_memo: server/auth_memo.c (each connection's last Authorization
# header, parsed). Included from tests/local.mk, after the shared test variables.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/unit/test_auth_memo
TESTS += tests/unit/test_auth_memo
tests_unit_test_auth_memo_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_auth_memo_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS)
tests_unit_test_auth_memo_SOURCES = tests/unit/test_auth_memo.c
tests_unit_test_auth_memo_LDADD = server/libtgserver.a $(CRITERION_LIBS) $(LIBS)

endif
