/*
 * tls_internal — what l7proxy/tls.c (stores, server connections, the
 * handshake callbacks) and l7proxy/tls_client.c (client connections for
 * upstream TLS, what a client presented) share: the connection. Not for
 * use outside l7proxy/tls*.c.
 */
#ifndef EDGE_L7PROXY_TLS_INTERNAL_H
#define EDGE_L7PROXY_TLS_INTERNAL_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sni.h"
#include "l7proxy/tls.h"

#define TLS_NAME_MAX SNI_NAME_MAX

struct tls_conn {
  struct tls_store *store;
  SSL *ssl;
  BIO *rbio; /* ciphertext from the peer, owned by ssl */
  BIO *wbio; /* ciphertext to the peer, owned by ssl */
  uint8_t *out;
  size_t out_off, out_len, out_cap;
  long cert; /* -1 before selection */
  int established;
  int failed;
  int closed;
  int shut;
  int client;                             /* tls_conn_new_client */
  const struct cauth_policy *auth;        /* the client-auth policy applied (a reference) */
  struct tls_client_auth_source auth_src; /* where it is looked up (until selection) */
  struct cauth_peer *peer;                /* what the client presented (lazily) */
  int peer_chain;                         /* peer was made with the chain */
#ifdef OPENSSL_IS_BORINGSSL
  int reject_name; /* selection failed: alert from the servername callback */
#endif
  char sni[TLS_NAME_MAX];
  char reason[256];
};

#endif
