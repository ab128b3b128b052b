/*
 * model — the desired state syncd computes from its sources.
 *
 * A struct syncd_desired is produced by the translator (syncd/translate.h)
 * and handed by a source (syncd/source.h) to the serving side, which diffs
 * states by (type, name) and compares packed bytes to build deltas.
 *
 * Invariants: resources are sorted by (type, name) and (type, name) is
 * unique; every string and array is heap-allocated and owned by the
 * struct syncd_desired that holds it; no field ever holds key material
 * except the packed Certificate bytes (which the serving side never logs).
 */
#ifndef EDGE_SYNCD_MODEL_H
#define EDGE_SYNCD_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "edge/v1/resources.pb-c.h"

/* One resource of the desired state, packed: the serving side diffs by (type, name) and compares
 * bytes. */
struct syncd_resource {
  int type;   /* EDGE__V1__RESOURCE_TYPE__RESOURCE_TYPE_VIRTUAL_HOST, .._CLUSTER, .._CERTIFICATE,
                 .._DEFAULT_BACKEND */
  char *name; /* resource name, unique per type */
  uint8_t *bytes; /* packed Edge__V1__Resource */
  size_t len;
};

/* A resource named for removal. */
struct syncd_resource_key {
  int type;
  char *name;
};

/* An object that was skipped (or partly served) and why. */
struct syncd_rejection {
  char *kind, *ns, *name;
  char *reason;   /* like "default/shop: secret tls-shop missing key tls.key" */
  char *location; /* "path/file.yaml:12" or "" */
};

/* Objects seen per kind ("Ingress", "Service", ...). */
struct syncd_count {
  char *kind;
  unsigned count;
};

/* What translation reports beside the resources (Status and explain show
 * it): rejected objects sorted by (location, reason), ignored Ingresses
 * sorted by (namespace, name), object counts sorted by kind. */
struct syncd_report {
  /* Gateway API statuses: a packed StatusResponse holding only
   * gateway_objects (appended to the packed report: protobuf concatenation
   * merges repeated fields); NULL / 0 when there are none. */
  const uint8_t *gateway_status;
  size_t gateway_status_len;
  struct syncd_rejection *rejected;
  size_t n_rejected;
  struct syncd_rejection *ignored;
  size_t n_ignored;
  struct syncd_count *counts;
  size_t n_counts;
};

struct syncd_desired {
  struct syncd_resource *resources; /* sorted by (type, name) */
  size_t n_resources;
  struct syncd_rejection *rejected;
  size_t n_rejected;
  struct syncd_count *counts; /* objects seen per kind */
  size_t n_counts;
  char **served_ingresses; /* "ns/name" of Ingresses we serve, sorted */
  size_t n_served;
  /* Ingresses not ours (another IngressClass, or no class and no default
   * class of ours), kept so explain can say why a host is not served:
   * kind "Ingress", reason like "IngressClass nginx is not ours
   * (controller k8s.io/ingress-nginx)", location = comma-separated hosts
   * of its rules. Sorted like rejected. */
  struct syncd_rejection *ignored;
  size_t n_ignored;
  /* Gateway API statuses (syncd/gateway.h): a packed edge.v1
   * StatusResponse with only gateway_objects set; NULL when none. */
  uint8_t *gateway_status;
  size_t gateway_status_len;
  /* Every host the Gateway API routes claim, served or lost to an Ingress
   * (syncd/gateway.h; the incremental translator watches them). */
  char **gateway_hosts;
  size_t n_gateway_hosts;
};

/*
 * What changed in one translator update (syncd/translate.h): resources
 * upserted and removed, each sorted by (type, name); with full = 1 the
 * upserted ones are the whole state (drop every other). The report is the
 * whole current report, report_changed telling whether it differs from
 * the last update's. served lists every Ingress served ("ns/name",
 * sorted). Everything is owned by the translator and valid until its next
 * update. generation is the source's (set by the source).
 */
struct syncd_update {
  int full;
  const struct syncd_resource *upserted;
  size_t n_upserted;
  const struct syncd_resource_key *removed;
  size_t n_removed;
  const struct syncd_report *report;
  int report_changed;
  char *const *served;
  size_t n_served;
  int served_changed;
  size_t objects_changed; /* input objects that changed in this update */
  /* The Gateway API statuses (report->gateway_status), and whether they
   * differ from the last update's: what the kubernetes source writes back. */
  const uint8_t *gateway_status;
  size_t gateway_status_len;
  int gateway_status_changed;
  uint64_t generation;
};

/* Frees everything, including d itself. NULL is a no-op. */
void syncd_desired_free(struct syncd_desired *d);

#endif
