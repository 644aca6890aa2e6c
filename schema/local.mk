# schema/: ordered SQL migrations, installed under $(pkgdatadir)/schema.
#
# The same files are compiled into tollgatectl (schema/migrations.h): embed.sh turns
# them into schema/migrations_data.c in the build tree. List new migrations here, in
# order; embed.sh refuses names that are not NNNN_name.sql or versions that do not
# increase. tollgatectl wraps each file in one transaction, so a file must not hold
# BEGIN/COMMIT statements or anything that cannot run in a transaction block (CREATE
# INDEX CONCURRENTLY: give such a step its own tool). The generated file is a .c (no
# generated header), so make builds it as an ordinary prerequisite of the object that
# needs it: BUILT_SOURCES is not needed.
TG_SCHEMA_SQL = \
	schema/0001_core.sql \
	schema/0002_usage.sql \
	schema/0004_usage_read.sql \
	schema/0005_credential_notify.sql \
	schema/0006_token_policies.sql \
	schema/0007_child_tokens.sql \
	schema/0008_token_reach.sql \
	schema/0009_mapped_cidrs.sql \
	schema/0010_audit.sql \
	schema/0011_user_disabled.sql \
	schema/0012_token_lineage.sql \
	schema/0013_usage_keys_tenant.sql \
	schema/0014_token_change.sql \
	schema/0016_auth_failures.sql \
	schema/0017_limit_leases.sql \
	schema/0018_usage_rollup_deltas.sql \
	schema/0019_revoke_only_new.sql \
	schema/0020_auth_network_budget.sql

schemadir = $(pkgdatadir)/schema
dist_schema_DATA = $(TG_SCHEMA_SQL)
EXTRA_DIST += schema/embed.sh schema/migrations.h

schema/migrations_data.c: $(srcdir)/schema/embed.sh $(TG_SCHEMA_SQL)
	$(AM_V_GEN)$(MKDIR_P) schema && $(SHELL) $(srcdir)/schema/embed.sh $@ $(srcdir) $(TG_SCHEMA_SQL)
CLEANFILES += schema/migrations_data.c
