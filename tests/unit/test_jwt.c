/*
 * Unit tests of server/jwt.c: issue -> verify round trips, and every rejection built
 * by hand — headers and payloads base64url-encoded here and signed with OpenSSL's
 * HMAC, so the tests do not trust libjwt to make the tokens they attack it with.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "server/jwt.h"

#define NOW INT64_C(1800000000) /* 2027-01-15T08:00:00Z */
#define SUB "0190f3a4-1111-7aaa-8bbb-000000000001"
#define TID "0190f3a4-2222-7aaa-8bbb-000000000002"
#define SID "0190f3a4-3333-7aaa-8bbb-000000000003"

static const unsigned char KEY[] = "0123456789abcdef0123456789abcdef-test-key";
#define KEYLEN (sizeof(KEY) - 1)

/* ------------------------------------------------------------------ helpers */

static size_t b64url(const unsigned char *in, size_t len, char *out)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[n++] = alphabet[(v >> 18) & 63];
        out[n++] = alphabet[(v >> 12) & 63];
        if (i + 1 < len)
            out[n++] = alphabet[(v >> 6) & 63];
        if (i + 2 < len)
            out[n++] = alphabet[v & 63];
    }
    out[n] = '\0';
    return n;
}

/* header.payload.HMAC(md, key) with our own encoder; md NULL gives an empty signature. */
static char *craft_md(const char *header, const char *payload, const EVP_MD *md, const unsigned char *key, size_t keylen)
{
    static char token[8192];
    size_t n = b64url((const unsigned char *)header, strlen(header), token);
    token[n++] = '.';
    n += b64url((const unsigned char *)payload, strlen(payload), token + n);
    if (md != NULL) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned maclen = 0;
        HMAC(md, key, (int)keylen, (const unsigned char *)token, n, mac, &maclen);
        token[n++] = '.';
        b64url(mac, maclen, token + n);
    } else {
        token[n++] = '.';
        token[n] = '\0';
    }
    return token;
}

static char *craft(const char *header, const char *payload)
{
    return craft_md(header, payload, EVP_sha256(), KEY, KEYLEN);
}

static char *payload_times(const char *extra, long long iat, long long exp)
{
    static char payload[512];
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"tid\":\"%s\",\"sid\":\"%s\",\"iat\":%lld,\"exp\":%lld%s}", SUB, TID, SID,
             iat, exp, extra);
    return payload;
}

static const char *good_payload(void)
{
    return payload_times("", NOW - 10, NOW + 3600);
}

/* a string literal and its length */
#define S(lit) (lit), (sizeof(lit) - 1)

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static int verify(const char *token)
{
    tg_jwt_claims_t claims;
    return tg_jwt_verify(KEY, KEYLEN, token, strlen(token), NOW, &claims);
}

static void fill_claims(tg_jwt_claims_t *c)
{
    memset(c, 0, sizeof(*c));
    for (int i = 0; i < 16; ++i) {
        c->user_id[i] = (uint8_t)(0x10 + i);
        c->tenant_id[i] = (uint8_t)(0x20 + i);
        c->session_id[i] = (uint8_t)(0x30 + i);
    }
    c->iat = NOW;
    c->exp = NOW + 3600;
}

/* ------------------------------------------------------------------ round trip */

Test(jwt, issue_then_verify_round_trips_every_claim)
{
    tg_jwt_claims_t in, out;
    fill_claims(&in);
    char token[TG_JWT_MAX_LEN + 1];
    int len = tg_jwt_issue(KEY, KEYLEN, &in, token, sizeof(token));
    cr_assert_gt(len, 0);
    cr_assert_eq((size_t)len, strlen(token));
    cr_assert(tg_jwt_is_shaped(token, (size_t)len));
    memset(&out, 0xff, sizeof(out));
    cr_assert_eq(tg_jwt_verify(KEY, KEYLEN, token, (size_t)len, NOW, &out), 0);
    cr_assert_arr_eq(out.user_id, in.user_id, 16);
    cr_assert_arr_eq(out.tenant_id, in.tenant_id, 16);
    cr_assert_arr_eq(out.session_id, in.session_id, 16);
    cr_assert_eq(out.iat, in.iat);
    cr_assert_eq(out.exp, in.exp);
    cr_assert_eq(out.nbf, 0);
}

Test(jwt, issue_with_nbf_round_trips)
{
    tg_jwt_claims_t in, out;
    fill_claims(&in);
    in.nbf = NOW - 5;
    char token[TG_JWT_MAX_LEN + 1];
    int len = tg_jwt_issue(KEY, KEYLEN, &in, token, sizeof(token));
    cr_assert_gt(len, 0);
    cr_assert_eq(tg_jwt_verify(KEY, KEYLEN, token, (size_t)len, NOW, &out), 0);
    cr_assert_eq(out.nbf, NOW - 5);
}

Test(jwt, issued_token_fails_with_another_key)
{
    tg_jwt_claims_t in, out;
    fill_claims(&in);
    char token[TG_JWT_MAX_LEN + 1];
    int len = tg_jwt_issue(KEY, KEYLEN, &in, token, sizeof(token));
    unsigned char other[KEYLEN];
    memcpy(other, KEY, KEYLEN);
    other[KEYLEN - 1] ^= 1;
    cr_assert_eq(tg_jwt_verify(other, KEYLEN, token, (size_t)len, NOW, &out), -1);
}

Test(jwt, issue_refuses_short_key_and_small_buffer)
{
    tg_jwt_claims_t in;
    fill_claims(&in);
    char token[TG_JWT_MAX_LEN + 1];
    cr_assert_eq(tg_jwt_issue(KEY, 31, &in, token, sizeof(token)), -1);
    cr_assert_eq(tg_jwt_issue(KEY, KEYLEN, &in, token, 40), -1);
}

Test(jwt, verify_refuses_short_key)
{
    tg_jwt_claims_t in, out;
    fill_claims(&in);
    char token[TG_JWT_MAX_LEN + 1];
    int len = tg_jwt_issue(KEY, KEYLEN, &in, token, sizeof(token));
    cr_assert_eq(tg_jwt_verify(KEY, 0, token, (size_t)len, NOW, &out), -1);
    cr_assert_eq(tg_jwt_verify(KEY, 31, token, (size_t)len, NOW, &out), -1);
}

Test(jwt, hand_made_token_is_accepted)
{
    /* proves the helpers below build tokens the verifier accepts when nothing is wrong */
    cr_assert_eq(verify(craft(HS256, good_payload())), 0);
    cr_assert_eq(verify(craft("{\"alg\":\"HS256\"}", good_payload())), 0);
    cr_assert_eq(verify(craft("{\"typ\":\"JWT\",\"alg\":\"HS256\"}", good_payload())), 0);
}

/* ------------------------------------------------------------------ shape */

Test(jwt, is_shaped)
{
    cr_assert(tg_jwt_is_shaped(S("a.b.c")));
    cr_assert(tg_jwt_is_shaped(S("aA0-_.b.c")));
    cr_assert_not(tg_jwt_is_shaped(S("a.b.")));
    cr_assert_not(tg_jwt_is_shaped(S(".b.c")));
    cr_assert_not(tg_jwt_is_shaped(S("a..c")));
    cr_assert_not(tg_jwt_is_shaped(S("a.b")));
    cr_assert_not(tg_jwt_is_shaped(S("a.b.c.d")));
    cr_assert_not(tg_jwt_is_shaped(S("a.b.c=")));
    cr_assert_not(tg_jwt_is_shaped(S("a+.b.c")));
    cr_assert_not(tg_jwt_is_shaped(S("a/.b.c")));
    cr_assert_not(tg_jwt_is_shaped(S("")));
    cr_assert_not(tg_jwt_is_shaped(S("tgk_abcdefghijklmnopqrstuvwxyz0123456789")));
    cr_assert_not(tg_jwt_is_shaped("a.b\0.c", 6));
}

/* The 16-byte blocks of the shape check agree with a byte-by-byte reading: every byte
 * value at every position of segments from 1 to 40 bytes (blocks, overlapping last blocks
 * and byte tails). */
static int reference_b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

Test(jwt, is_shaped_reads_every_byte_of_every_segment)
{
    char buf[128];
    for (size_t seg = 1; seg <= 40; ++seg) {
        for (size_t which = 0; which < 3; ++which) {
            for (size_t pos = 0; pos < seg; ++pos) {
                for (int c = 0; c < 256; ++c) {
                    /* three segments; the one under test is `seg` bytes of 'b' with byte `pos` set to c */
                    size_t n = 0;
                    for (size_t k = 0; k < 3; ++k) {
                        size_t len = k == which ? seg : 17;
                        memset(buf + n, 'b', len);
                        if (k == which)
                            buf[n + pos] = (char)c;
                        n += len;
                        if (k < 2)
                            buf[n++] = '.';
                    }
                    int want = reference_b64url((unsigned char)c);
                    cr_assert_eq(tg_jwt_is_shaped(buf, n), want, "segment %zu of %zu bytes, byte %zu = %d", which, seg, pos, c);
                }
            }
        }
    }
}

/* ------------------------------------------------------------------ algorithm and header */

Test(jwt, alg_none_is_refused_in_every_spelling)
{
    const char *headers[] = {"{\"alg\":\"none\"}", "{\"alg\":\"None\"}", "{\"alg\":\"NONE\"}",
                             "{\"alg\":\"none\",\"typ\":\"JWT\"}"};
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); ++i) {
        cr_assert_eq(verify(craft_md(headers[i], good_payload(), NULL, NULL, 0)), -1, "%s unsigned", headers[i]);
        cr_assert_eq(verify(craft(headers[i], good_payload())), -1, "%s with an HMAC", headers[i]);
    }
}

Test(jwt, other_algorithms_are_refused_even_with_a_valid_mac)
{
    /* libjwt would verify HS384/HS512 with our key and accept them: the pin must not */
    cr_assert_eq(verify(craft_md("{\"alg\":\"HS512\",\"typ\":\"JWT\"}", good_payload(), EVP_sha512(), KEY, KEYLEN)), -1);
    cr_assert_eq(verify(craft_md("{\"alg\":\"HS384\",\"typ\":\"JWT\"}", good_payload(), EVP_sha384(), KEY, KEYLEN)), -1);
    cr_assert_eq(verify(craft("{\"alg\":\"RS256\",\"typ\":\"JWT\"}", good_payload())), -1);
    cr_assert_eq(verify(craft("{\"alg\":\"ES256\",\"typ\":\"JWT\"}", good_payload())), -1);
    cr_assert_eq(verify(craft("{\"alg\":\"hs256\",\"typ\":\"JWT\"}", good_payload())), -1);
    cr_assert_eq(verify(craft("{\"alg\":\"HS256 \",\"typ\":\"JWT\"}", good_payload())), -1);
}

Test(jwt, header_must_be_exactly_ours)
{
    const char *headers[] = {
        "{\"typ\":\"JWT\"}",                        /* no alg */
        "{\"alg\":\"HS256\",\"typ\":\"jwt\"}",      /* typ spelled otherwise */
        "{\"alg\":\"HS256\",\"typ\":\"JWS\"}",      /* another typ */
        "{\"alg\":\"HS256\",\"kid\":\"1\"}",        /* key selection we do not do */
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",   /* critical extensions */
        "{\"alg\":\"HS256\",\"jku\":\"http://x\"}", /* remote keys */
        "{\"alg\":\"none\",\"alg\":\"HS256\"}",     /* duplicate keys: which one counts? */
        "{\"alg\":\"HS256\",\"alg\":\"HS256\"}",    /* even when they agree */
        "{\"alg\":256}",                            /* wrong type */
        "[\"HS256\"]",                              /* not an object */
        "\"HS256\"",                                /* a bare string */
        "{\"alg\":\"HS256\"",                       /* truncated */
        "{\"alg\":\"HS256\"} ",                     /* trailing garbage is fine for JSON, but... */
    };
    for (size_t i = 0; i + 1 < sizeof(headers) / sizeof(headers[0]); ++i)
        cr_assert_eq(verify(craft(headers[i], good_payload())), -1, "header %s", headers[i]);
    /* ...whitespace after the object is valid JSON: accepted (jansson's EOF check allows it) */
    cr_assert_eq(verify(craft(headers[sizeof(headers) / sizeof(headers[0]) - 1], good_payload())), 0);
}

/* ------------------------------------------------------------------ signature and encoding */

Test(jwt, wrong_key_is_refused)
{
    unsigned char other[KEYLEN];
    memcpy(other, KEY, KEYLEN);
    other[0] ^= 0x20;
    cr_assert_eq(verify(craft_md(HS256, good_payload(), EVP_sha256(), other, KEYLEN)), -1);
    cr_assert_eq(verify(craft_md(HS256, good_payload(), EVP_sha256(), KEY, KEYLEN - 1)), -1);
}

Test(jwt, tampered_payload_is_refused)
{
    char token[8192];
    strcpy(token, craft(HS256, good_payload()));
    char *sig = strrchr(token, '.');
    /* re-sign nothing: swap in another payload and keep the old signature */
    char forged[8192];
    char *other = craft(HS256, payload_times("", NOW - 10, NOW + 999999));
    char *other_sig = strrchr(other, '.');
    *other_sig = '\0';
    snprintf(forged, sizeof(forged), "%s%s", other, sig);
    cr_assert_eq(verify(forged), -1);
}

Test(jwt, signature_bits_and_length_are_checked)
{
    char token[8192];
    strcpy(token, craft(HS256, good_payload()));
    size_t len = strlen(token);
    char flipped[8192];
    strcpy(flipped, token);
    flipped[len - 5] = flipped[len - 5] == 'A' ? 'B' : 'A';
    cr_assert_eq(verify(flipped), -1);
    /* truncated and extended signatures */
    strcpy(flipped, token);
    flipped[len - 1] = '\0';
    cr_assert_eq(verify(flipped), -1);
    strcpy(flipped, token);
    strcat(flipped, "AA");
    cr_assert_eq(verify(flipped), -1);
    /* padding */
    strcpy(flipped, token);
    strcat(flipped, "=");
    cr_assert_eq(verify(flipped), -1);
}

/* Signs "h64.p64" as given (already encoded), so non-canonical encodings carry a valid MAC. */
static char *sign_segments(const char *h64, const char *p64)
{
    static char token[8192];
    int n = snprintf(token, sizeof(token), "%s.%s", h64, p64);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    HMAC(EVP_sha256(), KEY, (int)KEYLEN, (const unsigned char *)token, (size_t)n, mac, &maclen);
    token[n++] = '.';
    b64url(mac, maclen, token + n);
    return token;
}

Test(jwt, non_canonical_base64_is_refused_even_when_signed)
{
    /* {"alg":"HS256" } is 16 bytes: 22 characters, the last with 4 unused bits */
    char h64[64], p64[1024];
    b64url((const unsigned char *)"{\"alg\":\"HS256\" }", 16, h64);
    b64url((const unsigned char *)good_payload(), strlen(good_payload()), p64);
    cr_assert_eq(verify(sign_segments(h64, p64)), 0);
    size_t n = strlen(h64);
    cr_assert_eq(n, 22);
    h64[n - 1] = (char)(h64[n - 1] + 1); /* sets an unused bit: same bytes to a lenient decoder */
    cr_assert_eq(verify(sign_segments(h64, p64)), -1);
    /* length 1 mod 4 can encode nothing */
    b64url((const unsigned char *)"{\"alg\":\"HS256\" }", 16, h64);
    strcat(h64, "A");
    cr_assert_eq(verify(sign_segments(h64, p64)), -1);
}

Test(jwt, non_canonical_signature_is_refused)
{
    char token[8192];
    strcpy(token, craft(HS256, good_payload()));
    size_t len = strlen(token);
    /* 32 bytes are 43 characters: the last one has 2 unused bits */
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *at = strchr(alphabet, token[len - 1]);
    cr_assert_not_null(at);
    cr_assert_eq((at - alphabet) & 3, 0);
    token[len - 1] = alphabet[(at - alphabet) | 1];
    cr_assert_eq(verify(token), -1);
}

Test(jwt, oversized_and_empty_tokens_are_refused)
{
    static char big[8192]; /* craft() output: base64url of a 2 KB payload and more */
    char payload[TG_JWT_MAX_LEN];
    snprintf(payload, sizeof(payload), "{\"sub\":\"%s\",\"tid\":\"%s\",\"sid\":\"%s\",\"iat\":%lld,\"exp\":%lld,\"pad\":\"%0*d\"}",
             SUB, TID, SID, (long long)NOW, (long long)NOW + 60, 1500, 0);
    strcpy(big, craft(HS256, payload));
    cr_assert_gt(strlen(big), (size_t)TG_JWT_MAX_LEN);
    cr_assert_eq(verify(big), -1);
    tg_jwt_claims_t claims;
    cr_assert_eq(tg_jwt_verify(KEY, KEYLEN, "", 0, NOW, &claims), -1);
    cr_assert_eq(verify("not a jwt"), -1);
    cr_assert_eq(verify("a.b.c"), -1);
}

Test(jwt, non_ascii_bytes_are_refused)
{
    char token[8192];
    strcpy(token, craft(HS256, good_payload()));
    token[3] = (char)0xc3;
    cr_assert_eq(verify(token), -1);
}

/* ------------------------------------------------------------------ claims */

Test(jwt, identity_claims_must_be_canonical_uuids)
{
    const char *payloads[] = {
        "{\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":1800003600}",
        "{\"sub\":\"" SUB "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":1800003600}",
        "{\"sub\":\"" SUB "\",\"tid\":\"" TID "\",\"iat\":1799999990,\"exp\":1800003600}",
        "{\"sub\":\"0190F3A4-1111-7AAA-8BBB-000000000001\",\"tid\":\"" TID "\",\"sid\":\"" SID
        "\",\"iat\":1799999990,\"exp\":1800003600}",
        "{\"sub\":\"{" SUB "}\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":1800003600}",
        "{\"sub\":\"1\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":1800003600}",
        "{\"sub\":1,\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":1800003600}",
        "{\"sub\":\"' OR 1=1 --\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":1800003600}",
        "{\"sub\":\"" SUB "\",\"sub\":\"" SUB "\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":1800003600}",
        "[1,2,3]",
        "{}",
        "not json",
    };
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); ++i)
        cr_assert_eq(verify(craft(HS256, payloads[i])), -1, "payload %s", payloads[i]);
}

Test(jwt, time_claims_must_be_positive_integers)
{
    const char *payloads[] = {
        "{\"sub\":\"" SUB "\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990}",
        "{\"sub\":\"" SUB "\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"exp\":1800003600}",
        "{\"sub\":\"" SUB "\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":\"1800003600\"}",
        "{\"sub\":\"" SUB "\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":1800003600.5}",
        "{\"sub\":\"" SUB "\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":1.8e9}",
        "{\"sub\":\"" SUB "\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":null}",
        "{\"sub\":\"" SUB "\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":-1,\"exp\":1800003600}",
        "{\"sub\":\"" SUB "\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":1800003600,\"nbf\":\"0\"}",
        "{\"sub\":\"" SUB "\",\"tid\":\"" TID "\",\"sid\":\"" SID "\",\"iat\":1799999990,\"exp\":1800003600,\"nbf\":0}",
    };
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); ++i)
        cr_assert_eq(verify(craft(HS256, payloads[i])), -1, "payload %s", payloads[i]);
}

Test(jwt, expiry_with_leeway_edges)
{
    /* valid while exp > now - leeway */
    cr_assert_eq(verify(craft(HS256, payload_times("", NOW - 3600, NOW - TG_JWT_LEEWAY_S + 1))), 0);
    cr_assert_eq(verify(craft(HS256, payload_times("", NOW - 3600, NOW - TG_JWT_LEEWAY_S))), -1);
    cr_assert_eq(verify(craft(HS256, payload_times("", NOW - 3600, NOW - 3599))), -1);
    cr_assert_eq(verify(craft(HS256, payload_times("", NOW - 3600, NOW))), 0);
}

Test(jwt, not_before_with_leeway_edges)
{
    char extra[64];
    snprintf(extra, sizeof(extra), ",\"nbf\":%lld", (long long)(NOW + TG_JWT_LEEWAY_S));
    cr_assert_eq(verify(craft(HS256, payload_times(extra, NOW, NOW + 3600))), 0);
    snprintf(extra, sizeof(extra), ",\"nbf\":%lld", (long long)(NOW + TG_JWT_LEEWAY_S + 1));
    cr_assert_eq(verify(craft(HS256, payload_times(extra, NOW, NOW + 3600))), -1);
    snprintf(extra, sizeof(extra), ",\"nbf\":%lld", (long long)(NOW + 86400));
    cr_assert_eq(verify(craft(HS256, payload_times(extra, NOW, NOW + 90000))), -1);
}

Test(jwt, issued_at_with_leeway_edges)
{
    cr_assert_eq(verify(craft(HS256, payload_times("", NOW + TG_JWT_LEEWAY_S, NOW + 3600))), 0);
    cr_assert_eq(verify(craft(HS256, payload_times("", NOW + TG_JWT_LEEWAY_S + 1, NOW + 3600))), -1);
}

Test(jwt, expiry_must_follow_issue)
{
    cr_assert_eq(verify(craft(HS256, payload_times("", NOW, NOW))), -1);
    cr_assert_eq(verify(craft(HS256, payload_times("", NOW + 10, NOW + 5))), -1);
}

Test(jwt, verify_leaves_claims_untouched_on_failure)
{
    tg_jwt_claims_t claims;
    memset(&claims, 0xab, sizeof(claims));
    const char *token = craft(HS256, payload_times("", NOW - 3600, NOW - 3599));
    cr_assert_eq(tg_jwt_verify(KEY, KEYLEN, token, strlen(token), NOW, &claims), -1);
    for (size_t i = 0; i < sizeof(claims); ++i)
        cr_assert_eq(((unsigned char *)&claims)[i], 0xab);
}
