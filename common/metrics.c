/*
 * metrics — counters, gauges and histograms rendered as Prometheus text
 * (exposition format 0.0.4).
 *
 * Layout: a registry holds families (one per metric name: HELP, TYPE,
 * series in registration order) and a hash of every live series by
 * name+labels. Registration, removal and rendering take the registry
 * mutex; updates through a handle are plain C11 atomics, never locked.
 * Gauges and histogram sums are doubles stored as uint64 bit patterns and
 * updated with a compare-and-swap loop.
 *
 * Invariant: a handle stays valid until metrics_registry_free, even after
 * metrics_remove (removed series move to a graveyard that is freed with
 * the registry), so a worker still holding an old handle never touches
 * freed memory. Histogram buckets are stored per bucket and made
 * cumulative when rendered; _count is the sum of the buckets, so a
 * scrape is always self-consistent (+Inf bucket == _count).
 *
 * Called by every daemon (registration at start or snapshot build,
 * updates from workers) and by admin.c (metrics_render for /metrics).
 */
#include "common/metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

enum metric_type { TYPE_COUNTER, TYPE_GAUGE, TYPE_HISTOGRAM };

struct metrics_counter {
  _Atomic uint64_t value;
};

struct metrics_gauge {
  _Atomic uint64_t bits; /* a double's bit pattern */
};

struct metrics_histogram {
  size_t nbounds;
  double *bounds;
  _Atomic uint64_t *buckets; /* nbounds + 1 (last is +Inf), not cumulative */
  _Atomic uint64_t sum_bits;
};

struct family;

struct series {
  struct family *fam;
  char *labels;
  struct series *next;      /* family order (or graveyard) */
  struct series *hash_next; /* registry hash chain */
  struct metrics_counter counter;
  struct metrics_gauge gauge;
  struct metrics_histogram hist;
  double (*fn)(void *arg);    /* computed gauge */
  uint64_t (*cfn)(void *arg); /* computed counter */
  void *fn_arg;
};

struct family {
  char *name;
  char *help;
  enum metric_type type;
  struct series *head, *tail;
  struct family *next;
};

#define HASH_BUCKETS 4096

struct metrics_registry {
  pthread_mutex_t mu;
  struct family *families, *families_tail;
  struct series *graveyard;
  struct series *hash[HASH_BUCKETS];
};

static uint64_t bits_of(double v) {
  uint64_t b;
  memcpy(&b, &v, sizeof(b));
  return b;
}

static double double_of(uint64_t b) {
  double v;
  memcpy(&v, &b, sizeof(v));
  return v;
}

static size_t hash_key(const char *name, const char *labels) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
  h = (h ^ 0xff) * 1099511628211ull;
  for (const char *p = labels; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
  return (size_t)(h % HASH_BUCKETS);
}

struct metrics_registry *metrics_registry_new(void) {
  struct metrics_registry *r = calloc(1, sizeof(*r));
  if (r == NULL) return NULL;
  pthread_mutex_init(&r->mu, NULL);
  return r;
}

static void series_free(struct series *s) {
  free(s->labels);
  free(s->hist.bounds);
  free((void *)s->hist.buckets);
  free(s);
}

static void series_list_free(struct series *s) {
  while (s) {
    struct series *next = s->next;
    series_free(s);
    s = next;
  }
}

void metrics_registry_free(struct metrics_registry *r) {
  if (r == NULL) return;
  struct family *f = r->families;
  while (f) {
    struct family *next = f->next;
    series_list_free(f->head);
    free(f->name);
    free(f->help);
    free(f);
    f = next;
  }
  series_list_free(r->graveyard);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

/* Caller holds r->mu. Returns the family of name, creating it; NULL when
 * it exists with another type or on allocation failure. */
static struct family *family_get(struct metrics_registry *r, const char *name, const char *help,
                                 enum metric_type type) {
  for (struct family *f = r->families; f; f = f->next) {
    if (strcmp(f->name, name) == 0) return f->type == type ? f : NULL;
  }
  struct family *f = calloc(1, sizeof(*f));
  if (f == NULL) return NULL;
  f->name = strdup(name);
  f->help = strdup(help ? help : "");
  if (f->name == NULL || f->help == NULL) {
    free(f->name);
    free(f->help);
    free(f);
    return NULL;
  }
  f->type = type;
  if (r->families_tail)
    r->families_tail->next = f;
  else
    r->families = f;
  r->families_tail = f;
  return f;
}

/* Caller holds r->mu. */
static struct series *series_find(struct metrics_registry *r, const char *name,
                                  const char *labels) {
  for (struct series *s = r->hash[hash_key(name, labels)]; s; s = s->hash_next) {
    if (strcmp(s->fam->name, name) == 0 && strcmp(s->labels, labels) == 0) return s;
  }
  return NULL;
}

/* Caller holds r->mu. Finds or creates the series; *created tells which.
 * NULL on a type clash or allocation failure. */
static struct series *series_get(struct metrics_registry *r, const char *name, const char *help,
                                 const char *labels, enum metric_type type, int *created) {
  if (labels == NULL) labels = "";
  *created = 0;
  struct series *s = series_find(r, name, labels);
  if (s) return s->fam->type == type ? s : NULL;
  struct family *f = family_get(r, name, help, type);
  if (f == NULL) return NULL;
  s = calloc(1, sizeof(*s));
  if (s == NULL) return NULL;
  s->labels = strdup(labels);
  if (s->labels == NULL) {
    free(s);
    return NULL;
  }
  s->fam = f;
  if (f->tail)
    f->tail->next = s;
  else
    f->head = s;
  f->tail = s;
  size_t h = hash_key(name, labels);
  s->hash_next = r->hash[h];
  r->hash[h] = s;
  *created = 1;
  return s;
}

struct metrics_counter *metrics_counter(struct metrics_registry *r, const char *name,
                                        const char *help, const char *labels) {
  int created;
  pthread_mutex_lock(&r->mu);
  struct series *s = series_get(r, name, help, labels, TYPE_COUNTER, &created);
  pthread_mutex_unlock(&r->mu);
  return s ? &s->counter : NULL;
}

struct metrics_gauge *metrics_gauge(struct metrics_registry *r, const char *name, const char *help,
                                    const char *labels) {
  int created;
  pthread_mutex_lock(&r->mu);
  struct series *s = series_get(r, name, help, labels, TYPE_GAUGE, &created);
  if (s && created) atomic_store(&s->gauge.bits, bits_of(0.0));
  pthread_mutex_unlock(&r->mu);
  return s ? &s->gauge : NULL;
}

int metrics_gauge_fn(struct metrics_registry *r, const char *name, const char *help,
                     const char *labels, double (*fn)(void *arg), void *arg) {
  int created;
  pthread_mutex_lock(&r->mu);
  struct series *s = series_get(r, name, help, labels, TYPE_GAUGE, &created);
  if (s) {
    s->fn = fn;
    s->fn_arg = arg;
  }
  pthread_mutex_unlock(&r->mu);
  return s ? 0 : -1;
}

int metrics_counter_fn(struct metrics_registry *r, const char *name, const char *help,
                       const char *labels, uint64_t (*fn)(void *arg), void *arg) {
  int created;
  pthread_mutex_lock(&r->mu);
  struct series *s = series_get(r, name, help, labels, TYPE_COUNTER, &created);
  if (s) {
    s->cfn = fn;
    s->fn_arg = arg;
  }
  pthread_mutex_unlock(&r->mu);
  return s ? 0 : -1;
}

struct metrics_histogram *metrics_histogram(struct metrics_registry *r, const char *name,
                                            const char *help, const char *labels,
                                            const double *bounds, size_t nbounds) {
  for (size_t i = 0; i < nbounds; i++) {
    if (!isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) return NULL;
  }
  /* Allocate outside the lock; discard if the series already exists. */
  double *b = malloc((nbounds ? nbounds : 1) * sizeof(double));
  _Atomic uint64_t *buckets = calloc(nbounds + 1, sizeof(*buckets));
  if (b == NULL || buckets == NULL) {
    free(b);
    free((void *)buckets);
    return NULL;
  }
  if (nbounds) memcpy(b, bounds, nbounds * sizeof(double));
  int created;
  pthread_mutex_lock(&r->mu);
  struct series *s = series_get(r, name, help, labels, TYPE_HISTOGRAM, &created);
  if (s && created) {
    s->hist.nbounds = nbounds;
    s->hist.bounds = b;
    s->hist.buckets = buckets;
    atomic_store(&s->hist.sum_bits, bits_of(0.0));
    b = NULL;
    buckets = NULL;
  }
  pthread_mutex_unlock(&r->mu);
  free(b);
  free((void *)buckets);
  return s ? &s->hist : NULL;
}

void metrics_counter_add(struct metrics_counter *c, uint64_t n) {
  atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t metrics_counter_value(const struct metrics_counter *c) {
  return atomic_load_explicit(&((struct metrics_counter *)c)->value, memory_order_relaxed);
}

void metrics_gauge_set(struct metrics_gauge *g, double v) {
  atomic_store_explicit(&g->bits, bits_of(v), memory_order_relaxed);
}

static void atomic_double_add(_Atomic uint64_t *bits, double delta) {
  uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
  while (!atomic_compare_exchange_weak_explicit(bits, &old, bits_of(double_of(old) + delta),
                                                memory_order_relaxed, memory_order_relaxed)) {
  }
}

void metrics_gauge_add(struct metrics_gauge *g, double delta) {
  atomic_double_add(&g->bits, delta);
}

double metrics_gauge_value(const struct metrics_gauge *g) {
  return double_of(atomic_load_explicit(&((struct metrics_gauge *)g)->bits, memory_order_relaxed));
}

void metrics_histogram_observe(struct metrics_histogram *h, double v) {
  if (isnan(v)) return; /* would poison _sum forever */
  size_t i = 0;
  while (i < h->nbounds && v > h->bounds[i]) i++;
  atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
  atomic_double_add(&h->sum_bits, v);
}

void metrics_remove(struct metrics_registry *r, const char *name, const char *labels) {
  if (labels == NULL) labels = "";
  pthread_mutex_lock(&r->mu);
  struct series **pp = &r->hash[hash_key(name, labels)];
  while (*pp && !(strcmp((*pp)->fam->name, name) == 0 && strcmp((*pp)->labels, labels) == 0))
    pp = &(*pp)->hash_next;
  struct series *s = *pp;
  if (s) {
    *pp = s->hash_next;
    struct family *f = s->fam;
    struct series *prev = NULL;
    for (struct series *it = f->head; it != s; it = it->next) prev = it;
    if (prev)
      prev->next = s->next;
    else
      f->head = s->next;
    if (f->tail == s) f->tail = prev;
    s->next = r->graveyard;
    r->graveyard = s;
  }
  pthread_mutex_unlock(&r->mu);
}

const double *metrics_default_latency_buckets(size_t *n) {
  static const double b[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
  *n = sizeof(b) / sizeof(b[0]);
  return b;
}

/* Shortest text that reads back as v; Prometheus spellings for Inf/NaN. */
static void format_double(double v, char *out, size_t outlen) {
  if (isnan(v)) {
    snprintf(out, outlen, "NaN");
    return;
  }
  if (isinf(v)) {
    snprintf(out, outlen, v > 0 ? "+Inf" : "-Inf");
    return;
  }
  if (fabs(v) < 1e15 && v == (double)(long long)v) {
    snprintf(out, outlen, "%lld", (long long)v);
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(out, outlen, "%.*g", prec, v);
    if (strtod(out, NULL) == v) return;
  }
}

/* HELP text escapes backslash and newline. */
static void put_help(struct buf *b, const char *help) {
  for (const char *p = help; *p; p++) {
    if (*p == '\\')
      buf_printf(b, "\\\\");
    else if (*p == '\n')
      buf_printf(b, "\\n");
    else
      buf_printf(b, "%c", *p);
  }
}

static void put_labels(struct buf *b, const char *labels, const char *le) {
  if (*labels == '\0' && le == NULL) return;
  buf_printf(b, "{%s", labels);
  if (le) buf_printf(b, "%sle=\"%s\"", *labels ? "," : "", le);
  buf_printf(b, "}");
}

static void render_series(struct buf *b, const struct family *f, struct series *s) {
  char num[64];
  switch (f->type) {
    case TYPE_COUNTER:
      buf_printf(b, "%s", f->name);
      put_labels(b, s->labels, NULL);
      buf_printf(
          b, " %llu\n",
          (unsigned long long)(s->cfn ? s->cfn(s->fn_arg) : metrics_counter_value(&s->counter)));
      break;
    case TYPE_GAUGE:
      format_double(s->fn ? s->fn(s->fn_arg) : metrics_gauge_value(&s->gauge), num, sizeof(num));
      buf_printf(b, "%s", f->name);
      put_labels(b, s->labels, NULL);
      buf_printf(b, " %s\n", num);
      break;
    case TYPE_HISTOGRAM: {
      struct metrics_histogram *h = &s->hist;
      uint64_t cum = 0;
      for (size_t i = 0; i <= h->nbounds; i++) {
        cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->nbounds)
          format_double(h->bounds[i], num, sizeof(num));
        else
          snprintf(num, sizeof(num), "+Inf");
        buf_printf(b, "%s_bucket", f->name);
        put_labels(b, s->labels, num);
        buf_printf(b, " %llu\n", (unsigned long long)cum);
      }
      format_double(double_of(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)), num,
                    sizeof(num));
      buf_printf(b, "%s_sum", f->name);
      put_labels(b, s->labels, NULL);
      buf_printf(b, " %s\n", num);
      buf_printf(b, "%s_count", f->name);
      put_labels(b, s->labels, NULL);
      buf_printf(b, " %llu\n", (unsigned long long)cum);
      break;
    }
  }
}

char *metrics_render(struct metrics_registry *r, size_t *len) {
  static const char *const type_names[] = {"counter", "gauge", "histogram"};
  struct buf b = {0};
  pthread_mutex_lock(&r->mu);
  for (struct family *f = r->families; f; f = f->next) {
    if (f->head == NULL) continue;
    buf_printf(&b, "# HELP %s ", f->name);
    put_help(&b, f->help);
    buf_printf(&b, "\n# TYPE %s %s\n", f->name, type_names[f->type]);
    for (struct series *s = f->head; s; s = s->next) render_series(&b, f, s);
  }
  pthread_mutex_unlock(&r->mu);
  /* An allocation failure anywhere above made b failed: render NULL. */
  size_t n = b.len;
  char *text = buf_detach(&b);
  if (len) *len = text ? n : 0;
  return text;
}

char *metrics_escape_label(const char *value, char *out, size_t outlen) {
  if (outlen == 0) return out;
  size_t o = 0;
  for (const char *p = value; *p; p++) {
    const char *rep = NULL;
    if (*p == '\\')
      rep = "\\\\";
    else if (*p == '"')
      rep = "\\\"";
    else if (*p == '\n')
      rep = "\\n";
    size_t need = rep ? 2 : 1;
    if (o + need + 1 > outlen) break;
    if (rep) {
      out[o++] = rep[0];
      out[o++] = rep[1];
    } else {
      out[o++] = *p;
    }
  }
  out[o] = '\0';
  return out;
}
