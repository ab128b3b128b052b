/* authz: node identity and role from the certificate's spiffe:// URI. */
#include "syncd/authz.h"

#include <CUnit/CUnit.h>
#include <stdio.h>
#include <string.h>

struct acase {
  const char *uris[3];
  size_t n;
  enum authz_role role;
  const char *node;
  const char *want; /* NULL: allowed; else a piece of the reason */
};

static void identities_bind_role_and_node(void) {
  static const struct acase t[] = {
      {{"spiffe://edge/l7proxy/l7-a"}, 1, AUTHZ_L7PROXY, "l7-a", NULL},
      {{"spiffe://edge/l7proxy/*"}, 1, AUTHZ_L7PROXY, "any-pod-7f9c", NULL},
      {{"spiffe://edge/l4lb/l4-1"}, 1, AUTHZ_L4LB, "l4-1", NULL},
      {{"spiffe://edge/syncctl/ops"}, 1, AUTHZ_SYNCCTL, NULL, NULL},
      /* an l4lb certificate never opens ConfigSync (keys) */
      {{"spiffe://edge/l4lb/l4-1"}, 1, AUTHZ_L7PROXY, "l4-1", "for role l4lb, not l7proxy"},
      /* another proxy's node id: refused, so it cannot evict that proxy */
      {{"spiffe://edge/l7proxy/l7-a"}, 1, AUTHZ_L7PROXY, "l7-b", "for l7proxy l7-a, not l7-b"},
      {{"spiffe://edge/l7proxy/l7-a"}, 1, AUTHZ_L4LB, "l7-a", "for role l7proxy, not l4lb"},
      {{"spiffe://edge/l7proxy/l7-a"}, 1, AUTHZ_SYNCCTL, NULL, "not syncctl"},
      {{NULL}, 0, AUTHZ_L7PROXY, "l7-a", "no spiffe://edge/ identity"},
      {{"https://edge/l7proxy/l7-a"}, 1, AUTHZ_L7PROXY, "l7-a", "no spiffe://edge/ identity"},
      {{"spiffe://other/l7proxy/l7-a"}, 1, AUTHZ_L7PROXY, "l7-a", "trust domain edge"},
      {{"spiffe://edgex/l7proxy/l7-a"}, 1, AUTHZ_L7PROXY, "l7-a", "trust domain edge"},
      {{"spiffe://edge/l7proxy"}, 1, AUTHZ_L7PROXY, "l7-a", "not spiffe://edge/ROLE/NAME"},
      {{"spiffe://edge/l7proxy/"}, 1, AUTHZ_L7PROXY, "l7-a", "not spiffe://edge/ROLE/NAME"},
      {{"spiffe://edge/l7proxy/a/b"}, 1, AUTHZ_L7PROXY, "a", "not spiffe://edge/ROLE/NAME"},
      {{"spiffe://edge/l7proxyX/l7-a"}, 1, AUTHZ_L7PROXY, "l7-a", "for role l7proxyX"},
      {{"spiffe://edge/l7proxy/l7-a", "spiffe://edge/l4lb/l4-1"},
       2,
       AUTHZ_L4LB,
       "l4-1",
       "2 spiffe:// identities"},
      /* other URI SANs are ignored */
      {{"https://example.com/x", "spiffe://edge/l4lb/l4-1"}, 2, AUTHZ_L4LB, "l4-1", NULL},
      {{"spiffe://edge/l4lb/l4-1"}, 1, AUTHZ_L4LB, "", "not "},
  };
  for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
    char why[256] = "";
    int rc = authz_decide(t[i].uris, t[i].n, t[i].role, t[i].node, why, sizeof(why));
    CU_ASSERT_EQUAL(rc, t[i].want ? -1 : 0);
    if (t[i].want) CU_ASSERT_PTR_NOT_NULL(strstr(why, t[i].want));
    if ((rc == 0) != (t[i].want == NULL) || (t[i].want && !strstr(why, t[i].want)))
      fprintf(stderr, "case %zu: rc=%d why=%s\n", i, rc, why);
  }
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("authz", NULL, NULL);
  CU_add_test(s, "identities_bind_role_and_node", identities_bind_role_and_node);
}
