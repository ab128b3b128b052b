/*
 * l4lb-decap — sets up the replica's end of l4lb's packet mode on kernels
 * without an ipip device: attaches the XDP decapsulator
 * (l4lb/bpf/decap.bpf.c, embedded) to the replica's interface and fills its
 * list of allowed tunnel sources (the l4lbs), then exits: the program stays
 * attached (netlink attachment) until --detach.
 *
 *   l4lb-decap --interface=eth0 --allow=10.0.2.0/24 [--allow=...] [--generic]
 *   l4lb-decap --interface=eth0 --stats     # decapsulated=N refused=N
 *   l4lb-decap --interface=eth0 --detach
 *
 * Replaces an xdp_decap program left by an earlier run; refuses to replace
 * any other XDP program. Exit status 0, or 1/2 with a one-line reason.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "common/flags.h"
#include "l4lb/bpf/decap.skel.h"
#include "l4lb/bpf/decap_abi.h"

#define PROG_NAME "xdp_decap"

static int fail(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "l4lb-decap: ");
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  return 1;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap) {
  return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

/* The attached program's id and name (id 0: none). */
static int attached(int ifindex, uint32_t mode, uint32_t *id, char *name, size_t len) {
  name[0] = '\0';
  if (bpf_xdp_query_id(ifindex, (int)mode, id) != 0) return -1;
  if (*id == 0) return 0;
  int fd = bpf_prog_get_fd_by_id(*id);
  if (fd < 0) return -1;
  struct bpf_prog_info info;
  uint32_t ilen = sizeof(info);
  memset(&info, 0, sizeof(info));
  int rc = bpf_obj_get_info_by_fd(fd, &info, &ilen);
  close(fd);
  if (rc == 0) snprintf(name, len, "%s", info.name);
  return rc;
}

static int parse_prefix(const char *s, struct decap_prefix *p) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%s", s);
  char *slash = strchr(buf, '/');
  long len = 32;
  if (slash) {
    *slash = '\0';
    char *end;
    len = strtol(slash + 1, &end, 10);
    if (*end || len < 0 || len > 32) return -1;
  }
  struct in_addr a;
  if (inet_pton(AF_INET, buf, &a) != 1) return -1;
  p->prefixlen = (uint32_t)len;
  p->addr = a.s_addr;
  return 0;
}

/* Prints the counters of the attached program's "counters" map. */
static int print_stats(uint32_t prog_id) {
  int fd = bpf_prog_get_fd_by_id(prog_id);
  if (fd < 0) return -1;
  uint32_t ids[8];
  struct bpf_prog_info info;
  uint32_t ilen = sizeof(info);
  memset(&info, 0, sizeof(info));
  info.nr_map_ids = 8;
  info.map_ids = (uint64_t)(uintptr_t)ids;
  int rc = bpf_obj_get_info_by_fd(fd, &info, &ilen);
  close(fd);
  if (rc != 0) return -1;
  int ncpus = libbpf_num_possible_cpus();
  for (uint32_t i = 0; i < info.nr_map_ids && i < 8; i++) {
    int mfd = bpf_map_get_fd_by_id(ids[i]);
    struct bpf_map_info mi;
    uint32_t mlen = sizeof(mi);
    memset(&mi, 0, sizeof(mi));
    if (mfd < 0 || bpf_obj_get_info_by_fd(mfd, &mi, &mlen) != 0 || strcmp(mi.name, "counters")) {
      if (mfd >= 0) close(mfd);
      continue;
    }
    uint64_t sum[DECAP_CTR_MAX] = {0};
    uint64_t *per = calloc((size_t)ncpus, sizeof(*per));
    for (uint32_t k = 0; per && k < DECAP_CTR_MAX; k++)
      if (bpf_map_lookup_elem(mfd, &k, per) == 0)
        for (int c = 0; c < ncpus; c++) sum[k] += per[c];
    free(per);
    close(mfd);
    printf("decapsulated=%llu refused=%llu\n", (unsigned long long)sum[DECAP_CTR_DECAPSULATED],
           (unsigned long long)sum[DECAP_CTR_REFUSED]);
    return 0;
  }
  return -1;
}

int main(int argc, char **argv) {
  const char *ifname = NULL;
  struct flag_list allow = {{0}, 0};
  int generic = 0, detach = 0, stats = 0;
  const struct flag_def defs[] = {
      {"interface", FLAG_STRING, &ifname, "the replica's interface tunnel packets arrive on", "IF",
       0, 0},
      {"allow", FLAG_LIST, &allow, "tunnel source (an l4lb) to accept, repeatable", "ADDR[/LEN]", 0,
       0},
      {"generic", FLAG_BOOL, &generic, "attach in generic (skb) mode instead of native", NULL, 0,
       0},
      {"detach", FLAG_BOOL, &detach, "remove the decapsulator", NULL, 0, 0},
      {"stats", FLAG_BOOL, &stats, "print its counters", NULL, 0, 0},
  };
  size_t ndefs = sizeof(defs) / sizeof(defs[0]);
  char err[256];
  int rc = flags_parse(defs, ndefs, argc, argv, NULL, 0, NULL, err, sizeof(err));
  if (rc == FLAGS_HELP) {
    flags_usage(stdout, "l4lb-decap", "--interface=IF (--allow=CIDR... | --stats | --detach)",
                "Attaches the XDP decapsulator of l4lb's packet mode to a replica's interface.",
                defs, ndefs);
    return 0;
  }
  if (rc != FLAGS_OK) return fail("%s%s", err, ""), 2;
  if (!ifname) return fail("--interface is required%s%s", "", ""), 2;
  if (!detach && !stats && allow.count == 0)
    return fail("give --allow=CIDR (the l4lbs), --stats or --detach%s%s", "", ""), 2;
  int ifindex = (int)if_nametoindex(ifname);
  if (ifindex == 0) return fail("--interface=%s: %s", ifname, strerror(errno)), 2;
  libbpf_set_print(quiet);
  uint32_t mode = generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
  uint32_t id = 0;
  char name[64];
  if (attached(ifindex, mode, &id, name, sizeof(name)) != 0)
    return fail("%s: cannot query XDP: %s", ifname, strerror(errno));
  if (id && strcmp(name, PROG_NAME) != 0)
    return fail("%s runs another XDP program (%s): not touching it", ifname, name);
  if (stats) {
    if (!id) return fail("%s: no decapsulator attached%s", ifname, "");
    return print_stats(id) == 0 ? 0 : fail("%s: cannot read the counters%s", ifname, "");
  }
  if (detach) {
    if (id && bpf_xdp_detach(ifindex, mode, NULL) != 0)
      return fail("%s: cannot detach: %s", ifname, strerror(errno));
    return 0;
  }
  struct decap_prefix prefixes[FLAG_LIST_MAX];
  for (int i = 0; i < allow.count; i++)
    if (parse_prefix(allow.values[i], &prefixes[i]) != 0)
      return fail("--allow=%s: expected IPv4ADDR[/LEN]%s", allow.values[i], ""), 2;
  struct decap *skel = decap__open_and_load();
  if (!skel) return fail("cannot load the decapsulator: %s%s", strerror(errno), "");
  uint32_t one = 1;
  for (int i = 0; i < allow.count; i++)
    if (bpf_map_update_elem(bpf_map__fd(skel->maps.allowed), &prefixes[i], &one, BPF_ANY) != 0) {
      decap__destroy(skel);
      return fail("cannot fill the allowed sources: %s%s", strerror(errno), "");
    }
  if (bpf_xdp_attach(ifindex, bpf_program__fd(skel->progs.xdp_decap), mode, NULL) != 0) {
    decap__destroy(skel);
    return fail("%s: cannot attach: %s", ifname, strerror(errno));
  }
  decap__destroy(skel); /* the attachment keeps the program and its maps */
  printf("l4lb-decap: %s: decapsulating IPv4-in-IPv4 from %d source prefix(es), %s mode\n", ifname,
         allow.count, generic ? "generic" : "native");
  return 0;
}
