/*
 * headermod — one pass over the input deciding for each header whether it
 * is removed, replaced by its `set` (first occurrence only) or kept, then
 * the sets that found no header and the adds. O(n × modifiers); modifier
 * lists are short (Gateway API allows 16 of each).
 */
#include "common/headermod.h"

#include <string.h>
#include <strings.h>

static int is_tchar(unsigned char c) {
  if (c >= '0' && c <= '9') return 1;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
  return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int headermod_check(const char *name, size_t name_len, const char *value, size_t value_len) {
  if (!name || name_len == 0) return -1;
  for (size_t i = 0; i < name_len; i++)
    if (!is_tchar((unsigned char)name[i])) return -1;
  for (size_t i = 0; i < value_len; i++) {
    unsigned char c = (unsigned char)value[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f) return -1;
  }
  return 0;
}

static int same(const char *a, size_t al, const char *b, size_t bl) {
  return al == bl && strncasecmp(a, b, al) == 0;
}

static int removed(const struct headermod *m, const struct headermod_header *h) {
  for (size_t k = 0; k < m->n_remove; k++)
    if (same(h->name, h->name_len, m->remove[k], strlen(m->remove[k]))) return 1;
  return 0;
}

long headermod_apply(const struct headermod *m, const struct headermod_header *in, size_t n,
                     struct headermod_header *out, size_t cap) {
  static const struct headermod none;
  if (!m) m = &none;
  for (size_t k = 0; k < m->n_set; k++)
    if (headermod_check(m->set[k].name, m->set[k].name_len, m->set[k].value, m->set[k].value_len))
      return HEADERMOD_ERR_INVALID;
  for (size_t k = 0; k < m->n_add; k++)
    if (headermod_check(m->add[k].name, m->add[k].name_len, m->add[k].value, m->add[k].value_len))
      return HEADERMOD_ERR_INVALID;
  for (size_t k = 0; k < m->n_remove; k++)
    if (!m->remove[k] || headermod_check(m->remove[k], strlen(m->remove[k]), "", 0))
      return HEADERMOD_ERR_INVALID;
  size_t o = 0;
  unsigned long long placed = 0; /* bit k: set[k] already written (n_set <= 64) */
  if (m->n_set > 64) return HEADERMOD_ERR_INVALID;
  for (size_t i = 0; i < n; i++) {
    const struct headermod_header *h = &in[i];
    if (removed(m, h)) continue;
    size_t k = 0;
    while (k < m->n_set && !same(h->name, h->name_len, m->set[k].name, m->set[k].name_len)) k++;
    if (k < m->n_set) {
      if (placed & (1ull << k)) continue; /* a later occurrence of a set name */
      placed |= 1ull << k;
      h = &m->set[k];
    }
    if (o == cap) return HEADERMOD_ERR_SPACE;
    out[o++] = *h;
  }
  for (size_t k = 0; k < m->n_set; k++) {
    if (placed & (1ull << k)) continue;
    if (o == cap) return HEADERMOD_ERR_SPACE;
    out[o++] = m->set[k];
  }
  for (size_t k = 0; k < m->n_add; k++) {
    if (o == cap) return HEADERMOD_ERR_SPACE;
    out[o++] = m->add[k];
  }
  return (long)o;
}
