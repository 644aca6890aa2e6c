/*
 * Issue 7: "no credential, token hash or password in any log line, error or metric".
 * Runs after every other integration test (tests/integration/secrets_local.mk) and greps
 * what the fixture kept of the run under $TG_FX_AUDIT_DIR (tollgated and collector logs,
 * tollgatectl's stderr, error responses, /metrics bodies) for every secret the tests used,
 * in each form a careless log line could print it. Fails on any hit, naming file and line
 * with the secret masked, and when there is nothing to check (no secret recorded, no log
 * line kept), so that it cannot pass by looking at nothing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/apitoken.h"

/* Patterns shorter than this would match by chance; every form we look for is longer. */
#define MIN_PATTERN 8
/* Hits printed in full; the rest are counted. */
#define MAX_HITS_SHOWN 50

typedef struct st_secret_t {
    char *kind;  /* api_token, jwt, password */
    char *value; /* decoded */
    size_t len;
    char *origin; /* "<binary>: <where the fixture saw it>" */
} secret_t;

typedef struct st_pattern_t {
    char *bytes;
    size_t len;
    uint64_t key; /* first 8 bytes */
    size_t secret;
    const char *form;
    long next; /* next pattern in the same bucket, or -1 */
} pattern_t;

typedef struct st_scan_file_t {
    char *path;
    int is_server_log;
} scan_file_t;

/* Everything the run found; main's only state, passed around explicitly. */
typedef struct st_audit_t {
    const char *root;
    secret_t *secrets;
    size_t nsecrets, secrets_cap;
    pattern_t *patterns;
    size_t npatterns, patterns_cap;
    long *buckets;
    size_t nbuckets;
    scan_file_t *files;
    size_t nfiles, files_cap;
    size_t hits;
} audit_t;

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return p;
    *cap = *cap == 0 ? 64 : *cap * 2;
    void *bigger = realloc(p, *cap * size);
    if (bigger == NULL) {
        perror("realloc");
        exit(99);
    }
    return bigger;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL)
        return NULL;
    size_t cap = 65536, n = 0, got;
    char *buf = malloc(cap + 1);
    while (buf != NULL && (got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, cap * 2 + 1);
            if (bigger == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(fp);
    if (buf != NULL) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

/* ------------------------------------------------------------------ secrets */

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* One line of secrets-<pid>.tsv: kind TAB hex TAB source. */
static void add_secret_line(audit_t *a, const char *binary, char *line)
{
    char *tab1 = strchr(line, '\t'), *tab2 = tab1 != NULL ? strchr(tab1 + 1, '\t') : NULL;
    if (tab2 == NULL || (tab2 - tab1 - 1) % 2 != 0)
        return;
    size_t len = (size_t)(tab2 - tab1 - 1) / 2;
    char *value = malloc(len + 1);
    for (size_t i = 0; i < len; ++i) {
        int hi = hex_value(tab1[1 + 2 * i]), lo = hex_value(tab1[2 + 2 * i]);
        if (hi < 0 || lo < 0) {
            free(value);
            return;
        }
        value[i] = (char)(hi << 4 | lo);
    }
    value[len] = '\0';
    a->secrets = grow(a->secrets, &a->secrets_cap, a->nsecrets, sizeof(*a->secrets));
    secret_t *s = &a->secrets[a->nsecrets++];
    s->kind = strndup(line, (size_t)(tab1 - line));
    s->value = value;
    s->len = len;
    if (asprintf(&s->origin, "%s: %s", binary, tab2 + 1) < 0)
        s->origin = NULL;
}

static void load_secrets(audit_t *a, const char *path)
{
    size_t len;
    char *text = read_all(path, &len);
    if (text == NULL)
        return;
    /* the binary is the name of the directory the file is in */
    const char *slash = strrchr(path, '/'), *start = slash;
    while (start > path && start[-1] != '/')
        --start;
    char *binary = strndup(start, (size_t)(slash - start));
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n"))
        add_secret_line(a, binary, line);
    free(binary);
    free(text);
}

/* ------------------------------------------------------------------ the forms of a secret */

static void hex_encode(const uint8_t *in, size_t n, const char *digits, char *out)
{
    for (size_t i = 0; i < n; ++i) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Base64 without padding, in the alphabet given (standard or URL-safe). */
static void base64_encode(const uint8_t *in, size_t n, const char *alphabet, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        size_t chars = i + 2 < n ? 4 : i + 1 < n ? 3 : 2;
        for (size_t k = 0; k < chars; ++k)
            out[o++] = alphabet[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
}

static void add_pattern(audit_t *a, size_t secret, const char *form, const char *bytes, size_t len)
{
    if (len < MIN_PATTERN)
        return;
    for (size_t i = 0; i < a->npatterns; ++i) /* the same bytes twice (a token seen by two binaries): once */
        if (a->patterns[i].len == len && memcmp(a->patterns[i].bytes, bytes, len) == 0)
            return;
    a->patterns = grow(a->patterns, &a->patterns_cap, a->npatterns, sizeof(*a->patterns));
    pattern_t *p = &a->patterns[a->npatterns++];
    p->bytes = malloc(len);
    memcpy(p->bytes, bytes, len);
    p->len = len;
    memcpy(&p->key, bytes, 8);
    p->secret = secret;
    p->form = form;
    p->next = -1;
}

/* The hash of a credential in the forms a log line might print it. */
static void add_hash_forms(audit_t *a, size_t i, const char *what_hex, const char *what_b64)
{
    const secret_t *s = &a->secrets[i];
    uint8_t hash[TG_APITOKEN_HASH_LEN];
    char text[2 * TG_APITOKEN_HASH_LEN + 1];
    tg_apitoken_hash(s->value, s->len, hash);
    hex_encode(hash, sizeof(hash), "0123456789abcdef", text);
    add_pattern(a, i, what_hex, text, strlen(text));
    hex_encode(hash, sizeof(hash), "0123456789ABCDEF", text);
    add_pattern(a, i, what_hex, text, strlen(text));
    if (what_b64 != NULL) {
        base64_encode(hash, sizeof(hash), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", text);
        add_pattern(a, i, what_b64, text, strlen(text));
        base64_encode(hash, sizeof(hash), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", text);
        add_pattern(a, i, what_b64, text, strlen(text));
    }
}

static void add_forms(audit_t *a, size_t i)
{
    const secret_t *s = &a->secrets[i];
    add_pattern(a, i, "the whole secret", s->value, s->len);
    if (strcmp(s->kind, "api_token") == 0) {
        if (s->len == TG_APITOKEN_LEN && memcmp(s->value, TG_APITOKEN_PREFIX, TG_APITOKEN_PREFIX_LEN) == 0) {
            add_pattern(a, i, "the token without its prefix", s->value + TG_APITOKEN_PREFIX_LEN, s->len - TG_APITOKEN_PREFIX_LEN);
            add_pattern(a, i, "the token's random part", s->value + TG_APITOKEN_PREFIX_LEN, TG_APITOKEN_RANDOM_LEN);
        }
        add_hash_forms(a, i, "the token's SHA-256 (hex)", "the token's SHA-256 (base64)");
    } else if (strcmp(s->kind, "jwt") == 0) {
        const char *dot = memrchr(s->value, '.', s->len);
        if (dot != NULL)
            add_pattern(a, i, "the JWT's signature", dot + 1, (size_t)(s->value + s->len - dot - 1));
        add_hash_forms(a, i, "the JWT's SHA-256 (hex)", NULL);
    }
}

static uint64_t mix(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    return k;
}

static void index_patterns(audit_t *a)
{
    a->nbuckets = 1024;
    while (a->nbuckets < 2 * a->npatterns)
        a->nbuckets *= 2;
    a->buckets = malloc(a->nbuckets * sizeof(*a->buckets));
    for (size_t b = 0; b < a->nbuckets; ++b)
        a->buckets[b] = -1;
    for (size_t i = 0; i < a->npatterns; ++i) {
        size_t b = mix(a->patterns[i].key) & (a->nbuckets - 1);
        a->patterns[i].next = a->buckets[b];
        a->buckets[b] = (long)i;
    }
}

/* ------------------------------------------------------------------ scanning */

/* One line per leaking line, naming the longest form found in it. The secret is masked:
 * "tgk_****" for a whole API token (the prefix is public), "****" otherwise. */
static void report_hit(audit_t *a, const char *path, size_t line, const pattern_t *p, size_t others)
{
    if (++a->hits > MAX_HITS_SHOWN)
        return;
    const secret_t *s = &a->secrets[p->secret];
    int whole_token = strcmp(s->kind, "api_token") == 0 && p->len == s->len && memcmp(p->bytes, "tgk_", 4) == 0;
    printf("LEAK %s:%zu: %s of a %s (%zu bytes: %s****) from %s", path + strlen(a->root) + 1, line, p->form, s->kind, p->len,
           whole_token ? "tgk_" : "", s->origin != NULL ? s->origin : "?");
    if (others > 0)
        printf("; and %zu more matching form(s) on this line", others);
    printf("\n");
}

/* Scans one line; reports it once when any pattern occurs in it. */
static void scan_line(audit_t *a, const char *path, size_t line_no, const char *line, size_t len)
{
    size_t mask = a->nbuckets - 1, found = 0;
    const pattern_t *longest = NULL;
    for (size_t i = 0; i + 8 <= len; ++i) {
        uint64_t key;
        memcpy(&key, line + i, 8);
        for (long k = a->buckets[mix(key) & mask]; k >= 0; k = a->patterns[k].next) {
            const pattern_t *p = &a->patterns[k];
            if (p->key == key && i + p->len <= len && memcmp(line + i, p->bytes, p->len) == 0) {
                ++found;
                if (longest == NULL || p->len > longest->len)
                    longest = p;
            }
        }
    }
    if (longest != NULL)
        report_hit(a, path, line_no, longest, found - 1);
}

/* Returns the number of lines of the file. */
static size_t scan_file(audit_t *a, const char *path)
{
    size_t len = 0;
    char *text = read_all(path, &len);
    if (text == NULL) {
        fprintf(stderr, "cannot read %s: %s\n", path, strerror(errno));
        return 0;
    }
    size_t lines = 0;
    for (size_t start = 0; start < len;) {
        const char *nl = memchr(text + start, '\n', len - start);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        scan_line(a, path, ++lines, text + start, end - start);
        start = end + 1;
    }
    free(text);
    return lines;
}

/* ------------------------------------------------------------------ walking the audit dir */

static audit_t *walking; /* nftw has no user pointer */

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)ftw;
    if (type != FTW_F)
        return 0;
    const char *name = strrchr(path, '/') + 1;
    size_t n = strlen(name);
    if (strncmp(name, "secrets-", 8) == 0 && n > 4 && strcmp(name + n - 4, ".tsv") == 0) {
        load_secrets(walking, path);
        return 0;
    }
    audit_t *a = walking;
    a->files = grow(a->files, &a->files_cap, a->nfiles, sizeof(*a->files));
    a->files[a->nfiles].path = strdup(path);
    a->files[a->nfiles].is_server_log = strncmp(name, "tollgated-", 10) == 0;
    ++a->nfiles;
    return 0;
}

/* Every integration test binary of this build ran before us (and so left its audit
 * directory): a test missing from secrets_local.mk's list could still be running. */
static int every_test_audited(const char *root)
{
    const char *dir = TG_BUILDDIR "/tests/integration";
    DIR *d = opendir(dir);
    if (d == NULL)
        return 1;
    int ok = 1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char bin[1024], audit[1024];
        struct stat st;
        snprintf(bin, sizeof(bin), "%s/%s", dir, e->d_name);
        if (strncmp(e->d_name, "test_", 5) != 0 || strchr(e->d_name, '.') != NULL || stat(bin, &st) != 0 || !S_ISREG(st.st_mode) ||
            access(bin, X_OK) != 0)
            continue;
        snprintf(audit, sizeof(audit), "%s/%s", root, e->d_name);
        if (stat(audit, &st) != 0 || !S_ISDIR(st.st_mode)) {
            printf("FAIL: %s left no audit records: add tests/integration/%s.log to the prerequisites in "
                   "tests/integration/secrets_local.mk, so that it runs before this check\n",
                   e->d_name, e->d_name);
            ok = 0;
        }
    }
    closedir(d);
    return ok;
}

static void audit_free(audit_t *a)
{
    for (size_t i = 0; i < a->nsecrets; ++i) {
        free(a->secrets[i].kind);
        free(a->secrets[i].value);
        free(a->secrets[i].origin);
    }
    for (size_t i = 0; i < a->npatterns; ++i)
        free(a->patterns[i].bytes);
    for (size_t i = 0; i < a->nfiles; ++i)
        free(a->files[i].path);
    free(a->secrets);
    free(a->patterns);
    free(a->files);
    free(a->buckets);
}

/* The verdict, printed last. 0 when nothing leaked and there was something to check. */
static int verdict(audit_t *a, size_t server_lines)
{
    if (a->hits > MAX_HITS_SHOWN)
        printf("... and %zu more\n", a->hits - MAX_HITS_SHOWN);
    if (a->nsecrets == 0) {
        printf("FAIL: no secret was recorded: the fixture did not audit this run (is TG_FX_AUDIT_DIR set for the tests?)\n");
        return 1;
    }
    if (server_lines == 0) {
        printf("FAIL: no tollgated log line was kept: nothing was checked\n");
        return 1;
    }
    if (a->hits > 0) {
        printf("FAIL: %zu line(s) of logs, errors or metrics hold a secret\n", a->hits);
        return 1;
    }
    if (!every_test_audited(a->root))
        return 1;
    printf("PASS: none of them appears in any log line, error response or metric\n");
    return 0;
}

int main(void)
{
    audit_t a;
    memset(&a, 0, sizeof(a));
    a.root = getenv("TG_FX_AUDIT_DIR");
    if (a.root == NULL || a.root[0] == '\0') {
        fprintf(stderr, "TG_FX_AUDIT_DIR is not set: run me through make check, after the integration tests\n");
        return 99;
    }
    walking = &a;
    if (nftw(a.root, visit, 16, FTW_PHYS) != 0) {
        fprintf(stderr, "cannot walk %s: %s\n", a.root, strerror(errno));
        return 99;
    }
    size_t kinds[3] = {0, 0, 0};
    for (size_t i = 0; i < a.nsecrets; ++i) {
        add_forms(&a, i);
        kinds[strcmp(a.secrets[i].kind, "api_token") == 0 ? 0 : strcmp(a.secrets[i].kind, "jwt") == 0 ? 1 : 2]++;
    }
    index_patterns(&a);
    size_t server_logs = 0, server_lines = 0, other_lines = 0;
    for (size_t f = 0; f < a.nfiles; ++f) {
        size_t lines = scan_file(&a, a.files[f].path);
        if (a.files[f].is_server_log) {
            ++server_logs;
            server_lines += lines;
        } else {
            other_lines += lines;
        }
    }
    printf("secrets recorded: %zu API tokens, %zu JWTs, %zu passwords (%zu forms searched)\n", kinds[0], kinds[1], kinds[2],
           a.npatterns);
    printf("searched: %zu tollgated logs (%zu lines), %zu other files (errors, metrics, stderr: %zu lines) under %s\n", server_logs,
           server_lines, a.nfiles - server_logs, other_lines, a.root);
    int rc = verdict(&a, server_lines);
    audit_free(&a);
    return rc;
}
