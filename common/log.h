/*
 * log — one line per event, logfmt, with a level.
 *
 *   ts=2026-11-26T09:10:12.345Z level=info comp=syncd msg=started version=0.1.0
 *
 * Callers name the event (msg) and add key=value pairs in a printf-style
 * format. Values that may contain spaces or quotes are passed through
 * log_q(), which returns a quoted, escaped copy in a thread-local ring
 * buffer. Thread-safe: each line is written with a single write(2) to
 * stderr (or the file given to log_open). Secrets never go to the log.
 */
#ifndef EDGE_COMMON_LOG_H
#define EDGE_COMMON_LOG_H

#include <stdarg.h>

enum log_level { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR };

/* Component name printed as comp=NAME on every line (a static string). */
void log_init(const char *component);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "debug|info|warn|error"; returns 0 or -1. */
int log_parse_level(const char *s, enum log_level *out);
/* Sends log lines to fd (default 2). */
void log_set_fd(int fd);

/* Emits "ts=.. level=.. comp=.. msg=EVENT " followed by fmt's expansion. */
void log_emit(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_emitv(enum log_level level, const char *event, const char *fmt, va_list ap);

/*
 * Quotes s for logfmt when needed ("a b" -> "\"a b\""). The result lives in
 * a thread-local ring of 8 buffers of 512 bytes: valid until 8 more calls
 * on the same thread; longer values are truncated with "...".
 */
const char *log_q(const char *s);

#define LOG_DEBUG(event, ...)                                                              \
  do {                                                                                     \
    if (log_get_level() <= LOG_LEVEL_DEBUG) log_emit(LOG_LEVEL_DEBUG, event, __VA_ARGS__); \
  } while (0)
#define LOG_INFO(event, ...) log_emit(LOG_LEVEL_INFO, event, __VA_ARGS__)
#define LOG_WARN(event, ...) log_emit(LOG_LEVEL_WARN, event, __VA_ARGS__)
#define LOG_ERROR(event, ...) log_emit(LOG_LEVEL_ERROR, event, __VA_ARGS__)

#endif
