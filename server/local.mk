# server/: tollgated — master (supervision), workers (libh2o event loops), routes.
noinst_LIBRARIES += server/libtgserver.a
server_libtgserver_a_CFLAGS = $(AM_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) $(PQ_CFLAGS) $(JWT_CFLAGS)
server_libtgserver_a_SOURCES = \
	server/settings.c server/settings.h \
	server/server.h server/request.h \
	server/listen.c server/listen.h \
	server/tls.c server/tls.h \
	server/proctitle.c server/proctitle.h \
	server/http.c server/http.h \
	server/router.c server/router.h \
	server/routes.c server/routes/routes.h \
	server/routes/health.c \
	server/handler.c \
	server/worker.c server/worker.h \
	server/supervisor.c server/supervisor.h

TG_SERVER_LIBS = server/libtgserver.a common/libtgcommon.a $(H2O_LIBS) $(OPENSSL_LIBS) $(JANSSON_LIBS) $(PQ_LIBS) $(JWT_LIBS) $(ARGON2_LIBS) $(LIBS)

bin_PROGRAMS += tollgated
tollgated_SOURCES = server/main.c
tollgated_CFLAGS = $(server_libtgserver_a_CFLAGS)
tollgated_LDADD = $(TG_SERVER_LIBS)
