/*
 * sni — the SNI → certificate table (see sni.h). Two sorted arrays
 * searched with bsearch: exact names, and wildcard suffixes (the part
 * after "*."), looked up with the request name minus its first label.
 */
#include "common/sni.h"

#include <stdlib.h>
#include <string.h>

static int is_name_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

int sni_normalize(const char *in, size_t len, int wildcard, char *out, size_t outlen) {
  if (!in) return SNI_ERR_INVALID;
  if (len > 0 && in[len - 1] == '.') len--;
  if (len == 0 || len >= outlen || len >= SNI_NAME_MAX) return SNI_ERR_INVALID;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)in[i];
    int ok = is_name_char(ch);
    if (!ok && wildcard && ch == '*' && i == 0 && len > 2 && in[1] == '.') ok = 1;
    if (!ok) return SNI_ERR_INVALID;
    out[i] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
  }
  out[len] = '\0';
  if (out[0] == '.' || strstr(out, "..")) return SNI_ERR_INVALID;
  return 0;
}

void sni_table_init(struct sni_table *t) {
  memset(t, 0, sizeof(*t));
  t->default_cert = -1;
}

int sni_table_add(struct sni_table *t, const char *name, size_t cert) {
  char norm[SNI_NAME_MAX];
  if (!name || sni_normalize(name, strlen(name), 1, norm, sizeof(norm)) != 0)
    return SNI_ERR_INVALID;
  int wild = norm[0] == '*';
  struct sni_entry **tab = wild ? &t->wild : &t->exact;
  size_t *n = wild ? &t->n_wild : &t->n_exact;
  size_t *cap = wild ? &t->cap_wild : &t->cap_exact;
  if (*n == *cap) {
    size_t ncap = *cap ? *cap * 2 : 16;
    struct sni_entry *grown = realloc(*tab, ncap * sizeof(**tab));
    if (!grown) return SNI_ERR_NOMEM;
    *tab = grown;
    *cap = ncap;
  }
  char *copy = strdup(wild ? norm + 2 : norm);
  if (!copy) return SNI_ERR_NOMEM;
  (*tab)[*n].name = copy;
  (*tab)[*n].cert = cert;
  (*n)++;
  return 0;
}

void sni_table_set_default(struct sni_table *t, size_t cert) {
  if (t->default_cert < 0) t->default_cert = (long)cert;
}

static int entry_cmp(const void *a, const void *b) {
  const struct sni_entry *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  if (c) return c;
  return x->cert < y->cert ? -1 : x->cert > y->cert;
}

static int entry_key_cmp(const void *key, const void *e) {
  return strcmp(key, ((const struct sni_entry *)e)->name);
}

/* Sorts and keeps the first certificate (lowest number) per name. */
static size_t finish_one(struct sni_entry *t, size_t n) {
  if (n == 0) return 0;
  qsort(t, n, sizeof(*t), entry_cmp);
  size_t w = 1;
  for (size_t r = 1; r < n; r++) {
    if (strcmp(t[r].name, t[w - 1].name) == 0) {
      free(t[r].name);
      continue;
    }
    t[w++] = t[r];
  }
  return w;
}

void sni_table_finish(struct sni_table *t) {
  t->n_exact = finish_one(t->exact, t->n_exact);
  t->n_wild = finish_one(t->wild, t->n_wild);
}

long sni_table_select(const struct sni_table *t, const char *sni, enum sni_match *how) {
  char name[SNI_NAME_MAX];
  enum sni_match dummy;
  if (!how) how = &dummy;
  if (sni && *sni && sni_normalize(sni, strlen(sni), 0, name, sizeof(name)) == 0) {
    /* bsearch over an empty (NULL) table is undefined: skip it */
    const struct sni_entry *e =
        t->n_exact ? bsearch(name, t->exact, t->n_exact, sizeof(*e), entry_key_cmp) : NULL;
    if (e) {
      *how = SNI_EXACT;
      return (long)e->cert;
    }
    const char *dot = strchr(name, '.');
    if (dot && dot != name && dot[1] && t->n_wild) {
      e = bsearch(dot + 1, t->wild, t->n_wild, sizeof(*e), entry_key_cmp);
      if (e) {
        *how = SNI_WILDCARD;
        return (long)e->cert;
      }
    }
  }
  *how = t->default_cert >= 0 ? SNI_DEFAULT : SNI_NONE;
  return t->default_cert;
}

void sni_table_free(struct sni_table *t) {
  for (size_t i = 0; i < t->n_exact; i++) free(t->exact[i].name);
  for (size_t i = 0; i < t->n_wild; i++) free(t->wild[i].name);
  free(t->exact);
  free(t->wild);
  sni_table_init(t);
}

const char *sni_match_str(enum sni_match m) {
  switch (m) {
    case SNI_EXACT:
      return "exact";
    case SNI_WILDCARD:
      return "wildcard";
    case SNI_DEFAULT:
      return "default";
    default:
      return "none";
  }
}
