/*
 * Fuzz target for the Gateway API regex dialect (common/regex.c): the first
 * line is a pattern, the rest a subject. Never crash, never read out of
 * bounds, compile errors always come with a reason, and matching is a pure
 * function (the same answer twice).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/regex.h"

#define CHECK(cond)       \
  do {                    \
    if (!(cond)) abort(); \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nl = memchr(data, '\n', size);
  size_t plen = nl ? (size_t)(nl - data) : size;
  char *pattern = malloc(plen + 1);
  if (!pattern) return 0;
  memcpy(pattern, data, plen);
  pattern[plen] = '\0';
  struct regex *re = NULL;
  char err[200] = "";
  int rc = regex_compile(pattern, &re, err, sizeof(err));
  if (rc < 0) {
    CHECK(re == NULL && err[0] != '\0');
  } else {
    const char *subject = nl ? (const char *)nl + 1 : "";
    size_t slen = nl ? size - plen - 1 : 0;
    int a = regex_match(re, subject, slen), b = regex_match(re, subject, slen);
    CHECK((a == 0 || a == 1) && a == b);
  }
  regex_free(re);
  free(pattern);
  return 0;
}
