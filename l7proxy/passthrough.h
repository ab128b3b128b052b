/*
 * passthrough — TLS passthrough (Gateway API TLSRoute on a TLS listener of
 * mode Passthrough): a client connection on the HTTPS listener whose
 * ClientHello names a passthrough host (common/client_hello, looked up in
 * the snapshot) is spliced as plain TCP to an endpoint of one of the
 * host's clusters (weighted choice), starting with the bytes already read.
 * The proxy never terminates the TLS: the backend's certificate is what
 * the client sees.
 *
 * Each direction is written as it is read; reading stops while more than
 * PT_HIGH_WATER bytes wait to be written to the other side (back pressure
 * both ways). A half-close is passed on (shutdown of the other side's
 * write), and the tunnel closes when both directions ended, on any error,
 * or after the listener's tunnel idle timeout without a byte either way.
 * Counted in edge_l7_passthrough_connections_total{result}.
 *
 * Ownership: passthrough_start takes the client socket (a file descriptor
 * the caller duplicated and no longer uses) and the tunnel frees itself
 * when closed; the worker closes open tunnels when it stops.
 * Single-threaded: the worker's loop. Caller: l7proxy/h1_server.c.
 */
#ifndef EDGE_L7PROXY_PASSTHROUGH_H
#define EDGE_L7PROXY_PASSTHROUGH_H

#include <stddef.h>

#include "l7proxy/snapshot.h"

#define PT_HIGH_WATER (256 * 1024)

struct worker;

/* Starts the tunnel for client_fd to host pt of snapshot snap (its clusters are resolved there;
 * the tunnel keeps nothing of either); first[0..n) are the client's bytes read so far.
 * 0, or negative (nothing taken: the caller still owns client_fd). */
int passthrough_start(struct worker *w, int client_fd, const struct l7_snapshot *snap,
                      const struct l7_passthrough *pt, const char *first, size_t n);

#endif
