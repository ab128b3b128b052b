/*
 * affinity — cookie session affinity (ingress-nginx "affinity: cookie")
 * and the keys of consistent hashing, as pure functions.
 *
 * The cookie value naming an endpoint is a token: the first 128 bits of
 * HMAC-SHA-256(cluster key, cluster name "\n" endpoint name), base64url.
 * It tells a client nothing about the endpoint (no address leaks) and a
 * client cannot make one up for an endpoint it was not sent to: a value
 * that matches no current endpoint — forged, or naming an endpoint that
 * has left — is ignored, the request is balanced as usual and the cookie
 * replaced. Tokens are computed once per snapshot; a request compares the
 * cookie with every endpoint's token in constant time.
 *
 * Every proxy derives the same tokens from the same key (syncd puts it in
 * the Cluster), so a client keeps its endpoint whichever replica it
 * reaches.
 *
 * Pure code; any thread. Callers: l7proxy/snapshot.c (tokens),
 * l7proxy/route_policy.c (cookies, hash keys), unit tests.
 */
#ifndef EDGE_L7PROXY_AFFINITY_H
#define EDGE_L7PROXY_AFFINITY_H

#include <stddef.h>
#include <stdint.h>

#include "l7proxy/message.h"

#define AFFINITY_TOKEN_LEN 22 /* base64url of 16 bytes, no padding */

/* out gets AFFINITY_TOKEN_LEN characters and a NUL. */
void affinity_token(const uint8_t *key, size_t keylen, const char *cluster, const char *endpoint,
                    char out[AFFINITY_TOKEN_LEN + 1]);

/* The value of cookie name[0..nlen) in the request's Cookie headers (the
 * first one). 1 found, else 0. */
int affinity_find_cookie(const struct msg_head *req, const char *name, size_t nlen,
                         const char **val, size_t *vlen);

/* The index i whose tokens[i] equals val, comparing with every token in
 * constant time; -1 when none. */
int affinity_match(const char (*tokens)[AFFINITY_TOKEN_LEN + 1], size_t n, const char *val,
                   size_t vlen);

/* "NAME=TOKEN; Path=P; Max-Age=N; HttpOnly; SameSite=Lax[; Secure]" into
 * buf. Length written, or -1 when cap is too small. */
int affinity_set_cookie(char *buf, size_t cap, const char *name, const char *token,
                        const char *path, uint32_t max_age, int secure);

/* The consistent-hashing key of a value (SipHash under a fixed key: every
 * proxy maps a value to the same endpoint). */
uint64_t affinity_hash_key(const char *s, size_t n);

#endif
