/*
 * The bounds and default of --retention-days, the one setting tollgated (which passes it
 * to the collector it supervises), tollgate-collector and `tollgatectl partitions prune`
 * all read: defined here once so that the three cannot disagree.
 */
#ifndef TG_RETENTION_H
#define TG_RETENTION_H

/* At least one whole day is kept: a partition is pruned only when wholly older. */
#define TG_RETENTION_DAYS_MIN 1
/* 100 years: beyond it a partition name's four-digit year would wrap (partitions/partitions.c). */
#define TG_RETENTION_DAYS_MAX 36500
/* Three months of usage history, the documented default (docs/collector.md). */
#define TG_RETENTION_DAYS_DEFAULT 90
/* The default as the settings tables write it. */
#define TG_RETENTION_DAYS_DEFAULT_TEXT "90"

#endif
