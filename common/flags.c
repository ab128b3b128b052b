/*
 * flags — GNU-style long options parsed against a caller's table.
 *
 * Invariants: parsing never exits and never prints; every failure leaves a
 * one-line reason in err naming the flag. Targets are written as flags are
 * seen, so on error some targets may already hold new values (callers exit
 * on error anyway). String values point into argv (no allocation).
 *
 * Called once at start by every daemon's main (see common/flags.h).
 */
#include "common/flags.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  if (err && errlen > 0) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return FLAGS_ERR;
}

static const struct flag_def *find_def(const struct flag_def *defs, size_t n, const char *name,
                                       size_t namelen) {
  for (size_t i = 0; i < n; i++) {
    if (defs[i].type == FLAG_GROUP) continue;
    if (strlen(defs[i].name) == namelen && memcmp(defs[i].name, name, namelen) == 0)
      return &defs[i];
  }
  return NULL;
}

static int parse_bool(const char *v, int *out) {
  static const char *const yes[] = {"true", "1", "yes", "on"};
  static const char *const no[] = {"false", "0", "no", "off"};
  for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
    if (strcmp(v, yes[i]) == 0) {
      *out = 1;
      return 0;
    }
    if (strcmp(v, no[i]) == 0) {
      *out = 0;
      return 0;
    }
  }
  return -1;
}

static int parse_int(const struct flag_def *d, const char *v, char *err, size_t errlen) {
  char *end;
  errno = 0;
  long x = strtol(v, &end, 10);
  if (*v == '\0' || *end != '\0' || v[0] == ' ' || v[0] == '\t')
    return fail(err, errlen, "--%s: not a number: %s", d->name, v);
  int bounded = d->min != 0 || d->max != 0;
  if (errno == ERANGE || (bounded && (x < d->min || x > d->max))) {
    if (bounded)
      return fail(err, errlen, "--%s: out of range [%ld, %ld]: %s", d->name, d->min, d->max, v);
    return fail(err, errlen, "--%s: out of range: %s", d->name, v);
  }
  *(long *)d->target = x;
  return 0;
}

/* "250ms", "1.5s", "2m", "1h" or a plain number of milliseconds. */
static int parse_duration(const struct flag_def *d, const char *v, char *err, size_t errlen) {
  size_t digits = strspn(v, "0123456789.");
  if (!(v[0] >= '0' && v[0] <= '9') || strchr(v + digits, '.') != NULL)
    return fail(err, errlen, "--%s: not a duration: %s", d->name, v);
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (end != v + digits) return fail(err, errlen, "--%s: not a duration: %s", d->name, v);
  double mult;
  if (strcmp(end, "") == 0 || strcmp(end, "ms") == 0)
    mult = 1;
  else if (strcmp(end, "s") == 0)
    mult = 1000;
  else if (strcmp(end, "m") == 0)
    mult = 60 * 1000;
  else if (strcmp(end, "h") == 0)
    mult = 3600 * 1000;
  else
    return fail(err, errlen, "--%s: not a duration (want e.g. 250ms, 5s, 2m): %s", d->name, v);
  double ms = x * mult;
  if (errno == ERANGE || !isfinite(ms) || ms > (double)UINT32_MAX)
    return fail(err, errlen, "--%s: duration out of range: %s", d->name, v);
  *(uint32_t *)d->target = (uint32_t)llround(ms);
  return 0;
}

static int apply(const struct flag_def *d, const char *v, char *err, size_t errlen) {
  switch (d->type) {
    case FLAG_STRING:
      *(const char **)d->target = v;
      return 0;
    case FLAG_INT:
      return parse_int(d, v, err, errlen);
    case FLAG_BOOL: {
      int b;
      if (parse_bool(v, &b) != 0)
        return fail(err, errlen, "--%s: not a boolean (true|false): %s", d->name, v);
      *(int *)d->target = b;
      return 0;
    }
    case FLAG_LIST: {
      struct flag_list *l = d->target;
      if (l->count >= FLAG_LIST_MAX)
        return fail(err, errlen, "--%s: too many values (max %d)", d->name, FLAG_LIST_MAX);
      l->values[l->count++] = v;
      return 0;
    }
    case FLAG_DURATION_MS:
      return parse_duration(d, v, err, errlen);
    case FLAG_GROUP:
      break;
  }
  return fail(err, errlen, "--%s: unsupported flag type", d->name);
}

static int add_positional(const char *arg, const char **positional, int max_positional, int *npos,
                          char *err, size_t errlen) {
  if (positional == NULL || *npos >= max_positional)
    return fail(err, errlen, "unexpected argument: %s", arg);
  positional[(*npos)++] = arg;
  return 0;
}

int flags_parse(const struct flag_def *defs, size_t n, int argc, char **argv,
                const char **positional, int max_positional, int *npositional, char *err,
                size_t errlen) {
  int npos = 0;
  int rc = FLAGS_OK;
  if (err && errlen > 0) err[0] = '\0';
  for (int i = 1; i < argc && rc == FLAGS_OK; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "--") == 0) {
      for (i++; i < argc && rc == FLAGS_OK; i++)
        rc = add_positional(argv[i], positional, max_positional, &npos, err, errlen);
      break;
    }
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
      rc = FLAGS_HELP;
      break;
    }
    if (arg[0] != '-' || strcmp(arg, "-") == 0) {
      rc = add_positional(arg, positional, max_positional, &npos, err, errlen);
      continue;
    }
    if (arg[1] != '-') {
      rc = fail(err, errlen, "unknown flag %s (flags are --name or --name=value)", arg);
      break;
    }
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t namelen = eq ? (size_t)(eq - name) : strlen(name);
    const struct flag_def *d = find_def(defs, n, name, namelen);
    if (d == NULL) {
      rc = fail(err, errlen, "unknown flag --%.*s", (int)namelen, name);
      break;
    }
    if (eq) {
      rc = apply(d, eq + 1, err, errlen);
    } else if (d->type == FLAG_BOOL) {
      *(int *)d->target = 1;
    } else if (i + 1 < argc) {
      rc = apply(d, argv[++i], err, errlen);
    } else {
      rc = fail(err, errlen, "--%s: missing value", d->name);
    }
  }
  if (npositional) *npositional = npos;
  return rc;
}

static int flag_left(const struct flag_def *d, char *left, size_t len) {
  return d->metavar ? snprintf(left, len, "--%s=%s", d->name, d->metavar)
                    : snprintf(left, len, "--%s", d->name);
}

void flags_usage(FILE *out, const char *prog, const char *synopsis, const char *description,
                 const struct flag_def *defs, size_t n) {
  fprintf(out, "usage: %s %s\n", prog, synopsis ? synopsis : "[flags]");
  if (description && *description) fprintf(out, "\n%s\n", description);
  int width = 0;
  char left[256];
  for (size_t i = 0; i < n; i++) {
    if (defs[i].type == FLAG_GROUP) continue;
    int w = flag_left(&defs[i], left, sizeof(left));
    if (w > width) width = w;
  }
  if (width > 40) width = 40;
  if (n == 0 || defs[0].type != FLAG_GROUP) fprintf(out, "\nflags:\n");
  for (size_t i = 0; i < n; i++) {
    if (defs[i].type == FLAG_GROUP) {
      fprintf(out, "\n%s:\n", defs[i].help ? defs[i].help : "");
      continue;
    }
    flag_left(&defs[i], left, sizeof(left));
    fprintf(out, "  %-*s  %s%s\n", width, left, defs[i].help ? defs[i].help : "",
            defs[i].type == FLAG_LIST ? " (repeatable)" : "");
  }
  fprintf(out, "  %-*s  %s\n", width, "--help", "show this help and exit");
}
