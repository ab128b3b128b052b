/*
 * timefmt — UTC timestamps as operators read them (RFC 3339,
 * "2026-11-26T08:15:00Z"), for syncctl's tables, explain text and log
 * lines (with milliseconds).
 *
 * Pure; any thread (gmtime_r). Output is truncated, never overflowed, when
 * the buffer is short; TIMEFMT_LEN always suffices.
 */
#ifndef EDGE_COMMON_TIMEFMT_H
#define EDGE_COMMON_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TIMEFMT_LEN 32

/* Seconds since the epoch as "YYYY-MM-DDTHH:MM:SSZ"; "-" when t <= 0 (unset). Returns out. */
char *timefmt_utc(int64_t t, char *out, size_t len);

/* The same with milliseconds ("...:SS.mmmZ"), for log lines. Returns out. */
char *timefmt_utc_ms(int64_t sec, int ms, char *out, size_t len);

#endif
