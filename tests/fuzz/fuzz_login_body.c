/*
 * Fuzz target: the body of POST /api/v1/auth/login (tg_login_body_parse). Oracles: an
 * independent model of the rule (jansson's strict unpacking: exactly "email" and
 * "password", both strings, in their length bounds) agrees on every verdict; accepted
 * values are NUL-free and within bounds; refusals name a fixed code and sentence (never
 * a part of the input); an accepted body re-encoded parses to the same two strings.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/password.h"
#include "server/routes/login_body.h"

/* 1: the model accepts; 0: invalid_parameter; -1: invalid_json. */
static int model(const char *text, size_t len)
{
    json_t *doc = len > 0 ? json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
    if (doc == NULL || !json_is_object(doc)) {
        json_decref(doc);
        return -1;
    }
    const char *email, *password;
    size_t email_len, password_len;
    int ok = json_unpack_ex(doc, NULL, JSON_STRICT, "{s:s%, s:s%}", "email", &email, &email_len, "password", &password,
                            &password_len) == 0 &&
             email_len >= 1 && email_len <= 254 && password_len >= 1 && password_len <= TG_PASSWORD_MAX_LEN;
    json_decref(doc);
    return ok;
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
    const char *code = NULL, *message = NULL;
    int rc = tg_login_body_parse(size > 0 ? text : NULL, size, &b, &code, &message);
    int expected = model(text, size);
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
    }
    return 0;
}
