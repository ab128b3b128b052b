/*
 * ocsp_stapler — puts the current OCSP response of each served
 * certificate into its Certificate resource (ocsp_response,
 * ocsp_next_update), so proxies staple it (l7proxy/tls.c).
 *
 * syncd/main.c calls ocsp_stapler_staple_update on every update the
 * translator delivers (the whole state first, then what changed), before
 * the store takes it: each upserted Certificate's bytes are replaced by a
 * stapled copy when a verified, current response is cached for its leaf,
 * and leaves not seen before are queued for fetching. Answers of
 * certificates that left are forgotten by ocsp_stapler_sweep.
 * Certificates without an OCSP responder (self-signed, no
 * authorityInfoAccess) pass unchanged. When a staple changes later (a
 * fetch brought a new answer, one expired), the stapler calls changed(ud)
 * once per loop tick; main.c then runs ocsp_stapler_staple_one over the
 * store's certificates and applies the ones that changed.
 *
 * Fetching: one fetcher thread POSTs the DER request to the responder URL
 * over HTTP with libcurl (Content-Type application/ocsp-request, no
 * redirects, http only, an answer of at most OCSP_RESPONSE_MAX bytes, a
 * timeout) and hands the answer back to the loop (uv_async), where ocsp.h
 * checks it: only a verified, current answer is stapled. A good answer is
 * fetched again half-way to its nextUpdate; a failure keeps the previous
 * answer while it is current and retries with backoff (30 s doubling to
 * 1 h); a staple past its nextUpdate is dropped. Answers are cached by the
 * certificate's bytes (a push that does not change a certificate never
 * refetches it). Problems are logged (level=warn msg=ocsp_fetch_failed
 * with the certificate and the reason) and counted
 * (edge_syncd_ocsp_fetches_total{result}, edge_syncd_ocsp_certificates{state}).
 *
 * The responder URL comes from a tenant's certificate: ocsp.h admits only
 * plain http:// URLs without credentials; --ocsp=off turns fetching off.
 *
 * Threads: everything but the fetch runs on the loop. Owner: syncd/main.c.
 */
#ifndef EDGE_SYNCD_OCSP_STAPLER_H
#define EDGE_SYNCD_OCSP_STAPLER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "syncd/model.h"

struct metrics_registry;
struct ocsp_stapler;

struct ocsp_stapler_opts {
  uint32_t timeout_ms;              /* per fetch; 0: 5000 */
  uint32_t min_refresh_s;           /* never refetch a good answer sooner; 0: 60 */
  uint32_t max_refresh_s;           /* answers without nextUpdate; 0: 3600 */
  struct metrics_registry *metrics; /* may be NULL */
};

/* changed(ud): some certificate's staple changed; re-staple the published
 * certificates (ocsp_stapler_staple_one). Called on the loop. */
int ocsp_stapler_new(uv_loop_t *loop, const struct ocsp_stapler_opts *o, void (*changed)(void *),
                     void *ud, struct ocsp_stapler **out);

/* Staples the Certificate resources among an update's upserted
 * res[0..n) and queues fetches for new leaves: *out is a malloc'd copy of
 * res whose certificates carry their current staple (other entries and
 * unchanged certificates share res's bytes), or NULL when res holds no
 * certificate. Free with ocsp_stapler_free_update. 0, or -ENOMEM (*out
 * may then be partly stapled, still valid). */
int ocsp_stapler_staple_update(struct ocsp_stapler *s, const struct syncd_resource *res, size_t n,
                               struct syncd_resource **out);
void ocsp_stapler_free_update(const struct syncd_resource *res, struct syncd_resource *copy,
                              size_t n);
/* Forgets the answers of certificates that are no longer among the
 * store's live entries all[0..n) (after a full update, or one that
 * removed a certificate). */
struct store_entry;
void ocsp_stapler_sweep(struct ocsp_stapler *s, struct store_entry *const *all, size_t n);

/* One packed Certificate resource: 1 and *out (malloc'd, *out_len) when
 * its staple differs from the current one, 0 when unchanged (or not a
 * certificate, or no responder), -ENOMEM. */
int ocsp_stapler_staple_one(struct ocsp_stapler *s, const uint8_t *bytes, size_t len, uint8_t **out,
                            size_t *out_len);

/* Certificates with a responder, and how many carry a staple now. */
void ocsp_stapler_counts(const struct ocsp_stapler *s, size_t *with_responder, size_t *stapled);

/* Stops the fetcher (after the fetch in flight) and frees s once its
 * handles closed; done(arg) then runs on the loop (may be NULL). */
void ocsp_stapler_close(struct ocsp_stapler *s, void (*done)(void *), void *arg);

#endif
