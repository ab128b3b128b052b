/*
 * health — the pure part of health checking, shared by l4lb's replica
 * checks and l7proxy's per-cluster endpoint checks: the rise/fall state
 * machine (HAProxy semantics) and the parser of a check's HTTP response.
 *
 * State machine: a backend starts UP. While UP, `fall` consecutive
 * failures (active check failures and passive connect failures alike)
 * take it DOWN; while DOWN, `rise` consecutive successes bring it back.
 * A success resets the failure run and vice versa.
 *
 * Response parser: reads only the status line of an HTTP/1.x response
 * ("HTTP/1.1 200 OK\r\n"); a check passes on 2xx and 3xx, like HAProxy's
 * `option httpchk`. Everything else is hostile input: the parser accepts
 * any bytes and answers NEED_MORE, a status, or an error, never reading
 * past len.
 *
 * Callers: l4lb/checker.c, l7proxy/health_check.c and the unit/fuzz tests.
 * No I/O here.
 */
#ifndef EDGE_COMMON_HEALTH_H
#define EDGE_COMMON_HEALTH_H

#include <stddef.h>
#include <stdint.h>

struct health_state {
  int up;        /* 1 UP, 0 DOWN */
  int successes; /* consecutive, counted while DOWN */
  int failures;  /* consecutive, counted while UP */
  int rise;      /* successes needed to go UP (>= 1) */
  int fall;      /* failures needed to go DOWN (>= 1) */
};

/* Initialises h as UP with the given thresholds (values < 1 become 1). */
void health_init(struct health_state *h, int rise, int fall);

/* Records one check result (ok = 1 success). Returns 1 when the state
 * (UP/DOWN) changed, else 0. */
int health_observe(struct health_state *h, int ok);

#define HEALTH_STATUS_LINE_MAX 512

enum {
  HEALTH_PARSE_NEED_MORE = 0,
  HEALTH_PARSE_ERR = -1, /* not an HTTP/1.x status line, or too long */
};

/*
 * Parses the status line at the start of buf[0..len). Returns the status
 * code (100..599) once a whole line ending in LF is present,
 * HEALTH_PARSE_NEED_MORE while the bytes are a valid incomplete prefix, or
 * HEALTH_PARSE_ERR.
 */
int health_parse_status(const uint8_t *buf, size_t len);

/* 1 when an HTTP status passes a check (200..399). */
int health_status_ok(int status);

/* 1 when status is within [min, max]; min == max == 0 means 200..399. */
int health_status_expected(int status, unsigned min, unsigned max);

#endif
