# tests/unit/test_route_table: server/routes.c's table declares each protected route's
# scope, no route's own code checks a scope or charges a limit (the handler does), and
# routes make their database calls through server/db_call.h.
# Included from tests/local.mk, after the shared test variables.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/unit/test_route_table
TESTS += tests/unit/test_route_table
tests_unit_test_route_table_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_route_table_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) $(PQ_CFLAGS)
tests_unit_test_route_table_SOURCES = tests/unit/test_route_table.c
tests_unit_test_route_table_LDADD = $(TG_SERVER_LIBS) $(CRITERION_LIBS)

endif
