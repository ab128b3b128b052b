/*
 * k8s_client — how syncd reaches the Kubernetes API server: the
 * connection (a kubeconfig, or the in-cluster service account) and the
 * libcurl settings every request shares (URL, bearer token, TLS), plus
 * one blocking request with a bounded JSON answer.
 *
 * Invariants: the token file is re-read for every request (service-account
 * tokens rotate) and wiped from memory after use; the token never appears
 * in a reason or a log line; only http and https URLs are followed; a
 * response body above the caller's bound aborts the transfer.
 *
 * Callers: syncd/source_k8s (list, watch, status PATCH) and syncd/leader
 * (the Lease), each on its own threads. A loaded k8s_conn is read-only,
 * so any number of threads may use it at once.
 *
 * Ownership: k8s_conn_load fills a caller-owned struct that
 * k8s_conn_free releases. Errors: 0 or a negative errno with a one-line
 * reason in err; requests return the HTTP status, or -1 with a reason
 * when there was none.
 */
#ifndef EDGE_SYNCD_K8S_CLIENT_H
#define EDGE_SYNCD_K8S_CLIENT_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "common/buf.h"

#define K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* How to reach the API server. Blobs are PEM (already base64-decoded). */
struct k8s_conn {
  char *server; /* "https://host:port", no trailing slash */
  char *ca_file, *cert_file, *key_file, *token_file;
  char *ca_blob, *cert_blob, *key_blob;
  size_t ca_len, cert_len, key_len;
  char *token;
  int insecure;
};

/* From the kubeconfig at path (current context), or, with path NULL, from
 * the pod's service account (KUBERNETES_SERVICE_HOST/PORT, token, CA). */
int k8s_conn_load(const char *kubeconfig, struct k8s_conn *c, char *err, size_t errlen);
void k8s_conn_free(struct k8s_conn *c);

/* Libcurl options of one request to c->server + path: URL, headers
 * (bearer token, Accept JSON, content_type when not NULL), TLS, protocols,
 * no signals. *hdr and *url are the caller's to free after the transfer
 * (curl_slist_free_all, free). 0 or -ENOMEM. */
int k8s_conn_setup(const struct k8s_conn *c, CURL *h, const char *path, const char *content_type,
                   struct curl_slist **hdr, char **url);

/* One blocking request: method, path, optional body of content_type, the
 * answer (at most max bytes) appended to *out. The transfer is abandoned
 * after timeout_ms, or as soon as *stop becomes non-zero (stop may be
 * NULL). Returns the HTTP status, or -1 with a reason. */
long k8s_request(const struct k8s_conn *c, const char *method, const char *path,
                 const char *content_type, const char *body, long timeout_ms,
                 const atomic_int *stop, struct buf *out, size_t max, char *err, size_t errlen);

/* The namespace syncd runs in: $POD_NAMESPACE, else the service
 * account's namespace file, else "default". Into out. */
void k8s_own_namespace(char *out, size_t outlen);

#endif
