/*
 * Fuzz target: the body of POST /api/v1/auth/login (tg_login_body_parse). Oracles: an
 * independent expectation (jansson only says whether the text is JSON at all, with other
 * flags; a small scanner here reads the top-level object: its keys unescaped, duplicates,
 * the members' types and unescaped byte lengths) agrees on every verdict and names the
 * same refusal; accepted values are NUL-free and within bounds; an accepted body
 * re-encoded parses to the same two strings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/password.h"
#include "server/routes/login_body.h"

static size_t skip_ws(const char *t, size_t n, size_t i)
{
    while (i < n && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r'))
        ++i;
    return i;
}

static unsigned hex4(const char *t)
{
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
        char c = t[k];
        v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* Appends code point c as UTF-8, storing only what fits in cap; returns the new length. */
static size_t put_utf8(unsigned c, char *out, size_t o, size_t cap)
{
    unsigned char b[4];
    size_t k;
    if (c < 0x80) {
        b[0] = (unsigned char)c, k = 1;
    } else if (c < 0x800) {
        b[0] = (unsigned char)(0xc0 | c >> 6), b[1] = (unsigned char)(0x80 | (c & 0x3f)), k = 2;
    } else if (c < 0x10000) {
        b[0] = (unsigned char)(0xe0 | c >> 12), b[1] = (unsigned char)(0x80 | (c >> 6 & 0x3f));
        b[2] = (unsigned char)(0x80 | (c & 0x3f)), k = 3;
    } else {
        b[0] = (unsigned char)(0xf0 | c >> 18), b[1] = (unsigned char)(0x80 | (c >> 12 & 0x3f));
        b[2] = (unsigned char)(0x80 | (c >> 6 & 0x3f)), b[3] = (unsigned char)(0x80 | (c & 0x3f)), k = 4;
    }
    for (size_t j = 0; j < k; ++j, ++o)
        if (o < cap)
            out[o] = (char)b[j];
    return o;
}

/* The string whose opening quote is t[i], of text already known to be valid JSON: its
 * unescaped bytes into out (as many as fit in cap), its length in *len; returns the index
 * after the closing quote. */
static size_t scan_string(const char *t, size_t i, char *out, size_t cap, size_t *len)
{
    size_t o = 0;
    for (++i; t[i] != '"';) {
        if (t[i] != '\\') {
            if (o < cap)
                out[o] = t[i];
            ++o, ++i;
            continue;
        }
        char e = t[i + 1];
        unsigned c;
        i += 2;
        switch (e) {
        case 'b':
            c = '\b';
            break;
        case 'f':
            c = '\f';
            break;
        case 'n':
            c = '\n';
            break;
        case 'r':
            c = '\r';
            break;
        case 't':
            c = '\t';
            break;
        case 'u':
            c = hex4(t + i);
            i += 4;
            if (c >= 0xd800 && c < 0xdc00) { /* a high surrogate: its low half follows as \uDC00-\uDFFF */
                c = 0x10000 + ((c - 0xd800) << 10) + (hex4(t + i + 2) - 0xdc00);
                i += 6;
            }
            break;
        default:
            c = (unsigned char)e; /* " \ / */
        }
        o = put_utf8(c, out, o, cap);
    }
    *len = o;
    return i + 1;
}

/* Skips one value of valid JSON starting at t[i]; returns the index after it. */
static size_t skip_value(const char *t, size_t n, size_t i)
{
    size_t len, depth = 0;
    char scratch[1];
    do {
        if (t[i] == '"') {
            i = scan_string(t, i, scratch, 0, &len);
            continue;
        }
        if (t[i] == '{' || t[i] == '[')
            ++depth;
        else if (t[i] == '}' || t[i] == ']')
            --depth;
        else if (depth == 0) { /* a number, true, false or null */
            while (i < n && t[i] != ',' && t[i] != '}' && t[i] != ']' && t[i] != ' ' && t[i] != '\t' && t[i] != '\n' &&
                   t[i] != '\r')
                ++i;
            return i;
        }
        ++i;
    } while (depth > 0);
    return i;
}

typedef struct {
    int present, is_string;
    size_t len;
} member_t;

/* 1: accepted; 0: invalid_parameter with *message; -1: invalid_json. */
static int model(const char *t, size_t n, const char **message)
{
    /* Is it JSON at all, with no key twice in any object (nested ones included)? */
    json_t *any = n > 0 ? json_loadb(t, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL) : NULL;
    json_decref(any);
    size_t i = skip_ws(t, n, 0);
    if (any == NULL || t[i] != '{')
        return -1;
    char **keys = calloc(n, sizeof(*keys));
    size_t *key_lens = calloc(n, sizeof(*key_lens)), nkeys = 0;
    member_t email = {0, 0, 0}, password = {0, 0, 0};
    int verdict = 1;
    if (keys == NULL || key_lens == NULL)
        abort();
    i = skip_ws(t, n, i + 1);
    while (t[i] == '"') {
        char scratch[1];
        size_t key_len;
        (void)scan_string(t, i, scratch, 0, &key_len); /* its length first, then the key itself */
        char *key = malloc(key_len + 1);
        if (key == NULL)
            abort();
        i = skip_ws(t, n, scan_string(t, i, key, key_len, &key_len));
        i = skip_ws(t, n, i + 1); /* past the ':' */
        for (size_t k = 0; k < nkeys; ++k)
            if (key_lens[k] == key_len && memcmp(keys[k], key, key_len) == 0)
                verdict = -1; /* a duplicate key */
        keys[nkeys] = key, key_lens[nkeys++] = key_len;
        member_t *m = key_len == 5 && memcmp(key, "email", 5) == 0      ? &email
                      : key_len == 8 && memcmp(key, "password", 8) == 0 ? &password
                                                                        : NULL;
        size_t value_len = 0;
        int is_string = t[i] == '"';
        i = is_string ? scan_string(t, i, scratch, 0, &value_len) : skip_value(t, n, i);
        if (m != NULL)
            *m = (member_t){1, is_string, value_len};
        i = skip_ws(t, n, i);
        if (t[i] == ',')
            i = skip_ws(t, n, i + 1);
    }
    for (size_t k = 0; k < nkeys; ++k)
        free(keys[k]);
    free(keys);
    free(key_lens);
    if (verdict == -1)
        return -1;
    if (nkeys != (size_t)(email.present + password.present))
        *message = "body: only \"email\" and \"password\" are accepted.";
    else if (!email.is_string || email.len < 1 || email.len > 254)
        *message = "email: must be a string of 1 to 254 bytes.";
    else if (!password.is_string || password.len < 1 || password.len > 1024)
        *message = "password: must be a string of 1 to 1024 bytes.";
    else
        return 1;
    return 0;
}

static int fixed_message(const char *code, const char *message)
{
    if (strcmp(code, "invalid_json") == 0)
        return strcmp(message, "The request body must be a JSON object.") == 0;
    return strcmp(code, "invalid_parameter") == 0 && (strcmp(message, "body: only \"email\" and \"password\" are accepted.") == 0 ||
                                                      strcmp(message, "email: must be a string of 1 to 254 bytes.") == 0 ||
                                                      strcmp(message, "password: must be a string of 1 to 1024 bytes.") == 0);
}

static void check_round_trip(const tg_login_body_t *b)
{
    json_t *doc = json_pack("{s:s, s:s%}", "email", b->email, "password", b->password, b->password_len);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(doc);
    if (text == NULL)
        abort();
    tg_login_body_t again;
    const char *code, *message;
    if (tg_login_body_parse(text, strlen(text), &again, &code, &message) != 0 || strcmp(again.email, b->email) != 0 ||
        again.password_len != b->password_len || memcmp(again.password, b->password, b->password_len) != 0)
        abort();
    tg_login_body_clear(&again);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    tg_login_body_t b;
    const char *code = NULL, *message = NULL, *expected_message = NULL;
    int rc = tg_login_body_parse(size > 0 ? text : NULL, size, &b, &code, &message);
    int expected = model(text, size, &expected_message);
    if (rc == 0) {
        if (expected != 1 || b.doc == NULL)
            abort();
        size_t email_len = strlen(b.email);
        if (email_len < 1 || email_len > TG_LOGIN_EMAIL_MAX || b.password_len < 1 || b.password_len > TG_PASSWORD_MAX_LEN ||
            strlen(b.password) != b.password_len)
            abort();
        check_round_trip(&b);
        tg_login_body_clear(&b);
        if (b.doc != NULL || b.email != NULL)
            abort();
    } else {
        if (rc != -1 || expected == 1 || b.doc != NULL || code == NULL || message == NULL || !fixed_message(code, message))
            abort();
        if ((expected == -1) != (strcmp(code, "invalid_json") == 0))
            abort();
        if (expected == 0 && strcmp(message, expected_message) != 0)
            abort(); /* refused for another reason than the model's */
    }
    return 0;
}
