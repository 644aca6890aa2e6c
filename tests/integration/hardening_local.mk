# tests/integration/test_hardening: tollgated against abusive clients (HTTP/2 Rapid
# Reset floods, slow clients, stream, header and connection limits), with
# tests/integration/h2_attack.py (python3-h2's hpack) as the attacker. Included from
# tests/local.mk, after the fixture's rules.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_hardening
TESTS += tests/integration/test_hardening
tests_integration_test_hardening_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_hardening_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_hardening_SOURCES = tests/integration/test_hardening.c
tests_integration_test_hardening_LDADD = $(TG_INTEGRATION_LDADD) -lpthread $(LIBS)

endif

EXTRA_DIST += tests/integration/h2_attack.py
