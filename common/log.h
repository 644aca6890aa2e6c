/*
 * Structured logging: one JSON object per line on stderr, shared by every tollgate
 * program. Fields are passed as a printf-like "key=%d key2=%s" list so the compiler
 * checks their types; string values are JSON-escaped. Never pass a credential here.
 */
#ifndef TG_LOG_H
#define TG_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum { TG_LOG_DEBUG = 0, TG_LOG_INFO, TG_LOG_WARN, TG_LOG_ERROR } tg_log_level_t;

/** Sets the minimum level written (default TG_LOG_INFO). Call from main only. */
void tg_log_set_level(tg_log_level_t level);
/** Parses "debug|info|warn|error"; returns -1 on anything else. */
int tg_log_parse_level(const char *name, tg_log_level_t *level);

/**
 * Writes {"ts","level","pid","component","msg",<fields>} as one line with a single
 * write(2), so lines from concurrent processes never interleave (lines < PIPE_BUF are
 * atomic on pipes; longer ones are still one syscall). `fields` is NULL or a list of
 * space-separated `name=%conv` items, conv one of d i u ld lu lld llu zu f s.
 */
void tg_log(tg_log_level_t level, const char *component, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 4, 5)));
void tg_logv(tg_log_level_t level, const char *component, const char *msg, const char *fields, va_list ap);

#define tg_log_debug(comp, msg, ...) tg_log(TG_LOG_DEBUG, comp, msg, __VA_ARGS__)
#define tg_log_info(comp, msg, ...) tg_log(TG_LOG_INFO, comp, msg, __VA_ARGS__)
#define tg_log_warn(comp, msg, ...) tg_log(TG_LOG_WARN, comp, msg, __VA_ARGS__)
#define tg_log_error(comp, msg, ...) tg_log(TG_LOG_ERROR, comp, msg, __VA_ARGS__)

/**
 * Appends `s` (length `len`) JSON-escaped to buf[*pos..cap); returns -1 (and leaves
 * *pos at cap) when it does not fit. Exposed for the logger's own tests and for code
 * that builds JSON by hand on hot paths.
 */
int tg_json_escape(char *buf, size_t *pos, size_t cap, const char *s, size_t len);

/**
 * A libpq notice processor (give it to PQsetNoticeProcessor with the component's name as
 * `arg`): a server notice or a message like "FATAL: terminating connection" becomes one
 * JSON warning line instead of libpq's default raw print to stderr. Notices come from
 * the server and carry no credential.
 */
void tg_log_pg_notice(void *arg, const char *message);

#endif
