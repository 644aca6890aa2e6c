/*
 * argon2id password hashing and verification on top of libargon2. Everything here is
 * stack- and libargon2-allocated per call, so any thread (a worker's helper thread
 * included) can call it concurrently.
 */
#include "common/password.h"

#include <stdint.h>
#include <string.h>

#include <argon2.h>

#include "common/random.h"

/* Salt for the dummy verify: its value is irrelevant, only the work done is. */
static const uint8_t DUMMY_SALT[TG_PASSWORD_SALT_LEN] = "tollgate-dummy!";

tg_password_result_t tg_password_hash(const char *password, size_t len, char encoded[TG_PASSWORD_ENCODED_MAX])
{
    uint8_t salt[TG_PASSWORD_SALT_LEN];
    if (len < TG_PASSWORD_MIN_LEN)
        return TG_PASSWORD_TOO_SHORT;
    if (len > TG_PASSWORD_MAX_LEN)
        return TG_PASSWORD_TOO_LONG;
    if (tg_random_bytes(salt, sizeof(salt)) != 0)
        return TG_PASSWORD_ERROR;
    int rc = argon2id_hash_encoded(TG_PASSWORD_T_COST, TG_PASSWORD_M_COST_KIB, TG_PASSWORD_PARALLELISM, password, len, salt,
                                   sizeof(salt), TG_PASSWORD_HASH_LEN, encoded, TG_PASSWORD_ENCODED_MAX);
    return rc == ARGON2_OK ? TG_PASSWORD_OK : TG_PASSWORD_ERROR;
}

tg_password_result_t tg_password_verify(const char *encoded, const char *password, size_t len)
{
    if (len > TG_PASSWORD_MAX_LEN) {
        tg_password_verify_dummy(password, TG_PASSWORD_MAX_LEN);
        return TG_PASSWORD_TOO_LONG;
    }
    switch (argon2id_verify(encoded, password, len)) {
    case ARGON2_OK:
        return TG_PASSWORD_OK;
    case ARGON2_VERIFY_MISMATCH:
        return TG_PASSWORD_MISMATCH;
    default:
        return TG_PASSWORD_ERROR;
    }
}

void tg_password_verify_dummy(const char *password, size_t len)
{
    uint8_t tag[TG_PASSWORD_HASH_LEN];
    if (len > TG_PASSWORD_MAX_LEN)
        len = TG_PASSWORD_MAX_LEN;
    /* one argon2id run with the current parameters: the whole cost of a real verify
     * (decoding the PHC string and comparing 32 bytes are noise next to it) */
    (void)argon2id_hash_raw(TG_PASSWORD_T_COST, TG_PASSWORD_M_COST_KIB, TG_PASSWORD_PARALLELISM, password, len, DUMMY_SALT,
                            sizeof(DUMMY_SALT), tag, sizeof(tag));
}
