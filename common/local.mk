# common/: code both tollgated and tollgate-collector link (logging, settings, time, ids).
noinst_LIBRARIES += common/libtgcommon.a
common_libtgcommon_a_CPPFLAGS = $(AM_CPPFLAGS)
common_libtgcommon_a_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
common_libtgcommon_a_SOURCES = \
	common/log.c common/log.h \
	common/dburl.c common/dburl.h \
	common/config.c common/config.h \
	common/suite_settings.c common/suite_settings.h \
	common/node_id.c common/node_id.h \
	common/random.c common/random.h \
	common/uuid.c common/uuid.h \
	common/timefmt.c common/timefmt.h \
	common/apitoken.c common/apitoken.h \
	common/siphash.c common/siphash.h \
	common/password.c common/password.h \
	common/usage_record.c common/usage_record.h \
	common/version.h
# password.c includes <argon2.h>; apitoken.c uses OpenSSL (above). Programs linking
# libtgcommon.a add $(OPENSSL_LIBS) $(ARGON2_LIBS).
common_libtgcommon_a_CFLAGS += $(ARGON2_CFLAGS)
# --retention-days bounds, read by tollgated, tollgate-collector and tollgatectl.
common_libtgcommon_a_SOURCES += common/retention.h
# How the three programs open PostgreSQL connections (libpq's headers; each program
# already links $(PQ_LIBS)).
common_libtgcommon_a_SOURCES += common/pg_connect.c common/pg_connect.h
# Hex digits both ways (percent-escapes, UUID text, token digests).
common_libtgcommon_a_SOURCES += common/hex.c common/hex.h
common_libtgcommon_a_CFLAGS += $(PQ_CFLAGS)
