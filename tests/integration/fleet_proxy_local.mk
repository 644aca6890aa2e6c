# tests/integration/test_fleet_proxy: tollgated behind Debian's haproxy (X-Forwarded-For,
# PROXY protocol v1 and v2) with --trusted-proxy; clients on other loopback addresses.
# Included from tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_fleet_proxy
TESTS += tests/integration/test_fleet_proxy
tests_integration_test_fleet_proxy_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_fleet_proxy_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_fleet_proxy_SOURCES = tests/integration/test_fleet_proxy.c
tests_integration_test_fleet_proxy_LDADD = $(TG_INTEGRATION_LDADD) common/libtgcommon.a $(OPENSSL_LIBS) $(ARGON2_LIBS) $(LIBS)

endif
