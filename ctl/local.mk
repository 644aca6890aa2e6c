# ctl/: tollgatectl, the admin CLI (migrate, tenants, users, tokens). Blocking
# libpq is fine here: the CLI is not a worker. The migrations are compiled in
# (schema/local.mk generates schema/migrations_data.c), so the binary needs no files.
bin_PROGRAMS += tollgatectl
tollgatectl_CPPFLAGS = $(AM_CPPFLAGS)
tollgatectl_CFLAGS = $(AM_CFLAGS) $(PQ_CFLAGS) $(OPENSSL_CFLAGS) $(ARGON2_CFLAGS)
tollgatectl_SOURCES = \
	ctl/main.c ctl/ctl.h \
	ctl/args.c \
	ctl/db.c ctl/db.h \
	ctl/migrate.c \
	ctl/migrate_status.c \
	ctl/tenant.c \
	ctl/user.c \
	ctl/token.c ctl/token.h \
	ctl/token_admin.c \
	ctl/user_admin.c \
	ctl/audit.c \
	ctl/partitions.c \
	ctl/ring_stats.c \
	schema/migrations.h
nodist_tollgatectl_SOURCES = schema/migrations_data.c
tollgatectl_LDADD = partitions/libtgpartitions.a shm/libtgshm.a common/libtgcommon.a $(PQ_LIBS) $(OPENSSL_LIBS) $(ARGON2_LIBS) $(LIBS)
