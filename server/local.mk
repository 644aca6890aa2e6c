# server/: tollgated — master (supervision), workers (libh2o event loops), routes.
noinst_LIBRARIES += server/libtgserver.a
server_libtgserver_a_CFLAGS = $(AM_CFLAGS) $(H2O_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) $(PQ_CFLAGS) $(JWT_CFLAGS)
# <h2o/http2_internal.h> includes a khash.h that Debian does not ship (server/h2_guard.c)
server_libtgserver_a_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/server/compat
server_libtgserver_a_SOURCES = \
	server/settings.c server/settings.h \
	server/server.h server/request.h \
	server/listen.c server/listen.h \
	server/tls.c server/tls.h \
	server/proctitle.c server/proctitle.h \
	server/http.c server/http.h \
	server/error_filter.c server/error_filter.h \
	server/router.c server/router.h \
	server/routes.c server/routes/routes.h \
	server/routes/health.c \
	server/routes/ready.c \
	server/routes/metrics.c \
	server/stats.c server/stats.h \
	server/latency.c server/latency.h \
	server/metrics_listener.c server/metrics_listener.h \
	server/request_id.c server/request_id.h \
	server/access_log.c server/access_log.h \
	server/routes/auth_routes.c server/routes/login_body.c server/routes/login_body.h server/routes/me.c \
	server/routes/tokens.c server/routes/token_body.c server/routes/token_body.h \
	server/routes/token_json.c server/routes/token_json.h \
	server/routes/token_list.c server/routes/token_list.h \
	server/routes/usage.c server/routes/usage_query.c server/routes/usage_query.h \
	server/routes/dashboard.c server/dashboard/assets.h \
	server/routes/audit.c server/routes/audit_write.c server/routes/audit_write.h \
	server/handler.c server/handler.h \
	server/worker.c server/worker.h server/worker_context.h server/replica.c server/replica.h \
	server/supervisor.c server/supervisor.h server/restart_policy.c server/restart_policy.h \
	server/sd_notify.c server/sd_notify.h server/socket_activation.c server/socket_activation.h \
	server/reload.c server/reload.h \
	server/jwt_secret.c server/jwt_secret.h \
	server/db.c server/db.h server/db_call.c server/db_call.h \
	server/offload.c server/offload.h \
	server/token_cache.c server/token_cache.h \
	server/auth.c server/auth.h server/me_body.c server/me_body.h \
	server/h2_guard.c server/h2_guard.h server/compat/khash.h \
	server/lease.c server/lease.h server/lease_plan.c server/lease_plan.h server/lease_wait.c server/lease_wait.h \
	server/auth_throttle.c server/auth_throttle.h \
	server/auth_memo.c server/auth_memo.h \
	server/authz.c server/authz.h \
	server/policy.c server/policy.h \
	server/client_addr.c server/client_addr.h server/forwarded.c server/forwarded.h \
	server/proxy_protocol.c server/proxy_protocol.h server/proxy_accept.c server/proxy_accept.h \
	server/jwt.c server/jwt.h \
	server/proxy.c server/proxy.h server/proxy_path.c server/proxy_path.h \
	server/metering.c server/metering.h

# The token dashboard's files, compiled in: embed.sh turns them into
# server/dashboard/assets_data.c in the build tree (as schema/local.mk does for the
# migrations; a generated .c, so no BUILT_SOURCES). Their ETags are fixed here.
TG_DASHBOARD_FILES = \
	server/dashboard/index.html \
	server/dashboard/app.js \
	server/dashboard/app.css \
	server/dashboard/favicon.svg
nodist_server_libtgserver_a_SOURCES = server/dashboard/assets_data.c
EXTRA_DIST += server/dashboard/embed.sh $(TG_DASHBOARD_FILES)

server/dashboard/assets_data.c: $(srcdir)/server/dashboard/embed.sh $(TG_DASHBOARD_FILES)
	$(AM_V_GEN)$(MKDIR_P) server/dashboard && $(SHELL) $(srcdir)/server/dashboard/embed.sh $@ $(srcdir) $(TG_DASHBOARD_FILES)
CLEANFILES += server/dashboard/assets_data.c

TG_SERVER_LIBS = server/libtgserver.a shm/libtgshm.a common/libtgcommon.a $(H2O_LIBS) $(OPENSSL_LIBS) $(JANSSON_LIBS) $(PQ_LIBS) $(JWT_LIBS) $(ARGON2_LIBS) $(LIBS)

bin_PROGRAMS += tollgated
tollgated_SOURCES = server/main.c
tollgated_CFLAGS = $(server_libtgserver_a_CFLAGS)
tollgated_LDADD = $(TG_SERVER_LIBS)
# Address prefixes (allowedIps, --trusted-proxy): no libh2o, so fuzz targets link it alone.
server_libtgserver_a_SOURCES += server/cidr.c server/cidr.h
