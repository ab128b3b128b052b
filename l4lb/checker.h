/*
 * checker — active health checks of one backend, on the main loop.
 *
 * Every interval (±10 % jitter, so a fleet does not check in lockstep) the
 * checker connects to the backend's check address and asks
 * "GET /readyz HTTP/1.0"; the check passes on a 2xx/3xx status line
 * (health_parse_status). A backend without a check address gets a TCP
 * connect check to its forwarding address. A check that has not finished
 * within the timeout fails. The result goes to a callback; the rise/fall
 * state lives with the caller (health.h).
 *
 * Ownership: a checker holds a reference to its backend and sets
 * b->checker. l4_checker_stop clears b->checker at once; the checker frees
 * itself (and drops the reference) after its handles have closed, and no
 * callback runs after stop returns. Main thread only.
 */
#ifndef EDGE_L4LB_CHECKER_H
#define EDGE_L4LB_CHECKER_H

#include <stdint.h>
#include <uv.h>

struct l4_backend;

struct l4_checker_config {
  uint32_t interval_ms;
  uint32_t timeout_ms;
};

/* ok: 1 passed, 0 failed; why: a short static or transient reason. */
typedef void (*l4_check_result_fn)(void *ud, struct l4_backend *b, int ok, const char *why);

/* Starts checking b (first check after a random part of one interval).
 * 0 or -1. */
int l4_checker_start(uv_loop_t *loop, struct l4_backend *b, const struct l4_checker_config *cfg,
                     l4_check_result_fn fn, void *ud);

/* Stops checking b (no-op when it has no checker). */
void l4_checker_stop(struct l4_backend *b);

#endif
