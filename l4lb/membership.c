/*
 * membership — static --backend parsing, ReplicaSet decoding and the
 * Membership.Watch client. See membership.h.
 */
#include "l4lb/membership.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "common/fileio.h"
#include "common/log.h"
#include "edge/v1/membership.pb-c.h"
#include "l4lb/backend.h"
#include "l4lb/maglev.h"

/* Copies a non-empty string that fits a member field. 0 or -1. */
static int copy_field(char *dst, const char *src) {
  size_t len = strlen(src);
  if (len == 0 || len >= L4_MEMBER_STR) return -1;
  memcpy(dst, src, len + 1);
  return 0;
}

static int valid_addr(const char *s) {
  struct sockaddr_storage ss;
  socklen_t len;
  return addr_parse(s, &ss, &len) == 0;
}

int l4_member_parse_static(const char *spec, struct l4_member *out, char *err, size_t errlen) {
  memset(out, 0, sizeof(*out));
  out->weight = 1;
  char buf[512];
  if (strlen(spec) >= sizeof(buf)) {
    snprintf(err, errlen, "--backend: value too long");
    return -1;
  }
  strcpy(buf, spec);
  char *save = NULL;
  char *tok = strtok_r(buf, ",", &save);
  if (!tok || !valid_addr(tok) || copy_field(out->address, tok) != 0) {
    snprintf(err, errlen,
             "--backend=%s: expected ADDR:PORT[,https=ADDR:PORT][,check=ADDR:PORT][,weight=N]"
             "[,drain]",
             spec);
    return -1;
  }
  strcpy(out->name, out->address);
  while ((tok = strtok_r(NULL, ",", &save))) {
    if (strncmp(tok, "check=", 6) == 0) {
      if (!valid_addr(tok + 6) || copy_field(out->check, tok + 6) != 0) {
        snprintf(err, errlen, "--backend=%s: check= needs a numeric ADDR:PORT", spec);
        return -1;
      }
    } else if (strncmp(tok, "https=", 6) == 0) {
      if (!valid_addr(tok + 6) || copy_field(out->https, tok + 6) != 0) {
        snprintf(err, errlen, "--backend=%s: https= needs a numeric ADDR:PORT", spec);
        return -1;
      }
    } else if (strncmp(tok, "weight=", 7) == 0) {
      char *end;
      errno = 0;
      unsigned long w = strtoul(tok + 7, &end, 10);
      if (errno || end == tok + 7 || *end || w < 1 || w > MAGLEV_MAX_WEIGHT) {
        snprintf(err, errlen, "--backend=%s: weight must be 1..%u", spec, MAGLEV_MAX_WEIGHT);
        return -1;
      }
      out->weight = (uint32_t)w;
    } else if (strcmp(tok, "drain") == 0) {
      out->draining = 1;
    } else {
      snprintf(err, errlen, "--backend=%s: unknown option %s", spec, tok);
      return -1;
    }
  }
  return 0;
}

int l4_member_decode_set(const uint8_t *data, size_t len, struct l4_member **out, size_t *n,
                         uint64_t *version) {
  *out = NULL;
  *n = 0;
  Edge__V1__ReplicaSet *set = edge__v1__replica_set__unpack(NULL, len, data);
  if (!set) return -1;
  struct l4_member *m = calloc(set->n_replicas ? set->n_replicas : 1, sizeof(*m));
  if (!m) {
    edge__v1__replica_set__free_unpacked(set, NULL);
    return -1;
  }
  size_t k = 0;
  for (size_t i = 0; i < set->n_replicas; i++) {
    const Edge__V1__Replica *r = set->replicas[i];
    const char *name = r->node_id && *r->node_id ? r->node_id : r->address;
    struct l4_member *x = &m[k];
    memset(x, 0, sizeof(*x));
    if (!r->address || !valid_addr(r->address) || copy_field(x->address, r->address) != 0) {
      LOG_WARN("replica_skipped", "node=%s address=%s reason=%s", log_q(name ? name : ""),
               log_q(r->address ? r->address : ""), log_q("not a numeric IP:PORT"));
      continue;
    }
    if (copy_field(x->name, name) != 0) {
      LOG_WARN("replica_skipped", "node=%s reason=%s", log_q(name), log_q("name too long"));
      continue;
    }
    if (r->check_address && *r->check_address) {
      if (!valid_addr(r->check_address) || copy_field(x->check, r->check_address) != 0) {
        LOG_WARN("replica_check_ignored", "node=%s check=%s reason=%s", log_q(name),
                 log_q(r->check_address), log_q("not a numeric IP:PORT; TCP check instead"));
        x->check[0] = '\0';
      }
    }
    if (r->https_address && *r->https_address) {
      if (!valid_addr(r->https_address) || copy_field(x->https, r->https_address) != 0) {
        LOG_WARN("replica_https_ignored", "node=%s https=%s reason=%s", log_q(name),
                 log_q(r->https_address), log_q("not a numeric IP:PORT; no HTTPS forwarding"));
        x->https[0] = '\0';
      }
    }
    x->weight = r->weight ? r->weight : 1;
    if (x->weight > MAGLEV_MAX_WEIGHT) x->weight = MAGLEV_MAX_WEIGHT;
    x->draining = r->draining ? 1 : 0;
    int dup = 0;
    for (size_t j = 0; j < k; j++) dup |= strcmp(m[j].name, x->name) == 0;
    if (dup) {
      LOG_WARN("replica_skipped", "node=%s reason=%s", log_q(name), log_q("duplicate node_id"));
      continue;
    }
    k++;
  }
  *version = set->version;
  edge__v1__replica_set__free_unpacked(set, NULL);
  if (k == 0) {
    free(m);
    m = NULL;
  }
  *out = m;
  *n = k;
  return 0;
}

/* ---- the cache ----------------------------------------------------------------- */

#define L4_CACHE_MAX (16u << 20) /* a larger file is not ours */

int l4_member_cache_save(const char *dir, const uint8_t *data, size_t len, char *err,
                         size_t errlen) {
  char path[4096];
  if (snprintf(path, sizeof(path), "%s/%s", dir, L4_CACHE_FILE) >= (int)sizeof(path)) {
    snprintf(err, errlen, "cache path too long");
    return -1;
  }
  return fileio_write_atomic_buf(path, data, len, 0644, err, errlen) == 0 ? 0 : -1;
}

int l4_member_cache_load(const char *dir, struct l4_member **out, size_t *n, uint64_t *version,
                         char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  char path[4096];
  snprintf(path, sizeof(path), "%s/%s", dir, L4_CACHE_FILE);
  char *buf;
  size_t len;
  int rc = fileio_read(path, L4_CACHE_MAX, &buf, &len, err, errlen);
  if (rc == -ENOENT) return 1;
  if (rc < 0) return -1;
  rc = l4_member_decode_set((const uint8_t *)buf, len, out, n, version);
  free(buf);
  if (rc != 0) snprintf(err, errlen, "%s: not a ReplicaSet", path);
  return rc;
}

/* ---- the watch stream ---------------------------------------------------------- */

struct l4_watch {
  struct rpc_stream *stream;
  l4_watch_fn fn;
  void *ud;
  char node_id[128], address[128], build[64];
  char *cache_dir; /* NULL: no cache */
  int synced;
  uint64_t version;
};

static void on_watch_open(void *ud) {
  struct l4_watch *w = ud;
  Edge__V1__WatchRequest req = EDGE__V1__WATCH_REQUEST__INIT;
  req.node_id = w->node_id;
  req.address = w->address;
  req.build = w->build;
  uint8_t buf[512];
  size_t len = edge__v1__watch_request__get_packed_size(&req);
  if (len > sizeof(buf)) return;
  edge__v1__watch_request__pack(&req, buf);
  rpc_stream_send(w->stream, buf, len);
  rpc_stream_close_send(w->stream);
  LOG_INFO("membership_watch_open", "node=%s", log_q(w->node_id));
}

static void on_watch_message(void *ud, const uint8_t *data, size_t len) {
  struct l4_watch *w = ud;
  struct l4_member *m;
  size_t n;
  uint64_t version;
  if (l4_member_decode_set(data, len, &m, &n, &version) != 0) {
    LOG_WARN("membership_bad_message", "bytes=%zu reason=%s", len,
             log_q("not a ReplicaSet; keeping the last set"));
    return;
  }
  w->synced = 1;
  w->version = version;
  LOG_INFO("membership_update", "version=%llu replicas=%zu", (unsigned long long)version, n);
  w->fn(w->ud, m, n, version);
  free(m);
  char err[256];
  if (w->cache_dir && l4_member_cache_save(w->cache_dir, data, len, err, sizeof(err)) != 0)
    LOG_WARN("membership_cache_failed", "reason=%s", log_q(err));
}

static void on_watch_close(void *ud, int status, const char *details, uint32_t backoff_ms) {
  struct l4_watch *w = ud;
  LOG_WARN("membership_watch_closed", "status=%d details=%s retry_ms=%u keeping_version=%llu",
           status, log_q(details ? details : ""), backoff_ms, (unsigned long long)w->version);
}

int l4_watch_start(struct rpc_runtime *rt, const struct l4_watch_opts *opts, l4_watch_fn fn,
                   void *ud, struct l4_watch **out) {
  struct l4_watch *w = calloc(1, sizeof(*w));
  if (!w) return -1;
  w->fn = fn;
  w->ud = ud;
  snprintf(w->node_id, sizeof(w->node_id), "%s", opts->node_id ? opts->node_id : "");
  snprintf(w->address, sizeof(w->address), "%s", opts->address ? opts->address : "");
  snprintf(w->build, sizeof(w->build), "%s", opts->build ? opts->build : "");
  if (opts->cache_dir && !(w->cache_dir = strdup(opts->cache_dir))) {
    free(w);
    return -1;
  }
  struct rpc_stream_opts so = {
      .target = opts->target,
      .method = "/edge.v1.Membership/Watch",
      .creds = opts->creds,
  };
  struct rpc_stream_callbacks cb = {
      .on_open = on_watch_open,
      .on_message = on_watch_message,
      .on_close = on_watch_close,
  };
  int rc = rpc_stream_open(rt, &so, &cb, w, &w->stream);
  if (rc != 0) {
    free(w->cache_dir);
    free(w);
    return rc;
  }
  *out = w;
  return 0;
}

struct watch_stop_ctx {
  struct l4_watch *w;
  void (*done)(void *);
  void *arg;
};

static void on_stream_released(void *arg) {
  struct watch_stop_ctx *ctx = arg;
  free(ctx->w->cache_dir);
  free(ctx->w);
  if (ctx->done) ctx->done(ctx->arg);
  free(ctx);
}

void l4_watch_stop(struct l4_watch *w, void (*done)(void *arg), void *arg) {
  struct watch_stop_ctx *ctx = calloc(1, sizeof(*ctx));
  if (!ctx) return;
  ctx->w = w;
  ctx->done = done;
  ctx->arg = arg;
  rpc_stream_close(w->stream, on_stream_released, ctx);
}

int l4_watch_synced(const struct l4_watch *w) {
  return w->synced;
}
