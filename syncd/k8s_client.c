/*
 * k8s_client — the API server connection and request settings (contract
 * in k8s_client.h). The kubeconfig is read with syncd's own YAML reader
 * (manifest.h), so no second YAML path exists.
 */
#include "syncd/k8s_client.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base64.h"
#include "common/fileio.h"
#include "syncd/manifest.h"

/* ---- the connection ---------------------------------------------------------- */

void k8s_conn_free(struct k8s_conn *c) {
  free(c->server), free(c->ca_file), free(c->cert_file), free(c->key_file), free(c->token_file);
  free(c->ca_blob), free(c->cert_blob), free(c->key_blob), free(c->token);
  memset(c, 0, sizeof(*c));
}

/* Decodes base64 (white space ignored) into a malloc'd NUL-terminated buffer, or NULL. */
static char *b64_decode(const char *in, size_t *outlen) {
  size_t n = strlen(in), cap = base64_decoded_max(n);
  char *out = malloc(cap + 1);
  if (!out) return NULL;
  ssize_t o = base64_decode(in, n, (uint8_t *)out, cap, BASE64_ALLOW_SPACE);
  if (o < 0) {
    free(out);
    return NULL;
  }
  out[o] = '\0';
  *outlen = (size_t)o;
  return out;
}

/* The service-account token (re-read per request: it rotates), without trailing white space. */
static char *read_token(const char *path) {
  char *buf;
  size_t n;
  if (fileio_read(path, 65536, &buf, &n, NULL, 0) != 0) return NULL;
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = 0;
  return buf;
}

/* A kubeconfig path, made absolute relative to the kubeconfig's directory. */
static char *kc_path(const char *kubeconfig, const char *p) {
  if (!p || !*p) return NULL;
  if (p[0] == '/') return strdup(p);
  const char *slash = strrchr(kubeconfig, '/');
  char *out = NULL;
  if (!slash) return strdup(p);
  if (asprintf(&out, "%.*s/%s", (int)(slash - kubeconfig), kubeconfig, p) < 0) return NULL;
  return out;
}

static json_t *named(json_t *list, const char *name, const char *field) {
  size_t i;
  json_t *e;
  json_array_foreach(list, i, e) {
    const char *n = json_string_value(json_object_get(e, "name"));
    if (n && name && !strcmp(n, name)) return json_object_get(e, field);
  }
  return NULL;
}

static int decode_into(const char *b64, char **out, size_t *len) {
  if (!b64) return 0;
  *out = b64_decode(b64, len);
  return *out ? 0 : -1;
}

static int load_kubeconfig(const char *path, struct k8s_conn *c, char *err, size_t errlen) {
  char *text, why[512];
  size_t n;
  int rc = fileio_read(path, 1 << 20, &text, &n, why, sizeof(why));
  if (rc < 0) {
    snprintf(err, errlen, "kubeconfig %s", why);
    return rc == -ENOMEM ? rc : -ENOENT;
  }
  struct manifest_set set;
  manifest_set_init(&set);
  manifest_parse(&set, text, n, path);
  free(text);
  rc = -EINVAL;
  if (set.n_docs != 1) {
    snprintf(err, errlen, "kubeconfig %s: %s", path,
             set.n_errors ? set.errors[0].message : "not one YAML document");
    goto out;
  }
  json_t *kc = set.docs[0].obj;
  const char *ctx_name = json_string_value(json_object_get(kc, "current-context"));
  json_t *ctx = named(json_object_get(kc, "contexts"), ctx_name, "context");
  if (!ctx) {
    snprintf(err, errlen, "kubeconfig %s: current-context \"%s\" not found", path,
             ctx_name ? ctx_name : "");
    goto out;
  }
  json_t *cl = named(json_object_get(kc, "clusters"),
                     json_string_value(json_object_get(ctx, "cluster")), "cluster");
  json_t *user =
      named(json_object_get(kc, "users"), json_string_value(json_object_get(ctx, "user")), "user");
  const char *server = json_string_value(json_object_get(cl, "server"));
  if (!server || !*server) {
    snprintf(err, errlen, "kubeconfig %s: the current context's cluster has no server", path);
    goto out;
  }
  c->server = strdup(server);
  size_t sl = strlen(c->server);
  while (sl > 0 && c->server[sl - 1] == '/') c->server[--sl] = '\0';
  c->insecure = json_is_true(json_object_get(cl, "insecure-skip-tls-verify"));
  c->ca_file = kc_path(path, json_string_value(json_object_get(cl, "certificate-authority")));
  c->cert_file = kc_path(path, json_string_value(json_object_get(user, "client-certificate")));
  c->key_file = kc_path(path, json_string_value(json_object_get(user, "client-key")));
  c->token_file = kc_path(path, json_string_value(json_object_get(user, "tokenFile")));
  const char *token = json_string_value(json_object_get(user, "token"));
  if (token) c->token = strdup(token);
  if (decode_into(json_string_value(json_object_get(cl, "certificate-authority-data")), &c->ca_blob,
                  &c->ca_len) < 0 ||
      decode_into(json_string_value(json_object_get(user, "client-certificate-data")),
                  &c->cert_blob, &c->cert_len) < 0 ||
      decode_into(json_string_value(json_object_get(user, "client-key-data")), &c->key_blob,
                  &c->key_len) < 0) {
    snprintf(err, errlen, "kubeconfig %s: a *-data field is not valid base64", path);
    goto out;
  }
  rc = 0;
out:
  manifest_set_free(&set);
  if (rc < 0) k8s_conn_free(c);
  return rc;
}

static int load_in_cluster(struct k8s_conn *c, char *err, size_t errlen) {
  const char *host = getenv("KUBERNETES_SERVICE_HOST"), *port = getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port) {
    snprintf(err, errlen,
             "not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset); pass --kubeconfig");
    return -ENOENT;
  }
  int v6 = strchr(host, ':') != NULL;
  if (asprintf(&c->server, "https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port) < 0)
    return -ENOMEM;
  c->ca_file = strdup(K8S_SA_DIR "/ca.crt");
  c->token_file = strdup(K8S_SA_DIR "/token");
  if (access(c->token_file, R_OK) < 0) {
    snprintf(err, errlen, "cannot read the service-account token %s: %s", c->token_file,
             strerror(errno));
    k8s_conn_free(c);
    return -ENOENT;
  }
  return 0;
}

int k8s_conn_load(const char *kubeconfig, struct k8s_conn *c, char *err, size_t errlen) {
  memset(c, 0, sizeof(*c));
  return kubeconfig ? load_kubeconfig(kubeconfig, c, err, errlen) : load_in_cluster(c, err, errlen);
}

/* ---- requests ------------------------------------------------------------------ */

int k8s_conn_setup(const struct k8s_conn *c, CURL *h, const char *path, const char *content_type,
                   struct curl_slist **hdr, char **url) {
  *hdr = NULL;
  *url = NULL;
  if (asprintf(url, "%s%s", c->server, path) < 0) {
    *url = NULL;
    return -ENOMEM;
  }
  char *token = c->token_file ? read_token(c->token_file) : NULL;
  const char *tok = token ? token : c->token;
  char auth[8192];
  if (tok && *tok && strlen(tok) < sizeof(auth) - 32) {
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
    *hdr = curl_slist_append(*hdr, auth);
    memset(auth, 0, sizeof(auth));
  }
  if (token) {
    memset(token, 0, strlen(token));
    free(token);
  }
  *hdr = curl_slist_append(*hdr, "Accept: application/json");
  if (content_type) {
    char ct[128];
    snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
    *hdr = curl_slist_append(*hdr, ct);
  }
  curl_easy_setopt(h, CURLOPT_URL, *url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdr);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(h, CURLOPT_USERAGENT, "edge-syncd");
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  if (c->insecure) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (c->ca_file) curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
  if (c->ca_blob) {
    struct curl_blob b = {c->ca_blob, c->ca_len, CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
  }
  if (c->cert_file) curl_easy_setopt(h, CURLOPT_SSLCERT, c->cert_file);
  if (c->key_file) curl_easy_setopt(h, CURLOPT_SSLKEY, c->key_file);
  if (c->cert_blob) {
    struct curl_blob b = {c->cert_blob, c->cert_len, CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &b);
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
  }
  if (c->key_blob) {
    struct curl_blob b = {c->key_blob, c->key_len, CURL_BLOB_COPY};
    curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &b);
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  }
  return *hdr ? 0 : -ENOMEM;
}

struct k8s_sink {
  struct buf *out;
  size_t max;
  const atomic_int *stop;
};

static size_t k8s_on_body(char *data, size_t size, size_t nmemb, void *ud) {
  struct k8s_sink *k = ud;
  size_t n = size * nmemb;
  if (k->out->len + n > k->max) return 0; /* too large: abort */
  return buf_append(k->out, data, n) == 0 ? n : 0;
}

static int k8s_on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d) {
  struct k8s_sink *k = ud;
  return k->stop && atomic_load(k->stop) ? 1 : 0;
}

long k8s_request(const struct k8s_conn *c, const char *method, const char *path,
                 const char *content_type, const char *body, long timeout_ms,
                 const atomic_int *stop, struct buf *out, size_t max, char *err, size_t errlen) {
  CURL *h = curl_easy_init();
  if (!h) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  struct curl_slist *hdr;
  char *url;
  if (k8s_conn_setup(c, h, path, body ? content_type : NULL, &hdr, &url) != 0) {
    curl_slist_free_all(hdr);
    free(url);
    curl_easy_cleanup(h);
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  struct k8s_sink sink = {out, max, stop};
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, k8s_on_body);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, k8s_on_progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &sink);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  if (timeout_ms < 10000) curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  if (strcmp(method, "GET") != 0) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
  if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
  CURLcode rc = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (rc != CURLE_OK) {
    snprintf(err, errlen, "%s %s: %s", method, path, curl_easy_strerror(rc));
    status = -1;
  }
  curl_slist_free_all(hdr);
  curl_easy_cleanup(h);
  free(url);
  return status;
}

void k8s_own_namespace(char *out, size_t outlen) {
  const char *env = getenv("POD_NAMESPACE");
  if (env && *env) {
    snprintf(out, outlen, "%s", env);
    return;
  }
  char *buf;
  size_t n;
  if (fileio_read(K8S_SA_DIR "/namespace", 256, &buf, &n, NULL, 0) == 0) {
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = 0;
    if (n > 0) {
      snprintf(out, outlen, "%s", buf);
      free(buf);
      return;
    }
    free(buf);
  }
  snprintf(out, outlen, "default");
}
