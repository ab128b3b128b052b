/*
 * access_log — one line per finished request, logfmt or JSON, written by a
 * thread of its own so a slow disk or a full pipe never stalls a worker.
 *
 * The data path fills a struct access_record (borrowed strings, valid for
 * the call) and calls access_log_submit: the line is formatted on the
 * calling thread into a thread-local buffer and copied into a bounded byte
 * ring under a mutex held only for that copy. A line that does not fit in
 * the ring is dropped and counted (edge_l7_access_log_dropped_total), never
 * waited for. The writer thread moves what the ring holds to the file with
 * write(2); access_log_reopen (SIGUSR1, after logrotate moved the file)
 * makes it close and reopen the path between two writes.
 *
 * Schema (the same keys in both formats; JSON types in brackets; a value
 * that does not apply is null in JSON and "-" in logfmt):
 *   time [string, RFC 3339 UTC, ms] the request head arrived
 *   client_address [string]  client_port [number]  (PROXY protocol: the
 *     original client)
 *   protocol [string] "HTTP/1.1" | "HTTP/2"
 *   method [string]  authority [string] (Host / :authority)
 *   path [string] (no query string: queries carry tokens)
 *   status [number] sent to the client
 *   bytes_in [number] request body bytes  bytes_out [number] response bytes
 *   route [string] "host/path" of the matched route  cluster [string]
 *   upstream_address [string] the endpoint that answered (last tried)
 *   upstream_connect_ms [number] new upstream connection: connect time
 *   upstream_first_byte_ms [number] request start to the response head
 *   duration_ms [number] request start to the last response byte queued
 *   retries [number]
 *   tls_version [string] "TLSv1.3"  sni [string]  alpn [string]
 *   request_id [string] X-Request-Id  trace_id [string] 32 hex digits
 * logfmt lines start "ts=... level=info comp=l7proxy msg=access" like every
 * other log line and also keep the older keys (client, host, bytes,
 * upstream) so existing parsers go on working. JSON strings are escaped
 * (quotes, backslash, control characters as \u00XX; bytes that are not
 * UTF-8 become U+FFFD), logfmt values are quoted when they contain a space,
 * '=', '"' or a control character, so a client's bytes never break a line.
 *
 * Threads: submit from any worker; open/reopen/close from the main thread.
 */
#ifndef EDGE_L7PROXY_ACCESS_LOG_H
#define EDGE_L7PROXY_ACCESS_LOG_H

#include <stddef.h>
#include <stdint.h>

struct metrics_registry;
struct access_log;

enum access_log_format { ACCESS_LOG_LOGFMT = 0, ACCESS_LOG_JSON };

struct access_record {
  uint64_t time_ns; /* unix epoch ns the request head arrived */
  const char *client_address;
  uint16_t client_port;
  int h2;
  const char *method, *authority, *path;
  int status;
  uint64_t bytes_in, bytes_out;
  const char *route, *cluster, *upstream; /* NULL: none */
  int64_t upstream_connect_us;            /* < 0: none (pooled or no upstream) */
  int64_t upstream_first_byte_us;         /* < 0: none */
  int64_t duration_us;
  uint32_t retries;
  const char *tls_version, *sni, *alpn; /* NULL: none */
  const char *request_id, *trace_id;    /* NULL: none */
};

struct access_log_opts {
  const char *path; /* NULL or "-": stderr (never reopened) */
  int fd;           /* >= 0 and path NULL: write here (tests); not closed */
  enum access_log_format format;
  size_t ring_bytes; /* default 4 MiB */
  struct metrics_registry *metrics;
};

/* Parses "logfmt" or "json". 0 or -1. */
int access_log_parse_format(const char *s, enum access_log_format *out);

/* Formats r as one line with its '\n' into buf. Returns the length, or -1
 * when buf is too small (nothing useful written). Pure. */
int access_log_format(enum access_log_format f, const struct access_record *r, char *buf,
                      size_t cap);

/* Opens the file (append, 0640) and starts the writer. 0, or negative with
 * a reason in err. */
int access_log_open(const struct access_log_opts *o, struct access_log **out, char *err,
                    size_t errlen);

/* Formats and queues one line. 0, or -ENOSPC when it was dropped. */
int access_log_submit(struct access_log *al, const struct access_record *r);

/* Asks the writer to reopen the path (after logrotate). Any thread. */
void access_log_reopen(struct access_log *al);

/* Writes out what is queued, stops the writer, frees. NULL is fine. */
void access_log_close(struct access_log *al);

uint64_t access_log_dropped(const struct access_log *al);
uint64_t access_log_written(const struct access_log *al);

#endif
