/*
 * forward — l4lb's data path: worker threads that accept TCP connections
 * and forward them to the backend the current Maglev snapshot picks.
 *
 * Each worker has its own libuv loop, its own SO_REUSEPORT listening
 * socket per --listen address, and its own connections; workers share
 * nothing mutable except atomics (counters, metrics) and the published
 * snapshot (backend.h).
 *
 * Each listener forwards either to the backends' plain address (http, the
 * default) or to their https_address (https listeners): both use the same
 * snapshot and table, so a flow picks the same replica on either; on an
 * https listener backends without an https address are skipped exactly
 * as a failed connect is (walking the table from the flow's slot).
 *
 * A connection: accept → pick backend from the flow's slot → non-blocking
 * connect with a timeout → on failure, report a passive failure and try
 * the next distinct backend found walking the table from the flow's slot
 * (at most L4_MAX_TRIES attempts) → write the PROXY v2 header (true client
 * src/dst; the connect timeout keeps running until it is out) → move bytes
 * (closed after idle_timeout_ms without a byte moved either way): each direction copies through a
 * 16 KiB buffer while messages are small and switches to splice(2) through a pooled pipe once bulk
 * data flows (always copies with --splice=off or when the sockets refuse splice). Half-close: EOF
 * one way becomes shutdown(SHUT_WR) on the other side once the pipe has drained, while the other
 * direction keeps flowing. Back-pressure: a side is not read while its pipe to the other side is
 * full. Both sockets close when both directions are done or on any error.
 *
 * Sockets are raw fds (splice needs the fds) on a per-worker epoll set
 * that one uv_poll watches in the worker's loop (a uv_poll per socket
 * costs several syscalls per connection), all level-triggered; interest
 * is recomputed after every event and epoll is touched only on a change.
 * A connection's PROXY header leaves in one writev with the client's
 * first bytes.
 *
 * Callers: main.c starts the workers, stops accepting on SIGTERM, waits for
 * l4_forward_active() to reach 0 and shuts the workers down.
 */
#ifndef EDGE_L4LB_FORWARD_H
#define EDGE_L4LB_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "l4lb/maglev.h"

#define L4_MAX_TRIES 3

struct l4_backend;
struct metrics_registry;
struct l4_forwarder;

struct l4_forward_config {
  enum maglev_hash_mode hash_mode;
  /* Bounds connecting to a backend and then writing the PROXY header to
   * it: a backend that accepts but never reads cannot hold a client. */
  uint32_t connect_timeout_ms;
  /* A streaming connection that moves no byte either way for this long is
   * closed (both sides). 0: never. */
  uint32_t idle_timeout_ms;
  /* Open connections across all workers at which a worker makes room for
   * a waiting client by closing its oldest connection that has carried no
   * byte yet (as on EMFILE/ENFILE), and with none such pauses accepting
   * (new clients wait in the listen backlog), so the process keeps
   * descriptors for health checks and the admin endpoint. 0: no limit. */
  uint64_t max_connections;
  int proxy_protocol; /* 1: write a PROXY v2 header first */
  int splice;         /* 1: splice(2) through pipes; 0: read/write */
  struct metrics_registry *metrics;
  /* Called from a worker thread after a backend's connect failed (its
   * connect_failures counter was incremented). Must be thread-safe
   * (main.c wakes its loop with uv_async_send). May be NULL. */
  void (*on_connect_failure)(void *ud, struct l4_backend *b);
  void *ud;
};

/*
 * Opens nworkers listening sockets on "ADDR:PORT" with SO_REUSEPORT (port
 * 0: the kernel picks one port for all of them). Writes the fds to
 * fds[0..nworkers) and the bound address to bound. 0 or -1 with a reason.
 */
int l4_listener_open(const char *addr, int nworkers, int *fds, char *bound, size_t boundlen,
                     char *err, size_t errlen);

/*
 * Starts nworkers threads. fds holds nlisteners × nworkers listening
 * sockets, listener-major (fds[l * nworkers + w] belongs to worker w); the
 * forwarder owns them from now on. https[l] is 1 when listener l forwards
 * to the backends' https_address (https may be NULL: all plain); it is
 * copied. cfg is copied. 0 or -1 with a reason.
 */
int l4_forward_start(const struct l4_forward_config *cfg, int nworkers, const int *fds,
                     const int *https, size_t nlisteners, struct l4_forwarder **out, char *err,
                     size_t errlen);

/* Stops accepting on every worker (closes the listeners); connections go on. */
void l4_forward_stop_accepting(struct l4_forwarder *f);

/* Connections currently open across all workers (any thread). */
uint64_t l4_forward_active(void);

/* Monotonic ms (uv_hrtime based) of the last accept or socket that failed
 * for lack of file descriptors (EMFILE/ENFILE) on any worker; 0 if never.
 * Any thread: main.c turns /readyz false while this is recent. */
uint64_t l4_forward_fd_exhausted_at(void);

/* Closes every connection, stops and joins the workers, frees f. */
void l4_forward_shutdown(struct l4_forwarder *f);

#endif
