/*
 * report — packing the typed report into a StatusResponse (see report.h).
 *
 * The message is assembled from borrowed strings; only the arrays built
 * here (and the split host lists of ignored Ingresses) are freed after.
 */
#include "syncd/report.h"

#include <stdlib.h>
#include <string.h>

#include "edge/v1/status.pb-c.h"

/* Ignored Ingresses (not our IngressClass) for explain: location holds
 * their comma-separated hosts (model.h), which become the hosts field. */
static int pack_ignored(const struct syncd_report *d, Edge__V1__RejectedObject *io,
                        Edge__V1__RejectedObject **iop, char ***hosts, size_t *n_hosts) {
  for (size_t i = 0; i < d->n_ignored; i++) {
    const struct syncd_rejection *j = &d->ignored[i];
    edge__v1__rejected_object__init(&io[i]);
    io[i].kind = j->kind ? j->kind : "";
    io[i].namespace_ = j->ns ? j->ns : "";
    io[i].name = j->name ? j->name : "";
    io[i].reason = j->reason ? j->reason : "";
    io[i].location = "";
    iop[i] = &io[i];
    const char *p = j->location ? j->location : "";
    size_t cnt = 0;
    for (const char *q = p; *q; q++) cnt += *q == ',';
    io[i].hosts = calloc(cnt + 2, sizeof(char *));
    if (!io[i].hosts) return -1;
    while (*p) {
      size_t l = strcspn(p, ",");
      char **nh = realloc(*hosts, (*n_hosts + 1) * sizeof(*nh));
      if (!nh) return -1;
      *hosts = nh;
      if (!(nh[*n_hosts] = strndup(p, l))) return -1;
      io[i].hosts[io[i].n_hosts++] = nh[(*n_hosts)++];
      p += l + (p[l] == ',');
    }
  }
  return 0;
}

int report_pack(const struct syncd_report *d, uint8_t **out, size_t *len) {
  Edge__V1__StatusResponse r = EDGE__V1__STATUS_RESPONSE__INIT;
  Edge__V1__ObjectCount *oc = calloc(d->n_counts + 1, sizeof(*oc));
  Edge__V1__ObjectCount **ocp = calloc(d->n_counts + 1, sizeof(*ocp));
  Edge__V1__RejectedObject *ro = calloc(d->n_rejected + 1, sizeof(*ro));
  Edge__V1__RejectedObject **rop = calloc(d->n_rejected + 1, sizeof(*rop));
  Edge__V1__RejectedObject *io = calloc(d->n_ignored + 1, sizeof(*io));
  Edge__V1__RejectedObject **iop = calloc(d->n_ignored + 1, sizeof(*iop));
  char **hosts = NULL; /* split copies of the ignored objects' host lists */
  size_t n_hosts = 0;
  int rc = -1;
  if (!oc || !ocp || !ro || !rop || !io || !iop) goto out;
  if (pack_ignored(d, io, iop, &hosts, &n_hosts) != 0) goto out;
  r.n_ignored = d->n_ignored;
  r.ignored = iop;
  for (size_t i = 0; i < d->n_counts; i++) {
    edge__v1__object_count__init(&oc[i]);
    oc[i].kind = d->counts[i].kind;
    oc[i].count = d->counts[i].count;
    ocp[i] = &oc[i];
  }
  for (size_t i = 0; i < d->n_rejected; i++) {
    const struct syncd_rejection *j = &d->rejected[i];
    edge__v1__rejected_object__init(&ro[i]);
    ro[i].kind = j->kind ? j->kind : "";
    ro[i].namespace_ = j->ns ? j->ns : "";
    ro[i].name = j->name ? j->name : "";
    ro[i].reason = j->reason ? j->reason : "";
    ro[i].location = j->location ? j->location : "";
    rop[i] = &ro[i];
  }
  r.n_objects = d->n_counts;
  r.objects = ocp;
  r.n_rejected = d->n_rejected;
  r.rejected = rop;
  *len = edge__v1__status_response__get_packed_size(&r);
  /* The Gateway API statuses are a packed StatusResponse of their own: protobuf concatenation
   * merges them (repeated gateway_objects). */
  *out = malloc(*len + d->gateway_status_len + 1);
  if (*out) {
    edge__v1__status_response__pack(&r, *out);
    if (d->gateway_status_len) memcpy(*out + *len, d->gateway_status, d->gateway_status_len);
    *len += d->gateway_status_len;
    rc = 0;
  }
out:
  free(oc);
  free(ocp);
  free(ro);
  free(rop);
  for (size_t i = 0; i < d->n_ignored && io; i++) free(io[i].hosts);
  free(io);
  free(iop);
  for (size_t i = 0; i < n_hosts; i++) free(hosts[i]);
  free(hosts);
  return rc;
}
