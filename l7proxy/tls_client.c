/*
 * tls_client — the client side of l7proxy/tls.h's connections (upstream
 * TLS: l7proxy/upstream_tls.h makes the contexts) and what a server-side
 * connection's client presented (client certificates, client_auth.h).
 * The same feed / read / write / pending-output calls of tls.c drive a
 * client connection. Threads: a connection belongs to one worker.
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l7proxy/client_auth.h"
#include "l7proxy/tls_internal.h"

int tls_conn_new_client(SSL_CTX *ctx, const char *server_name, struct tls_conn **out) {
  if (!ctx || !out) return TLS_ERR_INVALID;
  *out = NULL;
  struct tls_conn *c = calloc(1, sizeof(*c));
  if (!c) return TLS_ERR_NOMEM;
  c->cert = -1;
  c->client = 1;
  c->ssl = SSL_new(ctx);
  c->rbio = BIO_new(BIO_s_mem());
  c->wbio = BIO_new(BIO_s_mem());
  int ok = c->ssl && c->rbio && c->wbio;
  if (ok) {
    SSL_set_bio(c->ssl, c->rbio, c->wbio); /* ssl owns both now */
    c->rbio = c->wbio = NULL;
  }
  if (ok && server_name && *server_name) {
    unsigned char ip[16];
    int is_ip =
        inet_pton(AF_INET, server_name, ip) == 1 || inet_pton(AF_INET6, server_name, ip) == 1;
    X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
    if (is_ip)
      ok = X509_VERIFY_PARAM_set1_ip_asc(vp, server_name) == 1;
    else
      ok = SSL_set_tlsext_host_name(c->ssl, server_name) == 1 &&
           X509_VERIFY_PARAM_set1_host(vp, server_name, strlen(server_name)) == 1;
    snprintf(c->sni, sizeof(c->sni), "%s", server_name);
  }
  if (!ok) {
    BIO_free(c->rbio);
    BIO_free(c->wbio);
    SSL_free(c->ssl);
    free(c);
    ERR_clear_error();
    return TLS_ERR_NOMEM;
  }
  c->rbio = SSL_get_rbio(c->ssl);
  c->wbio = SSL_get_wbio(c->ssl);
  SSL_set_connect_state(c->ssl);
  *out = c;
  return 0;
}

const struct cauth_policy *tls_conn_client_policy(const struct tls_conn *c) {
  return c ? c->auth : NULL;
}

const struct cauth_peer *tls_conn_client_peer(struct tls_conn *c, int chain) {
  if (!c || !c->established) return NULL;
  if (c->peer && (c->peer_chain || !chain)) return c->peer;
  cauth_peer_free(c->peer);
  c->peer = cauth_peer_new(c->ssl, chain);
  c->peer_chain = chain;
  return c->peer;
}
