/*
 * Fuzz target for syncd's ingestion path: bytes → manifest_parse (YAML or
 * JSON, multi-document) → translate_desired → every packed resource must
 * unpack again, and resources must be sorted by (type, name) with no
 * duplicates. Any crash, leak or broken invariant is a finding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "syncd/manifest.h"
#include "syncd/translate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct manifest_set set;
  manifest_set_init(&set);
  manifest_parse(&set, (const char *)data, size, "fuzz.yaml");
  struct syncd_desired *d = NULL;
  if (translate_desired(&set, NULL, &d) == 0) {
    for (size_t i = 0; i < d->n_resources; i++) {
      const struct syncd_resource *r = &d->resources[i];
      Edge__V1__Resource *u = edge__v1__resource__unpack(NULL, r->len, r->bytes);
      if (!u) abort();
      edge__v1__resource__free_unpacked(u, NULL);
      if (i > 0) {
        const struct syncd_resource *p = &d->resources[i - 1];
        if (p->type > r->type || (p->type == r->type && strcmp(p->name, r->name) >= 0)) abort();
      }
    }
    syncd_desired_free(d);
  }
  manifest_set_free(&set);
  return 0;
}
