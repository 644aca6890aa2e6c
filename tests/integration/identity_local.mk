# tests/integration/test_identity: issue 3's login/logout, /api/v1/me and token CRUD
# against a real PostgreSQL and a real tollgated (HTTP/1.1 and h2c). Included from
# tests/local.mk, after the fixture's rules. OpenSSL: the test signs JWTs by hand.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_identity
TESTS += tests/integration/test_identity
tests_integration_test_identity_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_identity_CFLAGS = $(TG_TEST_CFLAGS) $(OPENSSL_CFLAGS)
tests_integration_test_identity_SOURCES = tests/integration/test_identity.c
tests_integration_test_identity_LDADD = $(TG_INTEGRATION_LDADD) common/libtgcommon.a $(OPENSSL_LIBS) $(ARGON2_LIBS) -lpthread $(LIBS)

endif

# tests/integration/test_revocation: issue 11's revocation races (a lookup stalled inside
# PostgreSQL while its credential is revoked on this node or another).
if HAVE_TEST_DEPS

check_PROGRAMS += tests/integration/test_revocation
TESTS += tests/integration/test_revocation
tests_integration_test_revocation_CPPFLAGS = $(AM_CPPFLAGS)
tests_integration_test_revocation_CFLAGS = $(TG_TEST_CFLAGS)
tests_integration_test_revocation_SOURCES = tests/integration/test_revocation.c
tests_integration_test_revocation_LDADD = $(TG_INTEGRATION_LDADD) $(LIBS)

endif
