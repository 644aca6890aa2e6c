# server/ctl/: tollgatectl, the admin CLI (migrate, tenants, users, tokens). Blocking
# libpq is fine here: the CLI is not a worker. The migrations are compiled in
# (schema/local.mk generates schema/migrations_data.c), so the binary needs no files.
bin_PROGRAMS += tollgatectl
tollgatectl_CPPFLAGS = $(AM_CPPFLAGS)
tollgatectl_CFLAGS = $(AM_CFLAGS) $(PQ_CFLAGS) $(OPENSSL_CFLAGS) $(ARGON2_CFLAGS)
tollgatectl_SOURCES = \
	server/ctl/main.c server/ctl/ctl.h \
	server/ctl/args.c \
	server/ctl/db.c server/ctl/db.h \
	server/ctl/migrate.c \
	server/ctl/migrate_status.c \
	server/ctl/tenant.c \
	server/ctl/user.c \
	server/ctl/token.c \
	server/ctl/token_admin.c \
	server/ctl/user_admin.c \
	server/ctl/partitions.c \
	server/ctl/ring_stats.c \
	schema/migrations.h
nodist_tollgatectl_SOURCES = schema/migrations_data.c
tollgatectl_LDADD = collector/libtgcollector.a shm/libtgshm.a common/libtgcommon.a $(PQ_LIBS) $(OPENSSL_LIBS) $(ARGON2_LIBS) $(LIBS)
