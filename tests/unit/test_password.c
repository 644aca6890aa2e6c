/*
 * Unit tests of common/password.c: argon2id PHC strings with the documented parameters,
 * verification, length limits, concurrent use from threads, and that the dummy verify
 * costs about what a real one does (a ratio, never an absolute time).
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/password.h"

static tg_password_result_t hash_str(const char *pw, char encoded[TG_PASSWORD_ENCODED_MAX])
{
    return tg_password_hash(pw, strlen(pw), encoded);
}

Test(password, hash_then_verify)
{
    char encoded[TG_PASSWORD_ENCODED_MAX];
    cr_assert_eq(hash_str("correct horse battery", encoded), TG_PASSWORD_OK);
    cr_assert_eq(strncmp(encoded, "$argon2id$v=19$m=19456,t=2,p=1$", 31), 0, "unexpected PHC string %s", encoded);
    cr_assert_eq(tg_password_verify(encoded, "correct horse battery", 21), TG_PASSWORD_OK);
    cr_assert_eq(tg_password_verify(encoded, "correct horse batterY", 21), TG_PASSWORD_MISMATCH);
    cr_assert_eq(tg_password_verify(encoded, "correct horse batter", 20), TG_PASSWORD_MISMATCH);
    cr_assert_eq(tg_password_verify(encoded, "", 0), TG_PASSWORD_MISMATCH);
}

Test(password, salts_differ)
{
    char a[TG_PASSWORD_ENCODED_MAX], b[TG_PASSWORD_ENCODED_MAX];
    cr_assert_eq(hash_str("same password", a), TG_PASSWORD_OK);
    cr_assert_eq(hash_str("same password", b), TG_PASSWORD_OK);
    cr_assert_str_neq(a, b);
}

Test(password, length_limits)
{
    char encoded[TG_PASSWORD_ENCODED_MAX];
    static char big[TG_PASSWORD_MAX_LEN + 2];
    memset(big, 'x', sizeof(big) - 1);
    cr_assert_eq(hash_str("1234567", encoded), TG_PASSWORD_TOO_SHORT);
    cr_assert_eq(hash_str("12345678", encoded), TG_PASSWORD_OK);
    cr_assert_eq(tg_password_hash(big, TG_PASSWORD_MAX_LEN, encoded), TG_PASSWORD_OK);
    cr_assert_eq(tg_password_verify(encoded, big, TG_PASSWORD_MAX_LEN), TG_PASSWORD_OK);
    cr_assert_eq(tg_password_hash(big, TG_PASSWORD_MAX_LEN + 1, encoded), TG_PASSWORD_TOO_LONG);
    cr_assert_eq(tg_password_verify(encoded, big, TG_PASSWORD_MAX_LEN + 1), TG_PASSWORD_TOO_LONG);
}

Test(password, bytes_not_strings)
{
    char encoded[TG_PASSWORD_ENCODED_MAX];
    const char pw[] = "abc\0defgh";
    cr_assert_eq(tg_password_hash(pw, 9, encoded), TG_PASSWORD_OK);
    cr_assert_eq(tg_password_verify(encoded, pw, 9), TG_PASSWORD_OK);
    cr_assert_eq(tg_password_verify(encoded, pw, 3), TG_PASSWORD_MISMATCH);
}

Test(password, malformed_hash_is_an_error)
{
    cr_assert_eq(tg_password_verify("", "password", 8), TG_PASSWORD_ERROR);
    cr_assert_eq(tg_password_verify("$argon2id$v=19$m=19456,t=2,p=1$bad", "password", 8), TG_PASSWORD_ERROR);
    cr_assert_eq(tg_password_verify("$2b$12$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234", "password", 8),
                 TG_PASSWORD_ERROR);
}

typedef struct st_worker_arg_t {
    int index;
    int ok;
} worker_arg_t;

static void *hash_and_verify(void *p)
{
    worker_arg_t *arg = p;
    char pw[32], encoded[TG_PASSWORD_ENCODED_MAX];
    snprintf(pw, sizeof(pw), "password-%d", arg->index);
    arg->ok = tg_password_hash(pw, strlen(pw), encoded) == TG_PASSWORD_OK &&
              tg_password_verify(encoded, pw, strlen(pw)) == TG_PASSWORD_OK &&
              tg_password_verify(encoded, "password-x", 10) == TG_PASSWORD_MISMATCH;
    return NULL;
}

Test(password, concurrent_threads)
{
    enum { N = 4 };
    pthread_t threads[N];
    worker_arg_t args[N];
    for (int i = 0; i < N; ++i) {
        args[i] = (worker_arg_t){i, 0};
        cr_assert_eq(pthread_create(&threads[i], NULL, hash_and_verify, &args[i]), 0);
    }
    for (int i = 0; i < N; ++i) {
        pthread_join(threads[i], NULL);
        cr_assert(args[i].ok, "thread %d failed", i);
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

Test(password, dummy_costs_what_a_verify_costs)
{
    /*
     * Minimum of several runs: robust against other tests sharing the cores (Criterion runs
     * this file's tests side by side, and `make check` shares the machine). The minima only
     * fall as runs are added, so on a busy machine it takes more runs (up to MAX_RUNS) until
     * both are near their true cost; a dummy that really costs less than a verify (or more)
     * stays out of bounds however many runs are taken.
     */
    enum { MIN_RUNS = 5, MAX_RUNS = 40 };
    char encoded[TG_PASSWORD_ENCODED_MAX];
    cr_assert_eq(hash_str("some password", encoded), TG_PASSWORD_OK);
    double real = 1e9, dummy = 1e9;
    int runs = 0;
    for (; runs < MAX_RUNS; ++runs) {
        if (runs >= MIN_RUNS && dummy > real * 0.6 && dummy < real * 1.6)
            break;
        double t0 = now_ms();
        cr_assert_eq(tg_password_verify(encoded, "wrong password", 14), TG_PASSWORD_MISMATCH);
        double t1 = now_ms();
        tg_password_verify_dummy("wrong password", 14);
        double t2 = now_ms();
        if (t1 - t0 < real)
            real = t1 - t0;
        if (t2 - t1 < dummy)
            dummy = t2 - t1;
    }
    cr_log_info("argon2id verify %.1f ms, dummy %.1f ms (min of %d)", real, dummy, runs);
    cr_assert(dummy > real * 0.6 && dummy < real * 1.6, "verify %.1f ms vs dummy %.1f ms (min of %d runs)", real, dummy, runs);
}
