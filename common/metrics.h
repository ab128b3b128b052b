/*
 * metrics — a registry of counters, gauges and histograms rendered as
 * Prometheus text (exposition format 0.0.4).
 *
 * A series is a metric name plus a label set written as Prometheus label
 * text (`route="a",code="2xx"`; "" for none). Registration takes a mutex
 * and returns a handle that stays valid for the registry's lifetime;
 * updates through a handle are lock-free atomics, so workers update shared
 * series from any thread. Look series up once (at snapshot build or
 * connection setup), not per request. Same name+labels returns the same
 * handle. HELP/TYPE are taken from the first registration of a name.
 *
 * Histograms use fixed bucket bounds given at registration (seconds for
 * _seconds metrics); metrics_default_latency_buckets() gives 0.5 ms..10 s.
 */
#ifndef EDGE_COMMON_METRICS_H
#define EDGE_COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics_registry;
struct metrics_counter;
struct metrics_gauge;
struct metrics_histogram;

struct metrics_registry *metrics_registry_new(void);
void metrics_registry_free(struct metrics_registry *r);

/* Returns NULL only on allocation failure, when name is already registered
 * with another type, or (histograms) when bounds are not finite and
 * strictly increasing. Strings are copied. */
struct metrics_counter *metrics_counter(struct metrics_registry *r, const char *name,
                                        const char *help, const char *labels);
struct metrics_gauge *metrics_gauge(struct metrics_registry *r, const char *name, const char *help,
                                    const char *labels);
struct metrics_histogram *metrics_histogram(struct metrics_registry *r, const char *name,
                                            const char *help, const char *labels,
                                            const double *bounds, size_t nbounds);

void metrics_counter_add(struct metrics_counter *c, uint64_t n);
static inline void metrics_counter_inc(struct metrics_counter *c) {
  metrics_counter_add(c, 1);
}
uint64_t metrics_counter_value(const struct metrics_counter *c);

void metrics_gauge_set(struct metrics_gauge *g, double v);
void metrics_gauge_add(struct metrics_gauge *g, double delta);
double metrics_gauge_value(const struct metrics_gauge *g);

void metrics_histogram_observe(struct metrics_histogram *h, double v);

/* Gauge computed at render time by fn(arg) (runs on the rendering thread,
 * with the registry locked: fn must not call metrics_* on the same
 * registry). Returns 0 or -1. */
int metrics_gauge_fn(struct metrics_registry *r, const char *name, const char *help,
                     const char *labels, double (*fn)(void *arg), void *arg);

/* Counter computed at render time by fn(arg), for counts kept elsewhere
 * (e.g. in BPF maps). Same rules as metrics_gauge_fn; fn must never
 * return less than it did before. Returns 0 or -1. */
int metrics_counter_fn(struct metrics_registry *r, const char *name, const char *help,
                       const char *labels, uint64_t (*fn)(void *arg), void *arg);

/* Removes every series of name with these labels (e.g. a deleted route). */
void metrics_remove(struct metrics_registry *r, const char *name, const char *labels);

const double *metrics_default_latency_buckets(size_t *n);

/* Renders the whole registry; returns a malloc'd NUL-terminated string
 * (caller frees) and its length in *len. */
char *metrics_render(struct metrics_registry *r, size_t *len);

/* Escapes a label value into out ("a\"b" -> a\"b); returns out. */
char *metrics_escape_label(const char *value, char *out, size_t outlen);

#endif
