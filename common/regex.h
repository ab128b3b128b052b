/*
 * regex — the regular expressions of Gateway API matches (path, header and
 * query-parameter RegularExpression), compiled once, matched in linear
 * time without allocation.
 *
 * Dialect: a subset of RE2 (what Envoy-based gateways accept), always
 * matched against the WHOLE value (an implicit ^...$; a leading '^' and a
 * trailing '$' are accepted and change nothing):
 *   literals and escapes  a  \.  \\  \/  \-  \t  \n  \xHH
 *   any byte              .     (any byte, '\n' included)
 *   classes               [a-z0-9_]  [^/]  \d \D \w \W \s \S (also in [])
 *   groups                (x)  (?:x)   (no capture: nothing is extracted)
 *   alternation           a|b
 *   repetition            x*  x+  x?  x{n}  x{n,}  x{n,m}  (lazy forms
 *                         x*? etc. are accepted: a full match does not care)
 * Refused with a reason: backreferences, lookaround, named groups, flags,
 * Unicode classes, a counted repetition above REGEX_MAX_REPEAT, a pattern
 * longer than REGEX_MAX_PATTERN or compiling to more than REGEX_MAX_INSTS
 * instructions. Matching is byte-wise (UTF-8 is bytes).
 *
 * Why not POSIX regexec: glibc's regexec allocates per call and
 * backtracks; a route lookup must not allocate, and a tenant's pattern
 * must not turn a request into exponential work (ReDoS). This is a Thompson
 * NFA simulated with two state lists on the stack: time O(len × insts),
 * memory fixed.
 *
 * Invariants: a compiled regex is immutable; regex_match is thread-safe
 * and allocation-free. Callers: common/router.c (matching), syncd's
 * gateway translator (validation), tests and the fuzz target.
 */
#ifndef EDGE_COMMON_REGEX_H
#define EDGE_COMMON_REGEX_H

#include <stddef.h>

#define REGEX_MAX_PATTERN 1024
#define REGEX_MAX_INSTS 2048
#define REGEX_MAX_REPEAT 100

enum {
  REGEX_ERR_SYNTAX = -1, /* not in the dialect (reason in err) */
  REGEX_ERR_TOO_BIG = -2,
  REGEX_ERR_NOMEM = -3,
};

struct regex;

/* Compiles pattern (NUL-terminated). On success 0 and *out (free with
 * regex_free); else a negative code and a reason naming the offset. */
int regex_compile(const char *pattern, struct regex **out, char *err, size_t errlen);
void regex_free(struct regex *re);

/* 1 when s[0..n) matches the whole expression, else 0. Never allocates. */
int regex_match(const struct regex *re, const char *s, size_t n);

/* 0 when pattern compiles, else negative with the reason (for syncd). */
int regex_check(const char *pattern, char *err, size_t errlen);

#endif
