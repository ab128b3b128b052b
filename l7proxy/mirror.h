/*
 * mirror — fire-and-forget copies of requests (Gateway API RequestMirror):
 * the request head the exchange sends upstream, and its body as it
 * streams, go to one endpoint of another cluster; the answer is read and
 * thrown away.
 *
 * A copy never delays or fails the request it copies: writes are queued
 * (at most MIRROR_MAX_BUFFER bytes; beyond that, or on any error, the copy
 * is dropped), nothing waits for the mirror, and every copy ends within
 * MIRROR_TIMEOUT_MS. Copies go over HTTP/1.1 (Connection: close, one
 * connection per copy) to HTTP/1.1 clusters, where a body of unknown
 * length (chunked) is not copied; and as a stream of the worker's HTTP/2
 * upstream pool to h2c and gRPC clusters (any body). Counted in
 * edge_l7_mirrored_requests_total{result="sent|dropped"}: sent when the
 * whole copy went out (HTTP/1.1) or the mirror answered it (HTTP/2).
 *
 * Ownership: mirror_start returns a handle the exchange feeds until
 * mirror_finish; after that the mirror owns itself and frees itself when
 * done. Single-threaded: the worker's loop. Caller: l7proxy/exchange.c.
 */
#ifndef EDGE_L7PROXY_MIRROR_H
#define EDGE_L7PROXY_MIRROR_H

#include <stddef.h>

#include "l7proxy/message.h"
#include "l7proxy/snapshot.h"

#define MIRROR_MAX_BUFFER (256 * 1024)
#define MIRROR_TIMEOUT_MS 10000

struct mirror;
struct worker;

/* Starts a copy of up (the upstream request head) to cluster c. NULL when it is not copied
 * (counted as dropped). */
struct mirror *mirror_start(struct worker *w, const struct l7_cluster *c,
                            const struct msg_head *up);
/* Request body bytes (copied). */
void mirror_body(struct mirror *m, const char *p, size_t n);
/* The exchange lets go: complete = the whole request was passed on (else the copy is dropped). */
void mirror_finish(struct mirror *m, int complete);

#endif
