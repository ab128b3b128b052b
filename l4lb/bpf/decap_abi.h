/*
 * decap_abi — maps of the replica-side decapsulator (decap.bpf.c) shared
 * with its loader (l4lb/decap_main.c). Addresses in network byte order.
 */
#ifndef EDGE_L4LB_BPF_DECAP_ABI_H
#define EDGE_L4LB_BPF_DECAP_ABI_H

#include <linux/types.h>

#define DECAP_MAX_ALLOWED 64u

/* LPM trie key: prefix length in bits, then the address. */
struct decap_prefix {
  __u32 prefixlen;
  __u32 addr;
};

enum decap_counter {
  DECAP_CTR_DECAPSULATED = 0, /* tunnel packets unwrapped and passed on */
  DECAP_CTR_REFUSED,          /* from a source not allowed, or malformed: dropped */
  DECAP_CTR_MAX
};

#endif
