# tests/integration/test_usage: issue 5's usage endpoint (page, cursor, summary, 404s,
# bad parameters), row-level security, rollups and the plans of the endpoint's own
# statements, against a real PostgreSQL and a real tollgated (HTTP/1.1 and h2c).
# Included from tests/local.mk, after the fixture's rules. The query layer
# (server/routes/usage_query.c: SQL and parameters) is compiled in, so the EXPLAIN tests
# look at exactly what the server runs; it needs OpenSSL (cursor HMAC) and libpq.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_usage
TESTS += tests/integration/test_usage
tests_integration_test_usage_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_usage_CFLAGS = $(TG_TEST_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS)
tests_integration_test_usage_SOURCES = tests/integration/test_usage.c server/routes/usage_query.c server/routes/usage_query.h
tests_integration_test_usage_LDADD = $(TG_INTEGRATION_LDADD) common/libtgcommon.a $(OPENSSL_LIBS) $(ARGON2_LIBS) -lm $(LIBS)

endif
