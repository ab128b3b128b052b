/*
 * timefmt — RFC 3339 UTC timestamps (see timefmt.h).
 */
#include "common/timefmt.h"

#include <stdio.h>
#include <time.h>

char *timefmt_utc_ms(int64_t sec, int ms, char *out, size_t len) {
  if (len == 0) return out;
  time_t tt = (time_t)sec;
  struct tm tm;
  if (!gmtime_r(&tt, &tm)) {
    snprintf(out, len, "-");
    return out;
  }
  if (ms < 0)
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  else
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms % 1000);
  return out;
}

char *timefmt_utc(int64_t t, char *out, size_t len) {
  if (t <= 0) {
    if (len) snprintf(out, len, "-");
    return out;
  }
  return timefmt_utc_ms(t, -1, out, len);
}
