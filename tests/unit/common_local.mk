# tests/unit/: Criterion unit tests of common/ (uuid, timefmt, apitoken, password, siphash), one
# binary per module, mirroring the source file it tests. Included from tests/local.mk.
if HAVE_TEST_DEPS

TG_COMMON_UNIT_CFLAGS = $(AM_CFLAGS) $(CRITERION_CFLAGS) $(OPENSSL_CFLAGS) $(ARGON2_CFLAGS)
TG_COMMON_UNIT_LDADD = common/libtgcommon.a $(CRITERION_LIBS) $(OPENSSL_LIBS) $(ARGON2_LIBS) $(LIBS)

check_PROGRAMS += tests/unit/test_uuid tests/unit/test_timefmt tests/unit/test_apitoken tests/unit/test_password tests/unit/test_log tests/unit/test_siphash
TESTS += tests/unit/test_uuid tests/unit/test_timefmt tests/unit/test_apitoken tests/unit/test_password tests/unit/test_log tests/unit/test_siphash

tests_unit_test_uuid_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_uuid_CFLAGS = $(TG_COMMON_UNIT_CFLAGS)
tests_unit_test_uuid_SOURCES = tests/unit/test_uuid.c
tests_unit_test_uuid_LDADD = $(TG_COMMON_UNIT_LDADD)

tests_unit_test_timefmt_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_timefmt_CFLAGS = $(TG_COMMON_UNIT_CFLAGS)
tests_unit_test_timefmt_SOURCES = tests/unit/test_timefmt.c
tests_unit_test_timefmt_LDADD = $(TG_COMMON_UNIT_LDADD)

tests_unit_test_apitoken_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_apitoken_CFLAGS = $(TG_COMMON_UNIT_CFLAGS)
tests_unit_test_apitoken_SOURCES = tests/unit/test_apitoken.c
tests_unit_test_apitoken_LDADD = $(TG_COMMON_UNIT_LDADD)

tests_unit_test_password_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_password_CFLAGS = $(TG_COMMON_UNIT_CFLAGS)
tests_unit_test_password_SOURCES = tests/unit/test_password.c
tests_unit_test_password_LDADD = $(TG_COMMON_UNIT_LDADD)

tests_unit_test_log_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_log_CFLAGS = $(TG_COMMON_UNIT_CFLAGS)
tests_unit_test_log_SOURCES = tests/unit/test_log.c
tests_unit_test_log_LDADD = $(TG_COMMON_UNIT_LDADD)

tests_unit_test_siphash_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_siphash_CFLAGS = $(TG_COMMON_UNIT_CFLAGS)
tests_unit_test_siphash_SOURCES = tests/unit/test_siphash.c
tests_unit_test_siphash_LDADD = $(TG_COMMON_UNIT_LDADD)

check_PROGRAMS += tests/unit/test_pg_connect
TESTS += tests/unit/test_pg_connect
tests_unit_test_pg_connect_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_pg_connect_CFLAGS = $(TG_COMMON_UNIT_CFLAGS) $(PQ_CFLAGS)
tests_unit_test_pg_connect_SOURCES = tests/unit/test_pg_connect.c
tests_unit_test_pg_connect_LDADD = $(TG_COMMON_UNIT_LDADD) $(PQ_LIBS)

check_PROGRAMS += tests/unit/test_hex
TESTS += tests/unit/test_hex
tests_unit_test_hex_CPPFLAGS = $(AM_CPPFLAGS)
tests_unit_test_hex_CFLAGS = $(TG_COMMON_UNIT_CFLAGS)
tests_unit_test_hex_SOURCES = tests/unit/test_hex.c
tests_unit_test_hex_LDADD = $(TG_COMMON_UNIT_LDADD)

endif
