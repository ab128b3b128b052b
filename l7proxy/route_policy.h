/*
 * route_policy — the per-route policy steps of the exchange (issue 20),
 * over protocol-neutral messages: CORS preflights answered, rate limits
 * (local buckets shared by the workers, or cluster-wide in Redis), basic
 * auth (bcrypt on the thread pool, never on the loop), external auth (a
 * subrequest: another exchange without routing, on the same upstream
 * codecs and pools), endpoint choice by affinity cookie or consistent
 * hash, and the answer headers they add (CORS, Set-Cookie).
 *
 * Order of the request steps: CORS preflight → rate limit → basic auth →
 * external auth. Limits come first so floods never reach bcrypt or the
 * auth service; a preflight needs no credentials (browsers send none).
 * A step either lets the request on, answers it (401, 403, 429, 503, a
 * preflight's 204), or waits: then the exchange is parked (ex->rp_wait)
 * and the step resumes it from a loop callback on a clean stack.
 *
 * A parked exchange holds no upstream attempt; request body bytes that
 * arrive meanwhile wait in ex->pending (back-pressure past its high mark).
 * Cancelling (client gone, timeout, a local answer) drops the pending step
 * without a callback. Single-threaded: the worker's loop; the only state
 * shared between workers is the local bucket table (ratelimit.h).
 *
 * Callers: exchange.c (rp_request, rp_pick, rp_response, rp_cancel,
 * rp_free), worker.c (rp_worker_close, rp_worker_free).
 */
#ifndef EDGE_L7PROXY_ROUTE_POLICY_H
#define EDGE_L7PROXY_ROUTE_POLICY_H

#include <stddef.h>

#include "l7proxy/message.h"

struct exchange;
struct worker;
struct up_cluster_view;

enum { RP_CONTINUE = 0, RP_STOP = 1 };

/* Runs the request steps of ex->route over ex->req (ex->up is built).
 * RP_CONTINUE: go on to the upstream now. RP_STOP: answered, or parked
 * (the policy calls ex_policy_done when it lets the request on). */
int rp_request(struct exchange *ex);
/* The endpoint by affinity cookie or consistent hash among v's usable
 * endpoints, or -1 to balance as usual. */
int rp_pick(struct exchange *ex, const struct up_cluster_view *v);
/* Adds the policy's answer headers (CORS, Set-Cookie) to out, copying
 * the list into ex->arena. 0 or -ENOMEM. */
int rp_response(struct exchange *ex, struct msg_head *out);
/* The headers of a local answer to ex (a 401, 403, 429, 503, 400, 421...):
 * extra[0..n) and, when the route has a CORS policy and the request is
 * not a preflight, that policy's answer headers for its Origin (replacing
 * any Access-Control-* among extra), so a browser can read why it was
 * refused. Into out[0..cap); returns how many. */
size_t rp_local_headers(const struct exchange *ex, const struct msg_header *extra, size_t n,
                        struct msg_header *out, size_t cap);
/* Drops a pending step (no callback will run). */
void rp_cancel(struct exchange *ex);
/* Frees what the exchange keeps between requests (the auth subrequest). */
void rp_free(struct exchange *ex);

/* The worker's policy state (credential cache, Redis client, counters):
 * created at the worker's start when Redis is configured (so it connects
 * before the first request), else on first use. */
void rp_worker_start(struct worker *w);
void rp_worker_close(struct worker *w); /* closes handles (w_close_all) */
void rp_worker_free(struct worker *w);  /* after the loop ended */

#endif
