/*
 * The login body's validation (see login_body.h), taken out of the route so that it runs
 * without a request: the route (server/routes/auth_routes.c) only turns a refusal into
 * its 400 response.
 */
#include "server/routes/login_body.h"

#include <string.h>

#include "common/password.h"

int tg_login_body_parse(const char *text, size_t len, tg_login_body_t *out, const char **code, const char **message)
{
    json_error_t jerr;
    json_t *doc = NULL;
    memset(out, 0, sizeof(*out));
    if (text != NULL && len > 0)
        doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        json_decref(doc);
        *code = "invalid_json";
        *message = "The request body must be a JSON object.";
        return -1;
    }
    const json_t *e = json_object_get(doc, "email"), *p = json_object_get(doc, "password");
    const char *problem = NULL;
    if (json_object_size(doc) != (size_t)(e != NULL) + (p != NULL))
        problem = "body: only \"email\" and \"password\" are accepted.";
    else if (!json_is_string(e) || json_string_length(e) == 0 || json_string_length(e) > TG_LOGIN_EMAIL_MAX)
        problem = "email: must be a string of 1 to 254 bytes.";
    else if (!json_is_string(p) || json_string_length(p) == 0 || json_string_length(p) > TG_PASSWORD_MAX_LEN)
        problem = "password: must be a string of 1 to 1024 bytes.";
    if (problem != NULL) {
        json_decref(doc);
        *code = "invalid_parameter";
        *message = problem;
        return -1;
    }
    out->doc = doc;
    out->email = json_string_value(e);
    out->password = json_string_value(p);
    out->password_len = json_string_length(p);
    return 0;
}

void tg_login_body_clear(tg_login_body_t *body)
{
    json_decref(body->doc);
    memset(body, 0, sizeof(*body));
}
