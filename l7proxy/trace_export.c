/*
 * trace_export — the bounded span queue and the exporter thread. See
 * trace_export.h for the contract.
 *
 * Invariant: the queue holds at most cap records (head..head+count mod
 * cap); a submit that finds count == cap drops and counts, nothing else.
 * The mutex is held for one record copy by a worker and for moving at most
 * batch_size records out by the exporter, never across I/O.
 */
#include "l7proxy/trace_export.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/metrics.h"
#include "l7proxy/otlp_encode.h"

struct trace_export {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t thread;
  struct trace_span *ring;
  size_t cap, head, count;
  size_t batch_size;
  uint32_t flush_ms, timeout_ms;
  int stop;
  char *url, *service, *instance, *version;
  atomic_uint_fast64_t dropped, exported;
  struct metrics_counter *m_exported, *m_dropped_full, *m_dropped_failed;
  struct metrics_counter *m_post_ok, *m_post_err;
};

static void curl_init_once(void) {
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_or(const char *s, const char *dflt) {
  return strdup(s && s[0] ? s : dflt);
}

static void count_dropped(struct trace_export *te, struct metrics_counter *c, uint64_t n) {
  atomic_fetch_add(&te->dropped, n);
  if (c) metrics_counter_add(c, n);
}

int trace_export_submit(struct trace_export *te, const struct trace_span *s) {
  pthread_mutex_lock(&te->mu);
  if (te->count == te->cap) {
    pthread_mutex_unlock(&te->mu);
    count_dropped(te, te->m_dropped_full, 1);
    return -ENOSPC;
  }
  memcpy(&te->ring[(te->head + te->count) % te->cap], s, sizeof(*s));
  te->count++;
  int wake = te->count == 1 || te->count == te->batch_size;
  pthread_mutex_unlock(&te->mu);
  if (wake) pthread_cond_signal(&te->cv);
  return 0;
}

static size_t discard_body(char *p, size_t size, size_t n, void *ud) {
  (void)p;
  (void)ud;
  return size * n;
}

/* POSTs one encoded batch. Returns the HTTP status, or -1 on a transport error. */
static long post_batch(struct trace_export *te, CURL *curl, const uint8_t *body, size_t len,
                       char *err, size_t errlen) {
  struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/x-protobuf");
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, te->url);
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, (const char *)body);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)len);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)te->timeout_ms);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard_body);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  char ebuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, ebuf);
  CURLcode rc = curl_easy_perform(curl);
  long status = -1;
  if (rc == CURLE_OK)
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  else
    snprintf(err, errlen, "%s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
  curl_slist_free_all(hdrs);
  return status;
}

/* Returns 1 when the receiver took the batch, 0 when it was dropped. */
static int export_batch(struct trace_export *te, CURL *curl, const struct trace_span *b, size_t n) {
  struct otlp_resource res = {te->service, te->instance, te->version};
  uint8_t *body = NULL;
  size_t len = 0;
  char err[CURL_ERROR_SIZE + 64] = "";
  long status = -1;
  if (otlp_encode_spans(&res, b, n, &body, &len) != 0)
    snprintf(err, sizeof(err), "out of memory encoding %zu spans", n);
  else
    status = post_batch(te, curl, body, len, err, sizeof(err));
  free(body);
  if (status >= 200 && status < 300) {
    atomic_fetch_add(&te->exported, n);
    if (te->m_exported) metrics_counter_add(te->m_exported, n);
    if (te->m_post_ok) metrics_counter_inc(te->m_post_ok);
    return 1;
  }
  if (status > 0) snprintf(err, sizeof(err), "receiver answered %ld", status);
  count_dropped(te, te->m_dropped_failed, n);
  if (te->m_post_err) metrics_counter_inc(te->m_post_err);
  LOG_WARN("trace_export_failed", "url=%s spans=%zu reason=%s", log_q(te->url), n, log_q(err));
  return 0;
}

static void deadline_in(struct timespec *ts, uint32_t ms) {
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

static int stopping(struct trace_export *te) {
  pthread_mutex_lock(&te->mu);
  int s = te->stop;
  pthread_mutex_unlock(&te->mu);
  return s;
}

static void *exporter_main(void *arg) {
  struct trace_export *te = arg;
  CURL *curl = curl_easy_init();
  struct trace_span *batch = calloc(te->batch_size, sizeof(*batch));
  for (;;) {
    pthread_mutex_lock(&te->mu);
    while (te->count == 0 && !te->stop) pthread_cond_wait(&te->cv, &te->mu);
    /* a partial batch waits flush_ms for company, unless stopping */
    struct timespec until;
    deadline_in(&until, te->flush_ms);
    while (!te->stop && te->count < te->batch_size &&
           pthread_cond_timedwait(&te->cv, &te->mu, &until) != ETIMEDOUT) {
    }
    if (te->count == 0 && te->stop) {
      pthread_mutex_unlock(&te->mu);
      break;
    }
    size_t n = te->count < te->batch_size ? te->count : te->batch_size;
    if (!batch || !curl) n = 0;
    for (size_t i = 0; i < n; i++) batch[i] = te->ring[(te->head + i) % te->cap];
    size_t lost = (!batch || !curl) ? te->count : 0;
    te->head = (te->head + n + lost) % te->cap;
    te->count -= n + lost;
    pthread_mutex_unlock(&te->mu);
    if (lost) count_dropped(te, te->m_dropped_failed, lost);
    if (n && !export_batch(te, curl, batch, n) && stopping(te)) {
      /* shutting down and the receiver does not take spans: one timeout
       * is all a stop waits, the rest is dropped (and counted) */
      pthread_mutex_lock(&te->mu);
      size_t rest = te->count;
      te->head = (te->head + rest) % te->cap;
      te->count = 0;
      pthread_mutex_unlock(&te->mu);
      if (rest) count_dropped(te, te->m_dropped_failed, rest);
    }
  }
  free(batch);
  if (curl) curl_easy_cleanup(curl);
  return NULL;
}

int trace_export_new(const struct trace_export_opts *o, struct trace_export **out, char *err,
                     size_t errlen) {
  *out = NULL;
  if (!o->url || (strncmp(o->url, "http://", 7) != 0 && strncmp(o->url, "https://", 8) != 0)) {
    snprintf(err, errlen, "OTLP endpoint must be an http:// or https:// URL, got %s",
             o->url ? o->url : "(none)");
    return -EINVAL;
  }
  static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
  pthread_once(&curl_once, curl_init_once);
  struct trace_export *te = calloc(1, sizeof(*te));
  if (!te) return -ENOMEM;
  te->cap = o->queue_size ? o->queue_size : 4096;
  te->batch_size = o->batch_size ? o->batch_size : 512;
  if (te->batch_size > te->cap) te->batch_size = te->cap;
  te->flush_ms = o->flush_ms ? o->flush_ms : 1000;
  te->timeout_ms = o->timeout_ms ? o->timeout_ms : 5000;
  te->ring = calloc(te->cap, sizeof(*te->ring));
  te->url = strdup(o->url);
  te->service = dup_or(o->service_name, "edge-l7proxy");
  te->instance = dup_or(o->instance_id, "");
  te->version = dup_or(o->version, "");
  pthread_mutex_init(&te->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&te->cv, &ca);
  pthread_condattr_destroy(&ca);
  if (o->metrics) {
    struct metrics_registry *m = o->metrics;
    const char *dh = "Spans not exported, by reason.";
    te->m_exported = metrics_counter(m, "edge_l7_trace_spans_exported_total",
                                     "Spans the OTLP receiver accepted.", "");
    te->m_dropped_full =
        metrics_counter(m, "edge_l7_trace_spans_dropped_total", dh, "reason=\"queue_full\"");
    te->m_dropped_failed =
        metrics_counter(m, "edge_l7_trace_spans_dropped_total", dh, "reason=\"export_failed\"");
    const char *eh = "OTLP export requests by result.";
    te->m_post_ok = metrics_counter(m, "edge_l7_trace_exports_total", eh, "result=\"ok\"");
    te->m_post_err = metrics_counter(m, "edge_l7_trace_exports_total", eh, "result=\"error\"");
  }
  if (!te->ring || !te->url || !te->service || !te->instance || !te->version ||
      pthread_create(&te->thread, NULL, exporter_main, te) != 0) {
    snprintf(err, errlen, "cannot start the span exporter");
    pthread_cond_destroy(&te->cv);
    pthread_mutex_destroy(&te->mu);
    free(te->ring);
    free(te->url);
    free(te->service);
    free(te->instance);
    free(te->version);
    free(te);
    return -ENOMEM;
  }
  *out = te;
  return 0;
}

void trace_export_close(struct trace_export *te) {
  if (!te) return;
  pthread_mutex_lock(&te->mu);
  te->stop = 1;
  pthread_mutex_unlock(&te->mu);
  pthread_cond_signal(&te->cv);
  pthread_join(te->thread, NULL);
  pthread_cond_destroy(&te->cv);
  pthread_mutex_destroy(&te->mu);
  free(te->ring);
  free(te->url);
  free(te->service);
  free(te->instance);
  free(te->version);
  free(te);
}

uint64_t trace_export_dropped(const struct trace_export *te) {
  return atomic_load(&((struct trace_export *)te)->dropped);
}

uint64_t trace_export_exported(const struct trace_export *te) {
  return atomic_load(&((struct trace_export *)te)->exported);
}
