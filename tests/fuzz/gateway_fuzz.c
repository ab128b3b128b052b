/*
 * Fuzz target for the Gateway API translator: bytes → manifest_parse →
 * translate_desired (the Ingress rules and the Gateway API unit, see
 * syncd/translate.h). Never crash or leak; resources
 * stay sorted by (type, name) without duplicates and unpack again; the
 * packed statuses unpack; and no header name or value a tenant wrote
 * reaches a Route unless it could be written on the wire (headermod_check).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/headermod.h"
#include "edge/v1/status.pb-c.h"
#include "syncd/gateway.h"
#include "syncd/manifest.h"
#include "syncd/translate.h"

#define CHECK(c)       \
  do {                 \
    if (!(c)) abort(); \
  } while (0)

static void check_mod(const Edge__V1__HeaderModifier *m) {
  for (size_t i = 0; m && i < m->n_set + m->n_add; i++) {
    const Edge__V1__HeaderValue *h = i < m->n_set ? m->set[i] : m->add[i - m->n_set];
    CHECK(headermod_check(h->name, strlen(h->name), h->value, strlen(h->value)) == 0);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct manifest_set set;
  manifest_set_init(&set);
  manifest_parse(&set, (const char *)data, size, "fuzz.yaml");
  struct syncd_desired *d = NULL;
  static const uint32_t http[] = {80, 0}, https[] = {443, 0};
  struct gateway_opts o = {http, https, "192.0.2.1"};
  struct translate_opts to = {.gateway = &o};
  if (translate_desired(&set, &to, &d) == 0) {
    {
      for (size_t i = 0; i < d->n_resources; i++) {
        const struct syncd_resource *r = &d->resources[i];
        Edge__V1__Resource *u = edge__v1__resource__unpack(NULL, r->len, r->bytes);
        CHECK(u);
        if (u->kind_case == EDGE__V1__RESOURCE__KIND_VIRTUAL_HOST)
          for (size_t k = 0; k < u->virtual_host->n_routes; k++) {
            check_mod(u->virtual_host->routes[k]->request_headers);
            check_mod(u->virtual_host->routes[k]->response_headers);
          }
        edge__v1__resource__free_unpacked(u, NULL);
        if (i > 0) {
          const struct syncd_resource *p = &d->resources[i - 1];
          CHECK(p->type < r->type || (p->type == r->type && strcmp(p->name, r->name) < 0));
        }
      }
      if (d->gateway_status_len) {
        Edge__V1__StatusResponse *st =
            edge__v1__status_response__unpack(NULL, d->gateway_status_len, d->gateway_status);
        CHECK(st);
        edge__v1__status_response__free_unpacked(st, NULL);
      }
    }
    syncd_desired_free(d);
  }
  manifest_set_free(&set);
  return 0;
}
