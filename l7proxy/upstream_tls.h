/*
 * upstream_tls — the client side of TLS to a cluster's endpoints
 * (edge.dev/backend-protocol: https | grpcs): one SSL_CTX per distinct
 * Edge__V1__UpstreamTls configuration, shared by every snapshot, worker and
 * connection that uses it.
 *
 * A context verifies the endpoint's chain against the configured CAs (the
 * system's trust store when none are given) and, when a server name is
 * configured, the name in the endpoint's certificate; it sends that name as
 * SNI (never for an IP literal), offers ALPN "h2" (gRPC / HTTP/2
 * clusters) or "http/1.1", and presents the optional client certificate.
 * TLS 1.2 and 1.3 only; verification is off only when the configuration
 * says insecure_skip_verify.
 *
 * Contexts are interned: utls_ctx_get returns the same object for the same
 * configuration (a SHA-256 of the packed message and the ALPN choice), so
 * a push that leaves a cluster's TLS alone costs a hash, not a key decode,
 * and pooled connections can tell whether they still match their
 * cluster's configuration (utls_ctx_id).
 *
 * Threads: any. The intern table is guarded by a mutex; a context is
 * immutable once built (SSL_CTX is safe for concurrent SSL_new). Callers:
 * snapshot.c (one reference per TLS cluster), h1_client.c and
 * upstream_h2.c (connections, through tls_conn_new_client), health checks.
 * Code kept BoringSSL-clean (DESIGN §3).
 */
#ifndef EDGE_L7PROXY_UPSTREAM_TLS_H
#define EDGE_L7PROXY_UPSTREAM_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "edge/v1/resources.pb-c.h"

struct utls_ctx;
struct tls_conn;

/* Returns (in *out, one reference) the context for cfg with ALPN h2 (1)
 * or http/1.1 (0). 0, or negative with a reason naming the problem
 * ("ca_pem holds no certificate", "key_pem does not match cert_pem"); key
 * material never appears in it. */
int utls_ctx_get(const Edge__V1__UpstreamTls *cfg, int h2, struct utls_ctx **out, char *err,
                 size_t errlen);
struct utls_ctx *utls_ctx_ref(struct utls_ctx *c);
void utls_ctx_unref(struct utls_ctx *c); /* NULL is fine */

/* A number unique to this context for the life of the process (pooled
 * connections keep it to tell whether their cluster's TLS changed). */
uint64_t utls_ctx_id(const struct utls_ctx *c);
/* The server name sent and verified ("" none). */
const char *utls_ctx_server_name(const struct utls_ctx *c);
int utls_ctx_h2(const struct utls_ctx *c);

/* A new client connection on c (tls.h's tls_conn, client side): feed it
 * ciphertext, read plaintext, write plaintext and flush its pending output
 * exactly as for a server connection; the first tls_conn_read starts the
 * handshake (its ClientHello is then pending output). 0 or TLS_ERR_*. */
int utls_conn_new(const struct utls_ctx *c, struct tls_conn **out);

/* Contexts alive (tests). */
size_t utls_ctx_count(void);

#endif
