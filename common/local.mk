# common/: code both tollgated and tollgate-collector link (logging, settings, time, ids).
noinst_LIBRARIES += common/libtgcommon.a
common_libtgcommon_a_CPPFLAGS = $(AM_CPPFLAGS)
common_libtgcommon_a_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
common_libtgcommon_a_SOURCES = \
	common/log.c common/log.h \
	common/config.c common/config.h
