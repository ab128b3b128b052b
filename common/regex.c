/*
 * regex — parse → AST → Thompson NFA program → simulation (see regex.h).
 *
 * The parser builds nodes in one array sized from the pattern length; the
 * compiler walks them and emits instructions (a counted repetition emits
 * its operand once per copy); the matcher keeps two lists of program
 * counters and a "seen" bitmap per step, all on the stack and bounded by
 * REGEX_MAX_INSTS. Nothing is allocated after regex_compile returns.
 */
#include "common/regex.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { I_BYTE, I_ANY, I_CLASS, I_SPLIT, I_JMP, I_MATCH };

struct rinst {
  uint8_t op;
  uint8_t byte;
  uint16_t x, y; /* SPLIT / JMP targets; CLASS: x = class index */
};

struct regex {
  struct rinst *insts;
  size_t n_insts;
  uint8_t (*classes)[32]; /* 256-bit byte sets */
  size_t n_classes;
};

enum { N_EMPTY, N_BYTE, N_ANY, N_CLASS, N_CAT, N_ALT, N_REP };

struct rnode {
  int type;
  int a, b;      /* children (CAT, ALT), child (REP: a) */
  int min, max;  /* REP: max -1 = unbounded */
  unsigned byte; /* BYTE; CLASS: class index */
};

#define REGEX_MAX_DEPTH 64

struct parser {
  const char *p, *start;
  struct rnode *nodes;
  size_t n_nodes, cap_nodes;
  uint8_t (*classes)[32];
  size_t n_classes, cap_classes;
  int depth;
  char *err;
  size_t errlen;
  int rc;
};

static int fail(struct parser *ps, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct parser *ps, int rc, const char *fmt, ...) {
  if (ps->rc == 0) {
    ps->rc = rc;
    if (ps->err && ps->errlen) {
      char msg[160];
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(msg, sizeof(msg), fmt, ap);
      va_end(ap);
      snprintf(ps->err, ps->errlen, "at offset %ld: %s", (long)(ps->p - ps->start), msg);
    }
  }
  return -1;
}

static int new_node(struct parser *ps, int type, int a, int b) {
  if (ps->n_nodes == ps->cap_nodes) return fail(ps, REGEX_ERR_TOO_BIG, "expression too large");
  struct rnode *n = &ps->nodes[ps->n_nodes];
  memset(n, 0, sizeof(*n));
  n->type = type;
  n->a = a;
  n->b = b;
  return (int)ps->n_nodes++;
}

static int new_class(struct parser *ps) {
  if (ps->n_classes == ps->cap_classes) return fail(ps, REGEX_ERR_TOO_BIG, "too many classes");
  memset(ps->classes[ps->n_classes], 0, 32);
  return (int)ps->n_classes++;
}

static void set_bit(uint8_t *set, unsigned c) {
  set[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static void set_range(uint8_t *set, unsigned lo, unsigned hi) {
  for (unsigned c = lo; c <= hi; c++) set_bit(set, c);
}

/* \d \w \s and their complements into set; 0 when e is not one of them. */
static int perl_class(uint8_t *set, char e) {
  uint8_t tmp[32] = {0};
  switch (e | 0x20) {
    case 'd':
      set_range(tmp, '0', '9');
      break;
    case 'w':
      set_range(tmp, '0', '9'), set_range(tmp, 'a', 'z'), set_range(tmp, 'A', 'Z');
      set_bit(tmp, '_');
      break;
    case 's':
      set_bit(tmp, ' '), set_bit(tmp, '\t'), set_bit(tmp, '\n'), set_bit(tmp, '\r');
      set_bit(tmp, '\f'), set_bit(tmp, '\v');
      break;
    default:
      return 0;
  }
  int negate = e >= 'A' && e <= 'Z';
  for (int i = 0; i < 32; i++) set[i] |= negate ? (uint8_t)~tmp[i] : tmp[i];
  return 1;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* After a '\': a single byte escape into *out (1), or -1 on error. ps->p is past the escape. */
static int escape_byte(struct parser *ps, unsigned *out) {
  char e = *ps->p;
  if (e == '\0') return fail(ps, REGEX_ERR_SYNTAX, "trailing backslash");
  ps->p++;
  switch (e) {
    case 't':
      *out = '\t';
      return 1;
    case 'n':
      *out = '\n';
      return 1;
    case 'r':
      *out = '\r';
      return 1;
    case 'f':
      *out = '\f';
      return 1;
    case 'v':
      *out = '\v';
      return 1;
    case 'x': {
      int h = hexval(ps->p[0]), l = h >= 0 ? hexval(ps->p[1]) : -1;
      if (h < 0 || l < 0) return fail(ps, REGEX_ERR_SYNTAX, "\\x needs two hex digits");
      ps->p += 2;
      *out = (unsigned)(h * 16 + l);
      return 1;
    }
  }
  if ((e >= '0' && e <= '9') || (e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z'))
    return fail(ps, REGEX_ERR_SYNTAX, "escape \\%c is not supported", e);
  *out = (unsigned char)e;
  return 1;
}

static int parse_class(struct parser *ps) {
  int ci = new_class(ps);
  if (ci < 0) return -1;
  uint8_t *set = ps->classes[ci];
  int negate = 0;
  if (*ps->p == '^') negate = 1, ps->p++;
  int first = 1;
  while (*ps->p && (*ps->p != ']' || first)) {
    first = 0;
    unsigned lo;
    if (*ps->p == '\\') {
      ps->p++;
      if (perl_class(set, *ps->p)) {
        ps->p++;
        continue;
      }
      if (escape_byte(ps, &lo) < 0) return -1;
    } else if (*ps->p == '[' && ps->p[1] == ':') {
      return fail(ps, REGEX_ERR_SYNTAX, "POSIX classes [:name:] are not supported");
    } else {
      lo = (unsigned char)*ps->p++;
    }
    unsigned hi = lo;
    if (ps->p[0] == '-' && ps->p[1] && ps->p[1] != ']') {
      ps->p++;
      if (*ps->p == '\\') {
        ps->p++;
        if (escape_byte(ps, &hi) < 0) return -1;
      } else {
        hi = (unsigned char)*ps->p++;
      }
      if (hi < lo) return fail(ps, REGEX_ERR_SYNTAX, "class range out of order");
    }
    set_range(set, lo, hi);
  }
  if (*ps->p != ']') return fail(ps, REGEX_ERR_SYNTAX, "missing ]");
  ps->p++;
  if (negate)
    for (int i = 0; i < 32; i++) set[i] = (uint8_t)~set[i];
  int n = new_node(ps, N_CLASS, -1, -1);
  if (n >= 0) ps->nodes[n].byte = (unsigned)ci;
  return n;
}

static int parse_alt(struct parser *ps);

static int parse_atom(struct parser *ps) {
  char c = *ps->p;
  if (c == '(') {
    ps->p++;
    if (ps->p[0] == '?') {
      if (ps->p[1] != ':')
        return fail(ps, REGEX_ERR_SYNTAX, "only (?: ) groups are supported (no flags, lookaround)");
      ps->p += 2;
    }
    if (++ps->depth > REGEX_MAX_DEPTH) return fail(ps, REGEX_ERR_TOO_BIG, "groups nested too deep");
    int n = parse_alt(ps);
    ps->depth--;
    if (n < 0) return -1;
    if (*ps->p != ')') return fail(ps, REGEX_ERR_SYNTAX, "missing )");
    ps->p++;
    return n;
  }
  if (c == '[') {
    ps->p++;
    return parse_class(ps);
  }
  if (c == '.') {
    ps->p++;
    return new_node(ps, N_ANY, -1, -1);
  }
  if (c == '\\') {
    ps->p++;
    if (ps->p[0] && strchr("dDwWsS", ps->p[0])) {
      int ci = new_class(ps);
      if (ci < 0) return -1;
      perl_class(ps->classes[ci], *ps->p++);
      int n = new_node(ps, N_CLASS, -1, -1);
      if (n >= 0) ps->nodes[n].byte = (unsigned)ci;
      return n;
    }
    unsigned b;
    if (escape_byte(ps, &b) < 0) return -1;
    int n = new_node(ps, N_BYTE, -1, -1);
    if (n >= 0) ps->nodes[n].byte = b;
    return n;
  }
  if (c == '*' || c == '+' || c == '?' || c == '{')
    return fail(ps, REGEX_ERR_SYNTAX, "repetition '%c' without an operand", c);
  if (c == ')') return fail(ps, REGEX_ERR_SYNTAX, "unbalanced )");
  ps->p++;
  int n = new_node(ps, N_BYTE, -1, -1);
  if (n >= 0) ps->nodes[n].byte = (unsigned char)c;
  return n;
}

/* "{n}", "{n,}", "{n,m}" at ps->p (past '{'). 0 with min/max, or -1. */
static int parse_count(struct parser *ps, int *min, int *max) {
  long v[2] = {-1, -1};
  int comma = 0;
  for (int k = 0; k < 2; k++) {
    long x = -1;
    while (*ps->p >= '0' && *ps->p <= '9') {
      x = (x < 0 ? 0 : x) * 10 + (*ps->p++ - '0');
      if (x > REGEX_MAX_REPEAT)
        return fail(ps, REGEX_ERR_TOO_BIG, "repetition count above %d", REGEX_MAX_REPEAT);
    }
    v[k] = x;
    if (k == 0 && *ps->p == ',') {
      comma = 1;
      ps->p++;
      continue;
    }
    break;
  }
  if (*ps->p != '}' || v[0] < 0) return fail(ps, REGEX_ERR_SYNTAX, "bad repetition {n,m}");
  ps->p++;
  *min = (int)v[0];
  *max = comma ? (int)v[1] : (int)v[0];
  if (*max >= 0 && *max < *min) return fail(ps, REGEX_ERR_SYNTAX, "repetition {n,m} with m < n");
  return 0;
}

static int parse_repeat(struct parser *ps) {
  int n = parse_atom(ps);
  while (n >= 0) {
    int min, max;
    char c = *ps->p;
    if (c == '*')
      min = 0, max = -1, ps->p++;
    else if (c == '+')
      min = 1, max = -1, ps->p++;
    else if (c == '?')
      min = 0, max = 1, ps->p++;
    else if (c == '{') {
      ps->p++;
      if (parse_count(ps, &min, &max) < 0) return -1;
    } else
      break;
    if (*ps->p == '?') ps->p++; /* lazy: the same set of full matches */
    int r = new_node(ps, N_REP, n, -1);
    if (r < 0) return -1;
    ps->nodes[r].min = min;
    ps->nodes[r].max = max;
    n = r;
  }
  return n;
}

static int parse_concat(struct parser *ps) {
  int n = -1;
  if (*ps->p == '^') ps->p++; /* anchors at the ends change nothing in a full match */
  while (*ps->p && *ps->p != '|' && *ps->p != ')') {
    if (*ps->p == '$') {
      ps->p++;
      if (*ps->p && *ps->p != '|' && *ps->p != ')')
        return fail(ps, REGEX_ERR_SYNTAX, "'$' is only allowed at the end");
      break;
    }
    if (*ps->p == '^') return fail(ps, REGEX_ERR_SYNTAX, "'^' is only allowed at the start");
    int r = parse_repeat(ps);
    if (r < 0) return -1;
    n = n < 0 ? r : new_node(ps, N_CAT, n, r);
    if (n < 0) return -1;
  }
  return n < 0 ? new_node(ps, N_EMPTY, -1, -1) : n;
}

static int parse_alt(struct parser *ps) {
  int n = parse_concat(ps);
  while (n >= 0 && *ps->p == '|') {
    ps->p++;
    int r = parse_concat(ps);
    if (r < 0) return -1;
    n = new_node(ps, N_ALT, n, r);
  }
  return n;
}

/* ---- compile ------------------------------------------------------------ */

struct emitter {
  const struct rnode *nodes;
  struct rinst *insts;
  size_t n, cap;
  int overflow;
};

static size_t emit(struct emitter *e, uint8_t op) {
  if (e->n >= e->cap) {
    e->overflow = 1;
    return e->n;
  }
  e->insts[e->n] = (struct rinst){.op = op};
  return e->n++;
}

static void set_xy(struct emitter *e, size_t at, size_t x, size_t y) {
  if (at < e->n) e->insts[at].x = (uint16_t)x, e->insts[at].y = (uint16_t)y;
}

static void compile_node(struct emitter *e, int idx) {
  if (e->overflow) return;
  const struct rnode *n = &e->nodes[idx];
  switch (n->type) {
    case N_EMPTY:
      return;
    case N_BYTE: {
      size_t at = emit(e, I_BYTE);
      if (at < e->n) e->insts[at].byte = (uint8_t)n->byte;
      return;
    }
    case N_ANY:
      emit(e, I_ANY);
      return;
    case N_CLASS: {
      size_t at = emit(e, I_CLASS);
      if (at < e->n) e->insts[at].x = (uint16_t)n->byte;
      return;
    }
    case N_CAT:
      compile_node(e, n->a);
      compile_node(e, n->b);
      return;
    case N_ALT: {
      size_t split = emit(e, I_SPLIT);
      compile_node(e, n->a);
      size_t jmp = emit(e, I_JMP);
      size_t second = e->n;
      compile_node(e, n->b);
      set_xy(e, split, split + 1, second);
      set_xy(e, jmp, e->n, 0);
      return;
    }
    case N_REP: {
      for (int i = 0; i < n->min && !e->overflow; i++) compile_node(e, n->a);
      if (n->max < 0) {
        size_t split = emit(e, I_SPLIT);
        compile_node(e, n->a);
        size_t jmp = emit(e, I_JMP);
        set_xy(e, jmp, split, 0);
        set_xy(e, split, split + 1, e->n);
        return;
      }
      size_t splits[REGEX_MAX_REPEAT];
      int k = 0;
      for (int i = n->min; i < n->max && !e->overflow; i++) {
        splits[k++] = emit(e, I_SPLIT);
        compile_node(e, n->a);
      }
      for (int i = 0; i < k; i++) set_xy(e, splits[i], splits[i] + 1, e->n);
      return;
    }
  }
}

int regex_compile(const char *pattern, struct regex **out, char *err, size_t errlen) {
  *out = NULL;
  size_t len = pattern ? strlen(pattern) : 0;
  if (len > REGEX_MAX_PATTERN) {
    if (err && errlen) snprintf(err, errlen, "pattern longer than %d bytes", REGEX_MAX_PATTERN);
    return REGEX_ERR_TOO_BIG;
  }
  struct parser ps = {.p = pattern ? pattern : "", .start = pattern ? pattern : ""};
  ps.err = err;
  ps.errlen = errlen;
  ps.cap_nodes = 3 * len + 4;
  ps.cap_classes = len + 1;
  ps.nodes = calloc(ps.cap_nodes, sizeof(*ps.nodes));
  ps.classes = calloc(ps.cap_classes, sizeof(*ps.classes));
  struct regex *re = calloc(1, sizeof(*re));
  struct rinst *insts = calloc(REGEX_MAX_INSTS, sizeof(*insts));
  int rc = REGEX_ERR_NOMEM;
  if (!ps.nodes || !ps.classes || !re || !insts) goto out;
  int root = parse_alt(&ps);
  if (root >= 0 && *ps.p) fail(&ps, REGEX_ERR_SYNTAX, "unbalanced )");
  if (ps.rc) {
    rc = ps.rc;
    goto out;
  }
  struct emitter e = {.nodes = ps.nodes, .insts = insts, .cap = REGEX_MAX_INSTS - 1};
  compile_node(&e, root);
  if (e.overflow) {
    if (err && errlen)
      snprintf(err, errlen, "pattern compiles to more than %d instructions", REGEX_MAX_INSTS);
    rc = REGEX_ERR_TOO_BIG;
    goto out;
  }
  emit(&e, I_MATCH);
  re->n_insts = e.n;
  struct rinst *shrunk = realloc(insts, e.n * sizeof(*insts));
  re->insts = shrunk ? shrunk : insts;
  insts = NULL;
  re->n_classes = ps.n_classes;
  re->classes = ps.classes;
  ps.classes = NULL;
  *out = re;
  re = NULL;
  rc = 0;
out:
  free(ps.nodes);
  free(ps.classes);
  free(insts);
  regex_free(re);
  return rc;
}

void regex_free(struct regex *re) {
  if (!re) return;
  free(re->insts);
  free(re->classes);
  free(re);
}

int regex_check(const char *pattern, char *err, size_t errlen) {
  struct regex *re = NULL;
  int rc = regex_compile(pattern, &re, err, errlen);
  regex_free(re);
  return rc;
}

/* ---- match -------------------------------------------------------------- */

struct thread_list {
  uint16_t pc[REGEX_MAX_INSTS];
  size_t n;
};

/* Adds pc and everything reachable from it through JMP/SPLIT to l. */
static void add_thread(const struct regex *re, struct thread_list *l, uint8_t *seen, uint16_t pc,
                       uint16_t *stack) {
  size_t sp = 0;
  stack[sp++] = pc;
  while (sp > 0) {
    uint16_t p = stack[--sp];
    if (seen[p >> 3] & (1u << (p & 7))) continue;
    seen[p >> 3] |= (uint8_t)(1u << (p & 7));
    const struct rinst *in = &re->insts[p];
    if (in->op == I_JMP) {
      stack[sp++] = in->x;
    } else if (in->op == I_SPLIT) {
      stack[sp++] = in->y;
      stack[sp++] = in->x;
    } else {
      l->pc[l->n++] = p;
    }
  }
}

int regex_match(const struct regex *re, const char *s, size_t n) {
  if (!re) return 0;
  struct thread_list a, b;
  uint8_t seen[REGEX_MAX_INSTS / 8];
  uint16_t stack[2 * REGEX_MAX_INSTS + 2];
  struct thread_list *cur = &a, *next = &b;
  cur->n = 0;
  memset(seen, 0, sizeof(seen));
  add_thread(re, cur, seen, 0, stack);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    next->n = 0;
    memset(seen, 0, (re->n_insts + 7) / 8);
    for (size_t k = 0; k < cur->n; k++) {
      const struct rinst *in = &re->insts[cur->pc[k]];
      int ok = (in->op == I_BYTE && in->byte == c) || in->op == I_ANY ||
               (in->op == I_CLASS && (re->classes[in->x][c >> 3] & (1u << (c & 7))));
      if (ok) add_thread(re, next, seen, (uint16_t)(cur->pc[k] + 1), stack);
    }
    struct thread_list *t = cur;
    cur = next;
    next = t;
    if (cur->n == 0) return 0;
  }
  for (size_t k = 0; k < cur->n; k++)
    if (re->insts[cur->pc[k]].op == I_MATCH) return 1;
  return 0;
}
