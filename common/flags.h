/*
 * flags — GNU-style long options (--name=value, --name value, --bool) with
 * generated --help and one-line errors.
 *
 * A daemon declares a table of struct flag_def and calls flags_parse. A
 * repeatable flag collects values in a struct flag_list. Parsing never
 * exits: it returns FLAGS_HELP for --help (the caller prints flags_usage
 * and exits 0) or a negative error with a one-line reason in err, such as
 * "unknown flag --foo" or "--workers: not a number: abc".
 */
#ifndef EDGE_COMMON_FLAGS_H
#define EDGE_COMMON_FLAGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum flag_type {
  FLAG_STRING,      /* const char **: points into argv */
  FLAG_INT,         /* long *: decimal, range checked with min/max */
  FLAG_BOOL,        /* int *: --name or --name=true|false */
  FLAG_LIST,        /* struct flag_list *: repeatable string */
  FLAG_DURATION_MS, /* uint32_t *: "250ms", "5s", "2m" or a plain number of ms */
  FLAG_GROUP,       /* not a flag: starts a titled group of --help (help = title) */
};

/* A group heading in a flag table: the flags after it, up to the next
 * heading, are listed under "TITLE:" in --help. */
#define FLAG_GROUP_DEF(title) \
  { "", FLAG_GROUP, NULL, title, NULL, 0, 0 }

#define FLAG_LIST_MAX 64
struct flag_list {
  const char *values[FLAG_LIST_MAX];
  int count;
};

struct flag_def {
  const char *name; /* without dashes: "workers" */
  enum flag_type type;
  void *target;
  const char *help;    /* one line */
  const char *metavar; /* "ADDR:PORT"; NULL for none */
  long min, max;       /* FLAG_INT bounds (both 0: unbounded) */
};

enum { FLAGS_OK = 0, FLAGS_HELP = 1, FLAGS_ERR = -1 };

/*
 * Parses argv[1..] against defs (n entries). Positional arguments (not
 * starting with "--", or everything after "--") are stored in order in
 * positional[0..*npositional) up to max_positional; pass NULL/0 to reject
 * any. Returns FLAGS_OK, FLAGS_HELP or FLAGS_ERR with err filled.
 */
int flags_parse(const struct flag_def *defs, size_t n, int argc, char **argv,
                const char **positional, int max_positional, int *npositional, char *err,
                size_t errlen);

/* Prints "usage: PROG SYNOPSIS\n\nDESCRIPTION\n\nflags:\n  --name=METAVAR  help";
 * with FLAG_GROUP entries, each group under its own "TITLE:" heading
 * (flags before the first heading under "flags:"), --help last under
 * the last group. Columns line up across groups. */
void flags_usage(FILE *out, const char *prog, const char *synopsis, const char *description,
                 const struct flag_def *defs, size_t n);

#endif
