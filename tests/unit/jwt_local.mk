# tests/unit/test_jwt: server/jwt.c (HS256 issue/verify, every rejection built by hand
# with OpenSSL's HMAC). Included from tests/local.mk, after the shared test variables.
if HAVE_TEST_DEPS

check_PROGRAMS += tests/unit/test_jwt
TESTS += tests/unit/test_jwt
tests_unit_test_jwt_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_jwt_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) $(JWT_CFLAGS)
tests_unit_test_jwt_SOURCES = tests/unit/test_jwt.c
tests_unit_test_jwt_LDADD = server/libtgserver.a common/libtgcommon.a $(CRITERION_LIBS) $(JWT_LIBS) $(JANSSON_LIBS) \
	$(OPENSSL_LIBS) $(LIBS)

endif
