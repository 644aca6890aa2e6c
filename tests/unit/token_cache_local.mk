# tests/unit/test_token_cache: server/token_cache.c with an injected clock (TTL, the
# stale-while-revalidate grace for API tokens, negative entries, expire_all, forget).
# Included from tests/local.mk, after the shared test variables.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/unit/test_token_cache
TESTS += tests/unit/test_token_cache
tests_unit_test_token_cache_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_token_cache_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) $(PQ_CFLAGS)
tests_unit_test_token_cache_SOURCES = tests/unit/test_token_cache.c
tests_unit_test_token_cache_LDADD = $(TG_SERVER_LIBS) $(CRITERION_LIBS)

endif
