/*
 * The path rules of reverse-proxy routes: which request paths tollgated refuses to
 * forward because an upstream could read them as another path than the one the route
 * and its scope were chosen on.
 */
#ifndef TG_PROXY_PATH_H
#define TG_PROXY_PATH_H

#include <stddef.h>

/**
 * Checks the raw request target `path` (as the client sent it). Returns NULL when the
 * path means the same to h2o's route matching and to any upstream, else a static sentence
 * saying what was refused, for a 400 `invalid_path`. Refused: a path not starting with
 * '/'; a malformed or double escape ('%' not followed by two hex digits, "%25" followed by
 * two); an encoded '/', '.', '?', '#' or ';'; a backslash, ';' or '#' in any form; a
 * control byte (NUL included) in any form; a raw space; an empty segment ("//") other
 * than a trailing slash; a "." or ".." segment; in the query after '?' (otherwise not
 * looked at), a raw space, control byte or DEL. HTTP/2 lets all of these through, and
 * h2o writes the target into the upstream's request line byte for byte, where a space
 * would add words to it.
 * Pure: allocates nothing, safe on the request path.
 */
const char *tg_proxy_path_check(const char *path, size_t len);

#endif
