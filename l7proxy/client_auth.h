/*
 * client_auth — client certificate authentication per virtual host
 * (Edge__V1__ClientAuth; Ingress annotations edge.dev/auth-tls-*).
 *
 * Three parts:
 *   - policies (struct cauth_policy): a host's mode (required / optional),
 *     trusted CAs, verify depth and whether the chain goes upstream, built
 *     once per virtual host resource (reference counted); digest
 *     identifies a policy across pushes;
 *   - the handshake side (cauth_apply): on the ClientHello the TLS
 *     connection looks the server name's policy up in the host tables of
 *     the snapshot it was accepted under (exact host, then a one-label
 *     wildcard, then a host-less rule: the precedence requests are routed
 *     by; l7_snapshot_client_auth_for), asks for a certificate with the
 *     policy's CA names and verifies it against the policy's CAs. A failed verification never fails
 * the handshake: the result is kept and the request gets a clear 400. The session id context is the
 * policy's digest, so a session (ticket) made under one policy never resumes under another;
 *   - the request side (cauth_decide, cauth_peer_*): the route's policy
 *     against the connection's: PASS, 400 (no certificate, or one that
 *     failed verification), or 421 when the connection was not made under
 *     this host's policy (SNI of another host, HTTP/2 connection reuse):
 *     the client must open a connection for this host. What passes goes
 *     upstream as x-client-cert-verify (SUCCESS or NONE), -subject,
 *     -issuer (RFC 2253, escaped to printable ASCII), -fingerprint
 *     (SHA-256 of the leaf, hex) and, when asked, -chain (URL-encoded
 *     PEM); headers.c drops every x-client-cert-* a client sends.
 *
 * Threads: policies are immutable and shared (atomic reference counts);
 * a peer summary belongs to its connection's thread.
 * Callers: snapshot_policy.c (policies), tls.c (apply, peer), exchange.c
 * (decide, headers), unit tests. OpenSSL 3 / BoringSSL-clean.
 */
#ifndef EDGE_L7PROXY_CLIENT_AUTH_H
#define EDGE_L7PROXY_CLIENT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "edge/v1/resources.pb-c.h"

struct ssl_st;
struct cauth_policy;

/* A policy from its resource (vhost names it in reasons). 0 and *out
 * (one reference), or -1 with a reason ("ca_pem holds no CA certificate"). */
int cauth_policy_new(const Edge__V1__ClientAuth *ca, const char *vhost, struct cauth_policy **out,
                     char *err, size_t errlen);
/* Another reference to p (returned; NULL is fine), and dropping one. */
struct cauth_policy *cauth_policy_ref(const struct cauth_policy *p);
void cauth_policy_unref(const struct cauth_policy *p);
/* 1 when a and b ask the same of a client (same digest); NULLs equal. */
int cauth_policy_same(const struct cauth_policy *a, const struct cauth_policy *b);
int cauth_policy_required(const struct cauth_policy *p);
int cauth_policy_pass_chain(const struct cauth_policy *p);

/* Handshake: asks the client for a certificate as p says (verify mode,
 * CA names, depth, trust store, session id context); NULL: nothing to do.
 * Call after the SSL switched to its certificate's SSL_CTX (which resets
 * some per-SSL settings). */
void cauth_apply(const struct cauth_policy *p, struct ssl_st *ssl);

/* What one connection's client presented, computed once per connection. */
struct cauth_peer {
  int has_cert;
  long verify_result;       /* X509_V_OK, or the X.509 error */
  const char *verify_error; /* "certificate has expired" ("" when ok) */
  char *subject, *issuer;   /* RFC 2253, printable ASCII */
  char fingerprint[65];     /* SHA-256 of the leaf's DER, lower-case hex */
  char *chain;              /* URL-encoded PEM, leaf first; NULL when not made or too big */
};
/* The summary of ssl's peer (chain: also encode the chain). NULL on
 * allocation failure. */
struct cauth_peer *cauth_peer_new(const struct ssl_st *ssl, int chain);
void cauth_peer_free(struct cauth_peer *p);

enum cauth_verdict {
  CAUTH_PASS = 0,    /* forward (headers when the host has a policy) */
  CAUTH_MISSING,     /* 400: a certificate is required and none was sent */
  CAUTH_INVALID,     /* 400: the certificate failed verification */
  CAUTH_MISDIRECTED, /* 421: the connection was made for another host's policy */
};

/* The decision for one request: want is the route's host's policy (NULL:
 * none), conn the policy its connection was made under, tls whether it
 * came over TLS, has_cert / verify_ok what the client presented. Pure. */
enum cauth_verdict cauth_decide(const struct cauth_policy *want, const struct cauth_policy *conn,
                                int tls, int has_cert, int verify_ok);
/* "missing", "invalid", "misdirected" (metric labels). */
const char *cauth_verdict_name(enum cauth_verdict v);

/* Pure encoders (exposed for tests): DN-like text to printable ASCII
 * (anything outside 0x20..0x7e becomes '?'); bytes to percent-encoding
 * (all but ALPHA / DIGIT / "-._~"). Return malloc'd strings or NULL. */
char *cauth_printable(const char *s, size_t n);
char *cauth_urlencode(const char *s, size_t n);

#endif
