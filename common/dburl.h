/*
 * A database URL on the command line: whether it carries a password, and hiding it from
 * /proc/PID/cmdline once the settings hold their own copy. Used by tollgated (which then
 * rewrites its whole command line) and tollgatectl.
 */
#ifndef TG_DBURL_H
#define TG_DBURL_H

/** 1 when a libpq URI ("postgresql://user:PASSWORD@host/db", "...?password=...") or conninfo
 *  ("... password=...") carries a password. */
int tg_dburl_has_password(const char *url);

/** 1 when --database-url was given as a flag among argv[1..end) (so `ps` shows it). */
int tg_dburl_in_argv(int end, char **argv);

/**
 * Overwrites, in place, the value of every --database-url flag among argv[1..end) with
 * '*', so that /proc/PID/cmdline no longer shows it. Call only after the settings were
 * parsed into copies of their own.
 */
void tg_dburl_scrub_argv(int end, char **argv);

#endif
