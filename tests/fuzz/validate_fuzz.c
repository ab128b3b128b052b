/*
 * validate_fuzz — tenant values through syncd into what proxies accept.
 *
 * The input is split on NUL bytes into a rewrite-target annotation, a path,
 * a host and a proxy-body-size annotation; they go into one Ingress (JSON
 * built with jansson, so any byte survives) beside a Service, through
 * manifest_parse and translate_desired. Invariants (issue 15):
 *   - every resource syncd would publish passes common/validate's
 *     validate_resource, and a proxy builds a snapshot from all of them
 *     (syncd never publishes what a proxy Nacks);
 *   - no published string holds a CR, LF or other control byte;
 *   - validate_path accepts exactly the RFC 3986 path characters and
 *     well-formed %XX (an independent re-statement of the rule);
 *   - every rejection reason is free of control bytes.
 */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/validate.h"
#include "l7proxy/snapshot.h"
#include "syncd/manifest.h"
#include "syncd/translate.h"

static int path_oracle(const char *s) {
  if (s[0] != '/' || strlen(s) > VALIDATE_MAX_PATH) return 0;
  for (const char *p = s; *p; p++) {
    if (*p == '%') {
      if (!strchr("0123456789abcdefABCDEF", p[1]) || !p[1] ||
          !strchr("0123456789abcdefABCDEF", p[2]) || !p[2])
        return 0;
      p += 2;
      continue;
    }
    if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/",
                *p))
      return 0;
  }
  return 1;
}

static void no_control_bytes(const char *s) {
  for (; s && *s; s++)
    if ((unsigned char)*s < 0x20 || *s == 0x7f) abort();
}

/* Every string field of a resource, recursively, through the descriptor. */
static void check_strings(const ProtobufCMessage *m) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const char *base = (const char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
      for (size_t k = 0; k < n; k++) {
        const void *item =
            (*(void *const *)base == NULL) ? NULL : ((const char *const *)*(void *const *)base)[k];
        if (f->type == PROTOBUF_C_TYPE_STRING) no_control_bytes(item);
        if (f->type == PROTOBUF_C_TYPE_MESSAGE && item) check_strings(item);
      }
    } else if (f->type == PROTOBUF_C_TYPE_STRING) {
      no_control_bytes(*(const char *const *)base);
    } else if (f->type == PROTOBUF_C_TYPE_MESSAGE && *(void *const *)base) {
      check_strings(*(const ProtobufCMessage *const *)base);
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4096) return 0;
  char *in = malloc(size + 1);
  memcpy(in, data, size);
  in[size] = '\0';
  const char *field[4] = {"", "/", "a.example.com", ""};
  size_t nf = 0;
  for (size_t start = 0, i = 0; i <= size && nf < 4; i++) {
    if (i == size || in[i] == '\0') {
      field[nf++] = in + start;
      start = i + 1;
    }
  }
  if (path_oracle(field[0]) != (validate_path(field[0], NULL, 0) == 0)) abort();

  json_t *ann = json_object();
  if (field[0][0]) json_object_set_new(ann, "edge.dev/rewrite-target", json_string(field[0]));
  if (field[3][0]) json_object_set_new(ann, "edge.dev/proxy-body-size", json_string(field[3]));
  json_t *ing = json_pack(
      "{s:s, s:s, s:{s:s, s:s, s:o}, s:{s:[{s:s, s:{s:[{s:s, s:s, s:{s:{s:s, s:{s:i}}}}]}}]}}",
      "apiVersion", "networking.k8s.io/v1", "kind", "Ingress", "metadata", "name", "a", "namespace",
      "default", "annotations", ann, "spec", "rules", "host", field[2], "http", "paths", "path",
      field[1], "pathType", "Prefix", "backend", "service", "name", "svc", "port", "number", 80);
  char *text = ing ? json_dumps(ing, 0) : NULL;
  json_decref(ing);
  free(in);
  if (!text) return 0; /* not valid UTF-8: jansson refuses it, so would the API server */
  static const char svc[] =
      "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"svc\","
      "\"namespace\":\"default\"},\"spec\":{\"clusterIP\":\"10.0.0.1\",\"ports\":[{\"port\":80}]}}";
  struct manifest_set set;
  manifest_set_init(&set);
  manifest_parse(&set, svc, sizeof(svc) - 1, "svc.json");
  manifest_parse(&set, text, strlen(text), "ing.json");
  free(text);
  struct syncd_desired *d = NULL;
  if (translate_desired(&set, NULL, &d) == 0) {
    Edge__V1__Resource **res = calloc(d->n_resources + 1, sizeof(*res));
    for (size_t i = 0; i < d->n_resources; i++) {
      res[i] = edge__v1__resource__unpack(NULL, d->resources[i].len, d->resources[i].bytes);
      if (!res[i]) abort();
      char err[512];
      if (validate_resource(res[i], err, sizeof(err)) != 0) abort();
      check_strings(&res[i]->base);
    }
    struct l7_snapshot *snap = NULL;
    char err[512];
    if (l7_snapshot_build(1, res, d->n_resources, &snap, err, sizeof(err)) != 0) abort();
    l7_snapshot_unref(snap);
    for (size_t i = 0; i < d->n_resources; i++) edge__v1__resource__free_unpacked(res[i], NULL);
    free(res);
    for (size_t i = 0; i < d->n_rejected; i++) no_control_bytes(d->rejected[i].reason);
    syncd_desired_free(d);
  }
  manifest_set_free(&set);
  return 0;
}
