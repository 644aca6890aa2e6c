/*
 * Process titles as `ps` shows them ("tollgated: worker 2"), by rewriting argv.
 */
#ifndef TG_PROCTITLE_H
#define TG_PROCTITLE_H

typedef struct st_tg_proctitle_t {
    char *area;
    size_t area_len;
} tg_proctitle_t;

/** Call first thing in main: moves environ out of the argv area so it can be reused. */
void tg_proctitle_init(tg_proctitle_t *pt, int argc, char **argv);
/** Overwrites the command line that ps shows. */
void tg_proctitle_set(tg_proctitle_t *pt, const char *title);

#endif
