/*
 * trace_context — W3C Trace Context: the traceparent and tracestate request
 * headers, span ids and the sampling decision. Pure functions over buffers;
 * no I/O, no allocation, no global state.
 *
 *   traceparent: 00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>
 *
 * Parsing follows the specification's rules for a receiver: lower-case hex
 * only, an all-zero trace-id or parent-id is invalid, version ff is invalid,
 * version 00 is exactly 55 characters, a higher version may carry more
 * fields after a '-' (ignored). A header that fails any rule is treated as
 * absent: the proxy starts a new trace and drops tracestate with it.
 * tracestate is kept only when it is a well-formed list of at most 32
 * key=value members (keys and values as the specification allows them) and
 * at most TRACE_STATE_MAX bytes; otherwise it is dropped whole, never
 * repaired, so a tenant's bytes are forwarded only when they are valid.
 *
 * Sampling is parent-based: a valid incoming traceparent decides (its
 * sampled flag), else the ratio decides from the trace-id's random low 63
 * bits (deterministic per trace id, so every proxy of a chain that starts
 * a trace with the same id decides the same way).
 *
 * Callers: the l7proxy data path (worker.c) at the start of an exchange,
 * unit tests, the fuzz target. Thread-safe (no state).
 */
#ifndef EDGE_L7PROXY_TRACE_CONTEXT_H
#define EDGE_L7PROXY_TRACE_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_FLAG_SAMPLED 0x01
#define TRACEPARENT_LEN 55  /* version 00, without NUL */
#define TRACE_STATE_MAX 512 /* longest tracestate kept (bytes) */

struct trace_context {
  uint8_t trace_id[16];
  uint8_t span_id[8]; /* received: the caller's span (our parent) */
  uint8_t flags;
};

/* Parses one traceparent value (surrounding spaces/tabs allowed). Returns 0
 * and fills out, or -1 when the value breaks a rule (out untouched). */
int trace_parse_traceparent(const char *v, size_t n, struct trace_context *out);

/* 1 when v[0..n) is a valid tracestate list (see above), else 0. An empty
 * value (only spaces and commas) is valid and means "no state". */
int trace_tracestate_valid(const char *v, size_t n);

/* Writes "00-<trace>-<span>-<flags>" and a NUL into out. */
void trace_format_traceparent(const uint8_t trace_id[16], const uint8_t span_id[8], uint8_t flags,
                              char out[TRACEPARENT_LEN + 1]);

/* Lower-case hex of n bytes into out (2n chars + NUL). */
void trace_hex(const uint8_t *b, size_t n, char *out);

/* Fills id (n bytes) from the random words, never all zero. */
void trace_fill_id(uint8_t *id, size_t n, uint64_t r1, uint64_t r2);

/* Ratio sampling of a new trace: 1 when the trace-id's low 63 bits fall
 * below ratio * 2^63. ratio <= 0 samples nothing, >= 1 everything. */
int trace_sample_ratio(const uint8_t trace_id[16], double ratio);

#endif
