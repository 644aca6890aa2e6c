# tests/integration/test_proxy: --route reverse-proxy routes against the fixture's real
# upstream: route and scope per path, the paths refused before forwarding, and the
# headers an upstream sees. Included from tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_proxy
TESTS += tests/integration/test_proxy
tests_integration_test_proxy_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_proxy_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_proxy_SOURCES = tests/integration/test_proxy.c
tests_integration_test_proxy_LDADD = $(TG_INTEGRATION_LDADD) -lpthread $(LIBS)

endif
