/*
 * rpc_transport — what the client streams, the server and the unary call
 * share (rpc_internal.h): the per-call send queue, received byte buffers,
 * PEM credentials and the channel arguments every client channel gets.
 */
#include "common/rpc_internal.h"

#include <grpc/support/alloc.h>
#include <grpc/support/log.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"

int rpc_sendq_push(struct rpc_sendq *q, const uint8_t *data, size_t len) {
  struct rpc_msg *m = calloc(1, sizeof(*m));
  if (!m) return RPC_ERR_NOMEM;
  grpc_slice slice = grpc_slice_from_copied_buffer((const char *)data, len);
  m->bb = grpc_raw_byte_buffer_create(&slice, 1);
  grpc_slice_unref(slice);
  if (q->tail)
    q->tail->next = m;
  else
    q->head = m;
  q->tail = m;
  q->len++;
  return 0;
}

grpc_byte_buffer *rpc_sendq_pop(struct rpc_sendq *q) {
  struct rpc_msg *m = q->head;
  if (!m) return NULL;
  q->head = m->next;
  if (!q->head) q->tail = NULL;
  grpc_byte_buffer *bb = m->bb;
  free(m);
  q->inflight = bb;
  return bb;
}

/* The in-flight message completed (or failed). */
void rpc_sendq_done(struct rpc_sendq *q) {
  if (q->inflight) {
    grpc_byte_buffer_destroy(q->inflight);
    q->inflight = NULL;
    q->len--;
  }
}

void rpc_sendq_clear(struct rpc_sendq *q) {
  struct rpc_msg *m = q->head;
  while (m) {
    struct rpc_msg *next = m->next;
    grpc_byte_buffer_destroy(m->bb);
    free(m);
    m = next;
  }
  q->head = q->tail = NULL;
  q->len = q->inflight ? 1 : 0;
}

/* Copies a received message into one slice; the caller unrefs it. */
grpc_slice rpc_read_all(grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader reader;
  if (!grpc_byte_buffer_reader_init(&reader, bb)) return grpc_empty_slice();
  grpc_slice s = grpc_byte_buffer_reader_readall(&reader);
  grpc_byte_buffer_reader_destroy(&reader);
  return s;
}

/* Reads a PEM file (NUL-terminated, malloc'd) or NULL with a reason. */
static char *rpc_read_pem(const char *path, char *err, size_t errlen) {
  char *buf;
  size_t n;
  if (fileio_read(path, RPC_MAX_PEM, &buf, &n, err, errlen) != 0) return NULL;
  if (n == 0) {
    snprintf(err, errlen, "%s: empty", path);
    free(buf);
    return NULL;
  }
  return buf;
}

void rpc_pems_free(struct rpc_pems *p) {
  free(p->cert);
  free(p->key);
  free(p->ca);
  memset(p, 0, sizeof(*p));
}

int rpc_pems_load(const struct rpc_creds *c, struct rpc_pems *p, char *err, size_t errlen) {
  memset(p, 0, sizeof(*p));
  if ((c->cert_file == NULL) != (c->key_file == NULL)) {
    snprintf(err, errlen, "cert and key must be given together");
    return RPC_ERR_CREDS;
  }
  if ((c->cert_file && !(p->cert = rpc_read_pem(c->cert_file, err, errlen))) ||
      (c->key_file && !(p->key = rpc_read_pem(c->key_file, err, errlen))) ||
      (c->ca_file && !(p->ca = rpc_read_pem(c->ca_file, err, errlen)))) {
    rpc_pems_free(p);
    return RPC_ERR_CREDS;
  }
  return 0;
}

int rpc_channel_creds(const struct rpc_creds *c, grpc_channel_credentials **out, char *err,
                      size_t errlen) {
  if (c->insecure) {
    *out = grpc_insecure_credentials_create();
    return 0;
  }
  struct rpc_pems p;
  int rc = rpc_pems_load(c, &p, err, errlen);
  if (rc < 0) return rc;
  grpc_ssl_pem_key_cert_pair pair = {p.key, p.cert};
  *out = grpc_ssl_credentials_create(p.ca, p.cert ? &pair : NULL, NULL, NULL);
  rpc_pems_free(&p);
  if (!*out) {
    snprintf(err, errlen, "invalid TLS credentials");
    return RPC_ERR_CREDS;
  }
  return 0;
}

grpc_arg rpc_int_arg(const char *key, int value) {
  grpc_arg a;
  a.type = GRPC_ARG_INTEGER;
  a.key = (char *)key;
  a.value.integer = value;
  return a;
}

/* Channel for one client attempt (or one unary call). */
grpc_channel *rpc_channel_new(const char *target, grpc_channel_credentials *creds,
                              const char *name_override) {
  grpc_arg args[9];
  size_t n = 0;
  args[n++] = rpc_int_arg(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  /* Each attempt has its own channel, so gRPC's reconnect backoff only
   * matters within one attempt; keep it short. In 1.51 the MIN value is
   * also the connect timeout (TCP + TLS + SETTINGS): 100 ms made TLS
   * handshakes on a loaded machine fail, so it stays at 10 s. */
  args[n++] = rpc_int_arg(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args[n++] = rpc_int_arg(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 10000);
  args[n++] = rpc_int_arg(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args[n++] = rpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, RPC_MAX_MESSAGE);
  args[n++] = rpc_int_arg(GRPC_ARG_ENABLE_RETRIES, 0);
  /* Detects a dead syncd behind a silent network within ~40 s. */
  args[n++] = rpc_int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  args[n++] = rpc_int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  if (name_override && *name_override) {
    grpc_arg a;
    a.type = GRPC_ARG_STRING;
    a.key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    a.value.string = (char *)name_override;
    args[n++] = a;
  }
  grpc_channel_args ca = {n, args};
  return grpc_channel_create(target, creds, &ca);
}

char *rpc_strdup(const char *s) {
  return s ? strdup(s) : NULL;
}
