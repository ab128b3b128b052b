/*
 * pb_json — JSON ⇄ protobuf-c through descriptors (see pb_json.h).
 *
 * Decoding writes fields straight into a message initialised by its
 * descriptor's init function, allocating every string, array and
 * sub-message with malloc, which is exactly what
 * protobuf_c_message_free_unpacked(m, NULL) releases. So a decode that
 * fails half-way frees the partial message with that same call and leaks
 * nothing. Only proto3 field kinds used by edge.v1 need to work, but all
 * scalar types are handled.
 */
#include "common/pb_json.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PBJ_MAX_DEPTH 32

static void pbj_err(char *err, size_t errlen, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void pbj_err(char *err, size_t errlen, const char *where, const char *fmt, ...) {
  if (!err || !errlen) return;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (where[0])
    snprintf(err, errlen, "%s: %s", where, msg);
  else
    snprintf(err, errlen, "%s", msg);
}

static size_t pbj_elt_size(ProtobufCType t) {
  switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
      return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return 8;
    case PROTOBUF_C_TYPE_FLOAT:
      return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
      return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
      return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
      return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
      return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
      return sizeof(ProtobufCMessage *);
  }
  return 0;
}

/* An integer from a JSON number or a decimal string. */
static int pbj_int(json_t *v, int is_signed, int64_t *s, uint64_t *u) {
  if (json_is_integer(v)) {
    json_int_t x = json_integer_value(v);
    if (!is_signed && x < 0) return -1;
    *s = x;
    *u = (uint64_t)x;
    return 0;
  }
  if (!json_is_string(v)) return -1;
  const char *str = json_string_value(v);
  char *end;
  errno = 0;
  if (is_signed) {
    *s = strtoll(str, &end, 10);
  } else {
    if (str[0] == '-') return -1;
    *u = strtoull(str, &end, 10);
  }
  return (errno || end == str || *end) ? -1 : 0;
}

static int pbj_decode_msg(const ProtobufCMessageDescriptor *d, json_t *obj, ProtobufCMessage **out,
                          const char *where, int depth, char *err, size_t errlen);

static int pbj_decode_value(const ProtobufCFieldDescriptor *f, json_t *v, void *dst,
                            const char *where, int depth, char *err, size_t errlen) {
  int64_t s = 0;
  uint64_t u = 0;
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      if (pbj_int(v, 1, &s, &u) < 0 || s < INT32_MIN || s > INT32_MAX) goto bad_int;
      *(int32_t *)dst = (int32_t)s;
      return 0;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      if (pbj_int(v, 0, &s, &u) < 0 || u > UINT32_MAX) goto bad_int;
      *(uint32_t *)dst = (uint32_t)u;
      return 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      if (pbj_int(v, 1, &s, &u) < 0) goto bad_int;
      *(int64_t *)dst = s;
      return 0;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      if (pbj_int(v, 0, &s, &u) < 0) goto bad_int;
      *(uint64_t *)dst = u;
      return 0;
    case PROTOBUF_C_TYPE_FLOAT:
    case PROTOBUF_C_TYPE_DOUBLE:
      if (!json_is_number(v)) {
        pbj_err(err, errlen, where, "expected a number");
        return -EINVAL;
      }
      if (f->type == PROTOBUF_C_TYPE_FLOAT)
        *(float *)dst = (float)json_number_value(v);
      else
        *(double *)dst = json_number_value(v);
      return 0;
    case PROTOBUF_C_TYPE_BOOL:
      if (!json_is_boolean(v)) {
        pbj_err(err, errlen, where, "expected true or false");
        return -EINVAL;
      }
      *(protobuf_c_boolean *)dst = json_is_true(v);
      return 0;
    case PROTOBUF_C_TYPE_ENUM: {
      const ProtobufCEnumDescriptor *ed = f->descriptor;
      if (json_is_string(v)) {
        const ProtobufCEnumValue *ev =
            protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
        if (!ev) {
          pbj_err(err, errlen, where, "unknown %s value \"%s\"", ed->short_name,
                  json_string_value(v));
          return -EINVAL;
        }
        *(int32_t *)dst = ev->value;
        return 0;
      }
      if (pbj_int(v, 1, &s, &u) < 0 || s < INT32_MIN || s > INT32_MAX) goto bad_int;
      *(int32_t *)dst = (int32_t)s;
      return 0;
    }
    case PROTOBUF_C_TYPE_STRING: {
      if (!json_is_string(v)) {
        pbj_err(err, errlen, where, "expected a string");
        return -EINVAL;
      }
      char *copy = strndup(json_string_value(v), json_string_length(v));
      if (!copy) return -ENOMEM;
      *(char **)dst = copy;
      return 0;
    }
    case PROTOBUF_C_TYPE_BYTES: {
      if (!json_is_string(v)) {
        pbj_err(err, errlen, where, "expected a string");
        return -EINVAL;
      }
      size_t n = json_string_length(v);
      uint8_t *copy = malloc(n ? n : 1);
      if (!copy) return -ENOMEM;
      memcpy(copy, json_string_value(v), n);
      ProtobufCBinaryData *b = dst;
      b->data = copy;
      b->len = n;
      return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
      return pbj_decode_msg(f->descriptor, v, (ProtobufCMessage **)dst, where, depth + 1, err,
                            errlen);
  }
  pbj_err(err, errlen, where, "unsupported field type");
  return -EINVAL;
bad_int:
  pbj_err(err, errlen, where, "expected an integer in range");
  return -EINVAL;
}

static int pbj_decode_field(const ProtobufCFieldDescriptor *f, ProtobufCMessage *m, json_t *v,
                            const char *where, int depth, char *err, size_t errlen) {
  char *base = (char *)m;
  void *member = base + f->offset;
  if (f->label == PROTOBUF_C_LABEL_REPEATED) {
    if (json_is_null(v)) return 0;
    if (!json_is_array(v)) {
      pbj_err(err, errlen, where, "expected an array");
      return -EINVAL;
    }
    size_t n = json_array_size(v), esz = pbj_elt_size(f->type);
    if (n == 0) return 0;
    void *arr = calloc(n, esz);
    if (!arr) return -ENOMEM;
    *(void **)member = arr;
    size_t *count = (size_t *)(base + f->quantifier_offset);
    for (size_t i = 0; i < n; i++) {
      char w[512];
      snprintf(w, sizeof(w), "%s[%zu]", where, i);
      int rc =
          pbj_decode_value(f, json_array_get(v, i), (char *)arr + i * esz, w, depth, err, errlen);
      /* A sub-message exists (partly filled) even when it failed: count it so
       * free_unpacked releases it. Other failed elements own nothing. */
      if (rc == 0 || (f->type == PROTOBUF_C_TYPE_MESSAGE && ((void **)arr)[i])) *count = i + 1;
      if (rc < 0) return rc;
    }
    return 0;
  }
  if (json_is_null(v)) return 0;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    uint32_t *which = (uint32_t *)(base + f->quantifier_offset);
    if (*which != 0) {
      pbj_err(err, errlen, where, "more than one field of a oneof is set");
      return -EINVAL;
    }
    int rc = pbj_decode_value(f, v, member, where, depth, err, errlen);
    /* Set the case only once the member holds something free_unpacked may release. */
    if (rc == 0 || (f->type == PROTOBUF_C_TYPE_MESSAGE && *(void **)member)) *which = f->id;
    return rc;
  }
  if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset &&
      f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING)
    *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1;
  return pbj_decode_value(f, v, member, where, depth, err, errlen);
}

static int pbj_decode_msg(const ProtobufCMessageDescriptor *d, json_t *obj, ProtobufCMessage **out,
                          const char *where, int depth, char *err, size_t errlen) {
  if (depth > PBJ_MAX_DEPTH) {
    pbj_err(err, errlen, where, "nested too deeply");
    return -EINVAL;
  }
  if (!json_is_object(obj)) {
    pbj_err(err, errlen, where, "expected an object (%s)", d->short_name);
    return -EINVAL;
  }
  ProtobufCMessage *m = calloc(1, d->sizeof_message);
  if (!m) return -ENOMEM;
  d->message_init(m);
  *out = m;
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    char w[512];
    snprintf(w, sizeof(w), "%s%s%s", where, where[0] ? "." : "", key);
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(d, key);
    if (!f) {
      pbj_err(err, errlen, where, "unknown field \"%s\" in %s", key, d->short_name);
      return -EINVAL;
    }
    int rc = pbj_decode_field(f, m, v, w, depth, err, errlen);
    if (rc < 0) return rc;
  }
  return 0;
}

int pb_json_decode(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                   ProtobufCMessage **out, char *err, size_t errlen) {
  *out = NULL;
  json_error_t je;
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    pbj_err(err, errlen, "", "line %d column %d: %s", je.line, je.column, je.text);
    return -EINVAL;
  }
  ProtobufCMessage *m = NULL;
  int rc = pbj_decode_msg(d, root, &m, "", 0, err, errlen);
  json_decref(root);
  if (rc < 0) {
    if (rc == -ENOMEM) pbj_err(err, errlen, "", "out of memory");
    if (m) protobuf_c_message_free_unpacked(m, NULL);
    return rc;
  }
  *out = m;
  return 0;
}

/* ---- encode ----------------------------------------------------------- */

static json_t *pbj_encode_msg(const ProtobufCMessage *m, const char *skip);

static json_t *pbj_encode_value(const ProtobufCFieldDescriptor *f, const void *src,
                                const char *skip) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      return json_integer(*(const int32_t *)src);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return json_integer(*(const uint32_t *)src);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      return json_integer(*(const int64_t *)src);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
      uint64_t u = *(const uint64_t *)src;
      if (u <= INT64_MAX) return json_integer((json_int_t)u);
      char buf[32];
      snprintf(buf, sizeof(buf), "%" PRIu64, u);
      return json_string(buf);
    }
    case PROTOBUF_C_TYPE_FLOAT:
      return json_real(*(const float *)src);
    case PROTOBUF_C_TYPE_DOUBLE:
      return json_real(*(const double *)src);
    case PROTOBUF_C_TYPE_BOOL:
      return json_boolean(*(const protobuf_c_boolean *)src);
    case PROTOBUF_C_TYPE_ENUM: {
      int32_t v = *(const int32_t *)src;
      const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, v);
      return ev ? json_string(ev->name) : json_integer(v);
    }
    case PROTOBUF_C_TYPE_STRING: {
      const char *s = *(char *const *)src;
      return json_string(s ? s : "");
    }
    case PROTOBUF_C_TYPE_BYTES: {
      const ProtobufCBinaryData *b = src;
      return json_stringn(b->len ? (const char *)b->data : "", b->len);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
      const ProtobufCMessage *sub = *(ProtobufCMessage *const *)src;
      return sub ? pbj_encode_msg(sub, skip) : json_null();
    }
  }
  return NULL;
}

/* 1 when a singular proto3 field holds its default value (then it is omitted). */
static int pbj_is_default(const ProtobufCFieldDescriptor *f, const void *src) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_STRING: {
      const char *s = *(char *const *)src;
      return !s || !s[0];
    }
    case PROTOBUF_C_TYPE_BYTES:
      return ((const ProtobufCBinaryData *)src)->len == 0;
    case PROTOBUF_C_TYPE_MESSAGE:
      return *(void *const *)src == NULL;
    default: {
      static const uint8_t zero[8];
      return memcmp(src, zero, pbj_elt_size(f->type)) == 0;
    }
  }
}

/* 1 when name is one of the comma-separated names in skip. */
static int pbj_skipped(const char *skip, const char *name) {
  size_t n = strlen(name);
  for (const char *p = skip; *p;) {
    const char *e = strchr(p, ',');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == n && memcmp(p, name, n) == 0) return 1;
    if (!e) break;
    p = e + 1;
  }
  return 0;
}

static json_t *pbj_encode_msg(const ProtobufCMessage *m, const char *skip) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  const char *base = (const char *)m;
  json_t *obj = json_object();
  if (!obj) return NULL;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const void *member = base + f->offset;
    json_t *v = NULL;
    if (skip && pbj_skipped(skip, f->name)) continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)(base + f->quantifier_offset);
      if (n == 0) continue;
      v = json_array();
      const char *arr = *(char *const *)member;
      size_t esz = pbj_elt_size(f->type);
      for (size_t j = 0; v && j < n; j++) {
        json_t *e = pbj_encode_value(f, arr + j * esz, skip);
        if (!e || json_array_append_new(v, e) < 0) {
          json_decref(v);
          v = NULL;
        }
      }
    } else {
      if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
        if (*(const uint32_t *)(base + f->quantifier_offset) != f->id) continue;
      } else if (pbj_is_default(f, member)) {
        continue;
      }
      v = pbj_encode_value(f, member, skip);
    }
    if (!v || json_object_set_new(obj, f->name, v) < 0) {
      json_decref(obj);
      return NULL;
    }
  }
  return obj;
}

json_t *pb_json_to_json(const ProtobufCMessage *m, const char *skip_field) {
  return pbj_encode_msg(m, skip_field);
}

char *pb_json_encode(const ProtobufCMessage *m) {
  json_t *root = pbj_encode_msg(m, NULL);
  if (!root) return NULL;
  char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  json_decref(root);
  return s;
}
