/*
 * manifest — libyaml events → jansson values, one document at a time.
 *
 * The builder keeps an explicit stack of open containers (no recursion
 * over the input, so deep nesting cannot overflow the C stack) and a
 * table of anchors. Aliases share the anchored value by reference; the
 * node budget counts every alias at the full size of what it names, so a
 * "billion laughs" document is refused instead of exploding later in the
 * translator. A document that fails is dropped whole; libyaml cannot
 * resume after a syntax error, so the rest of that file is dropped too.
 */
#include "syncd/manifest.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define MANIFEST_MAX_DEPTH 64
#define MANIFEST_MAX_NODES (1u << 20)

struct frame {
  json_t *value; /* the open array or object */
  char *key;     /* mappings: key waiting for its value (NULL: expecting a key) */
  size_t key_len;
  char *anchor; /* anchor to register when the container closes */
  size_t start_nodes;
};

struct anchor {
  char *name;
  json_t *value;
  size_t weight;
};

struct builder {
  struct manifest_set *set;
  const char *filename;
  struct frame stack[MANIFEST_MAX_DEPTH];
  int depth;
  json_t *root;
  struct anchor *anchors;
  size_t n_anchors, cap_anchors;
  size_t nodes;
  size_t doc_line;
  int failed; /* the current document was refused; skip to its end */
  int any_error;
  int oom;
};

void manifest_set_init(struct manifest_set *s) {
  memset(s, 0, sizeof(*s));
}

void manifest_set_free(struct manifest_set *s) {
  for (size_t i = 0; i < s->n_docs; i++) {
    json_decref(s->docs[i].obj);
    if (!s->borrow_locations) free(s->docs[i].location);
  }
  for (size_t i = 0; i < s->n_errors; i++) {
    free(s->errors[i].location);
    free(s->errors[i].message);
  }
  free(s->docs);
  free(s->errors);
  memset(s, 0, sizeof(*s));
}

int manifest_add(struct manifest_set *s, json_t *obj, const char *location) {
  if (s->n_docs == s->cap_docs) {
    size_t cap = s->cap_docs ? s->cap_docs * 2 : 16;
    struct manifest_doc *d = realloc(s->docs, cap * sizeof(*d));
    if (!d) return -ENOMEM;
    s->docs = d;
    s->cap_docs = cap;
  }
  char *loc =
      s->borrow_locations ? (char *)(location ? location : "") : strdup(location ? location : "");
  if (!loc) return -ENOMEM;
  s->docs[s->n_docs].obj = json_incref(obj);
  s->docs[s->n_docs].location = loc;
  s->n_docs++;
  return 0;
}

int manifest_add_error(struct manifest_set *s, const char *location, const char *message) {
  if (s->n_errors == s->cap_errors) {
    size_t cap = s->cap_errors ? s->cap_errors * 2 : 4;
    struct manifest_error *e = realloc(s->errors, cap * sizeof(*e));
    if (!e) return -ENOMEM;
    s->errors = e;
    s->cap_errors = cap;
  }
  char *loc = strdup(location ? location : "");
  char *msg = strdup(message ? message : "");
  if (!loc || !msg) {
    free(loc);
    free(msg);
    return -ENOMEM;
  }
  s->errors[s->n_errors].location = loc;
  s->errors[s->n_errors].message = msg;
  s->n_errors++;
  return 0;
}

static void builder_error(struct builder *b, size_t line, const char *fmt, const char *arg) {
  char loc[1024], msg[512];
  snprintf(loc, sizeof(loc), "%s:%zu", b->filename, line);
  snprintf(msg, sizeof(msg), fmt, arg ? arg : "");
  if (manifest_add_error(b->set, loc, msg) < 0) b->oom = 1;
  b->any_error = 1;
}

static void builder_reset_doc(struct builder *b) {
  for (int i = 0; i < b->depth; i++) {
    json_decref(b->stack[i].value);
    free(b->stack[i].key);
    free(b->stack[i].anchor);
  }
  b->depth = 0;
  json_decref(b->root);
  b->root = NULL;
  for (size_t i = 0; i < b->n_anchors; i++) {
    free(b->anchors[i].name);
    json_decref(b->anchors[i].value);
  }
  b->n_anchors = 0;
  b->nodes = 0;
  b->failed = 0;
}

/* Refuses the current document: reports, frees what was built, skips to its end. */
static void builder_fail(struct builder *b, const yaml_mark_t *mark, const char *fmt,
                         const char *arg) {
  builder_error(b, mark->line + 1, fmt, arg);
  builder_reset_doc(b);
  b->failed = 1;
}

static int builder_register_anchor(struct builder *b, const char *name, json_t *v, size_t weight) {
  for (size_t i = 0; i < b->n_anchors; i++) {
    if (strcmp(b->anchors[i].name, name) == 0) { /* YAML allows redefining an anchor */
      json_decref(b->anchors[i].value);
      b->anchors[i].value = json_incref(v);
      b->anchors[i].weight = weight;
      return 0;
    }
  }
  if (b->n_anchors == b->cap_anchors) {
    size_t cap = b->cap_anchors ? b->cap_anchors * 2 : 8;
    struct anchor *a = realloc(b->anchors, cap * sizeof(*a));
    if (!a) return -ENOMEM;
    b->anchors = a;
    b->cap_anchors = cap;
  }
  char *n = strdup(name);
  if (!n) return -ENOMEM;
  b->anchors[b->n_anchors++] = (struct anchor){n, json_incref(v), weight};
  return 0;
}

/* Places a finished value (steals the reference) into the open container or as the root. */
static void builder_place(struct builder *b, json_t *v, const yaml_mark_t *mark) {
  if (b->depth == 0) {
    json_decref(b->root);
    b->root = v;
    return;
  }
  struct frame *f = &b->stack[b->depth - 1];
  if (json_is_array(f->value)) {
    if (json_array_append_new(f->value, v) < 0) builder_fail(b, mark, "out of memory%s", "");
    return;
  }
  /* Mapping value: the key was taken by the scalar handler. */
  if (json_object_setn_new(f->value, f->key, f->key_len, v) < 0)
    builder_fail(b, mark, "mapping key is not valid UTF-8%s", "");
  else {
    free(f->key);
    f->key = NULL;
  }
}

static int is_plain_int(const char *s) {
  if (*s == '-' || *s == '+') s++;
  if (!*s) return 0;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return 0;
  return 1;
}

static int is_plain_float(const char *s) {
  if (*s == '-' || *s == '+') s++;
  int digits = 0;
  while (*s >= '0' && *s <= '9') s++, digits++;
  if (*s == '.') {
    s++;
    while (*s >= '0' && *s <= '9') s++, digits++;
  }
  if (!digits) return 0;
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '-' || *s == '+') s++;
    if (*s < '0' || *s > '9') return 0;
    while (*s >= '0' && *s <= '9') s++;
  }
  return *s == '\0';
}

/* A scalar as YAML 1.2's core schema types it. Returns a new value or NULL (invalid UTF-8). */
static json_t *scalar_value(const yaml_event_t *ev) {
  const char *s = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  const char *tag = (const char *)ev->data.scalar.tag;
  int resolve = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !tag;
  if (tag && strncmp(tag, "tag:yaml.org,2002:", 18) == 0 && strcmp(tag + 18, "str") != 0)
    resolve = 1;
  if (resolve && strlen(s) == len) {
    if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
      return json_null();
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) return json_true();
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) return json_false();
    if (is_plain_int(s)) {
      errno = 0;
      long long v = strtoll(s, NULL, 10);
      if (errno == 0) return json_integer(v);
    }
    if (is_plain_float(s)) return json_real(strtod(s, NULL));
  }
  return json_stringn(s, len);
}

static void on_scalar(struct builder *b, const yaml_event_t *ev) {
  const yaml_mark_t *mark = &ev->start_mark;
  if (++b->nodes > MANIFEST_MAX_NODES) {
    builder_fail(b, mark, "document has too many nodes%s", "");
    return;
  }
  if (b->depth > 0) {
    struct frame *f = &b->stack[b->depth - 1];
    if (json_is_object(f->value) && !f->key) {
      size_t len = ev->data.scalar.length;
      f->key = malloc(len + 1);
      if (!f->key) {
        builder_fail(b, mark, "out of memory%s", "");
        return;
      }
      memcpy(f->key, ev->data.scalar.value, len);
      f->key[len] = '\0';
      f->key_len = len;
      return;
    }
  }
  json_t *v = scalar_value(ev);
  if (!v) {
    builder_fail(b, mark, "scalar is not valid UTF-8%s", "");
    return;
  }
  if (ev->data.scalar.anchor &&
      builder_register_anchor(b, (const char *)ev->data.scalar.anchor, v, 1) < 0) {
    json_decref(v);
    builder_fail(b, mark, "out of memory%s", "");
    return;
  }
  builder_place(b, v, mark);
}

static int expecting_key(const struct builder *b) {
  if (b->depth == 0) return 0;
  const struct frame *f = &b->stack[b->depth - 1];
  return json_is_object(f->value) && !f->key;
}

static void on_open(struct builder *b, const yaml_event_t *ev, int is_map) {
  const yaml_mark_t *mark = &ev->start_mark;
  if (expecting_key(b)) {
    builder_fail(b, mark, "mapping keys must be scalars%s", "");
    return;
  }
  if (b->depth == MANIFEST_MAX_DEPTH) {
    builder_fail(b, mark, "document nested too deeply%s", "");
    return;
  }
  if (++b->nodes > MANIFEST_MAX_NODES) {
    builder_fail(b, mark, "document has too many nodes%s", "");
    return;
  }
  const yaml_char_t *anchor =
      is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
  json_t *v = is_map ? json_object() : json_array();
  char *a = anchor ? strdup((const char *)anchor) : NULL;
  if (!v || (anchor && !a)) {
    json_decref(v);
    free(a);
    builder_fail(b, mark, "out of memory%s", "");
    return;
  }
  b->stack[b->depth++] = (struct frame){v, NULL, 0, a, b->nodes};
}

static void on_close(struct builder *b, const yaml_event_t *ev) {
  struct frame f = b->stack[--b->depth];
  free(f.key); /* a key without a value cannot happen in a well-formed stream */
  if (f.anchor) {
    int rc = builder_register_anchor(b, f.anchor, f.value, b->nodes - f.start_nodes + 1);
    free(f.anchor);
    if (rc < 0) {
      json_decref(f.value);
      builder_fail(b, &ev->start_mark, "out of memory%s", "");
      return;
    }
  }
  builder_place(b, f.value, &ev->start_mark);
}

static void on_alias(struct builder *b, const yaml_event_t *ev) {
  const char *name = (const char *)ev->data.alias.anchor;
  if (expecting_key(b)) {
    builder_fail(b, &ev->start_mark, "aliases cannot be mapping keys (*%s)", name);
    return;
  }
  for (size_t i = 0; i < b->n_anchors; i++) {
    if (strcmp(b->anchors[i].name, name) != 0) continue;
    b->nodes += b->anchors[i].weight;
    if (b->nodes > MANIFEST_MAX_NODES) {
      builder_fail(b, &ev->start_mark, "aliases expand to too many nodes (*%s)", name);
      return;
    }
    builder_place(b, json_incref(b->anchors[i].value), &ev->start_mark);
    return;
  }
  builder_fail(b, &ev->start_mark, "unknown alias *%s", name);
}

/* Adds a finished document's root: objects as they are, Lists flattened. */
static void add_root(struct builder *b) {
  json_t *root = b->root;
  char loc[1024];
  snprintf(loc, sizeof(loc), "%s:%zu", b->filename, b->doc_line);
  if (!root || json_is_null(root)) return; /* an empty document ("---" alone) */
  if (!json_is_object(root)) {
    builder_error(b, b->doc_line, "document is not a mapping (an object)%s", "");
    return;
  }
  const char *kind = json_string_value(json_object_get(root, "kind"));
  json_t *items = json_object_get(root, "items");
  size_t kl = kind ? strlen(kind) : 0;
  if (kl >= 4 && strcmp(kind + kl - 4, "List") == 0 && json_is_array(items)) {
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
      if (!json_is_object(it)) {
        builder_error(b, b->doc_line, "item of a List is not an object%s", "");
        continue;
      }
      if (manifest_add(b->set, it, loc) < 0) b->oom = 1;
    }
    return;
  }
  if (manifest_add(b->set, root, loc) < 0) b->oom = 1;
}

int manifest_parse(struct manifest_set *s, const char *text, size_t len, const char *filename) {
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) return -ENOMEM;
  yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
  struct builder b = {.set = s, .filename = filename ? filename : ""};
  int done = 0;
  while (!done && !b.oom) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&p, &ev)) {
      char msg[512];
      snprintf(msg, sizeof(msg), "%s%s%s", p.problem ? p.problem : "syntax error",
               p.context ? " " : "", p.context ? p.context : "");
      builder_error(&b, p.problem_mark.line + 1, "%s", msg);
      break;
    }
    switch (ev.type) {
      case YAML_STREAM_END_EVENT:
        done = 1;
        break;
      case YAML_DOCUMENT_START_EVENT:
        builder_reset_doc(&b);
        b.doc_line = ev.start_mark.line + 1;
        break;
      case YAML_DOCUMENT_END_EVENT:
        if (!b.failed) add_root(&b);
        builder_reset_doc(&b);
        break;
      case YAML_SCALAR_EVENT:
        if (!b.failed) on_scalar(&b, &ev);
        break;
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT:
        if (!b.failed) on_open(&b, &ev, ev.type == YAML_MAPPING_START_EVENT);
        break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        if (!b.failed) on_close(&b, &ev);
        break;
      case YAML_ALIAS_EVENT:
        if (!b.failed) on_alias(&b, &ev);
        break;
      default:
        break;
    }
    yaml_event_delete(&ev);
  }
  builder_reset_doc(&b);
  free(b.anchors);
  yaml_parser_delete(&p);
  if (b.oom) return -ENOMEM;
  return b.any_error ? -EINVAL : 0;
}
