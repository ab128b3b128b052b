/*
 * tls: SNI certificate selection, ALPN, versions, ticket resumption and
 * key rotation, store swaps, and bad input — no sockets. A real client
 * SSL (the same library: OpenSSL 3, or BoringSSL under --config=boringssl)
 * runs over memory BIOs and is pumped against a tls_conn.
 */
#include "l7proxy/tls.h"

#include <CUnit/CUnit.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cert.h"
#include "common/publish.h"

/* ---- fixtures --------------------------------------------------------- */

/* What the proxy does with snapshots (each carries its store), in small:
 * one published store, swapped while handshakes run. */
static void slot_ref(void *s) {
  tls_store_ref(s);
}
static void slot_unref(void *s) {
  tls_store_unref(s);
}
static struct publish_slot g_published = PUBLISH_SLOT_INIT(slot_ref, slot_unref, NULL);
static struct tls_store *cur_store(void) {
  return publish_slot_acquire(&g_published, NULL);
}
static void publish_store(struct tls_store *s) {
  publish_slot_publish(&g_published, s);
}

struct pem {
  char *cert;
  char *key;
};

static struct pem g_default, g_www, g_wild, g_www_v2;
static SSL_SESSION *g_last_session; /* see on_new_session */

/* Runs in the suite's init: no CUnit assertions here, just -1. */
static int make_pem(const char *const *names, int n, struct pem *p) {
  char err[256];
  p->cert = p->key = NULL;
  return cert_generate(names, n, 30, 0, NULL, NULL, &p->cert, &p->key, err, sizeof(err));
}

static void pem_free(struct pem *p) {
  free(p->cert);
  free(p->key);
  p->cert = p->key = NULL;
}

static struct tls_certificate cert_of(const char *name, const struct pem *p, const char *const *sni,
                                      size_t n_sni, int is_default) {
  struct tls_certificate c = {
      .name = name,
      .sni_names = sni,
      .n_sni_names = n_sni,
      .cert_pem = (const uint8_t *)p->cert,
      .cert_pem_len = strlen(p->cert),
      .key_pem = (const uint8_t *)p->key,
      .key_pem_len = strlen(p->key),
      .is_default = is_default,
  };
  return c;
}

static const char *const g_wild_sni[] = {"*.Example.com"};

/* default (names from its SANs), www.example.com, *.example.com. */
static struct tls_store *store_with(int with_default, const struct tls_options *opts) {
  struct tls_certificate certs[3];
  size_t n = 0;
  if (with_default) certs[n++] = cert_of("ns/default", &g_default, NULL, 0, 1);
  certs[n++] = cert_of("ns/www", &g_www, NULL, 0, 0);
  certs[n++] = cert_of("ns/wild", &g_wild, g_wild_sni, 1, 0);
  struct tls_store *s = NULL;
  char err[256] = "";
  int rc = tls_store_build(certs, n, opts, &s, err, sizeof(err));
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_STRING_EQUAL(err, "");
  return s;
}

static int suite_init(void) {
  const char *d[] = {"default.test"};
  const char *w[] = {"www.example.com"};
  const char *x[] = {"wildcard.example.com"};
  if (make_pem(d, 1, &g_default) || make_pem(w, 1, &g_www) || make_pem(x, 1, &g_wild) ||
      make_pem(w, 1, &g_www_v2))
    return -1;
  return 0;
}

static int suite_cleanup(void) {
  pem_free(&g_default);
  pem_free(&g_www);
  pem_free(&g_wild);
  pem_free(&g_www_v2);
  SSL_SESSION_free(g_last_session);
  g_last_session = NULL;
  publish_store(NULL);
  return 0;
}

/* ---- a client over memory BIOs ---------------------------------------- */

struct client_opts {
  const char *sni;
  const char *alpn; /* wire format, NUL-terminated for convenience */
  int max_version;  /* 0 = library default */
  SSL_SESSION *session;
  const char *ciphers;
  int want_session; /* collect tickets in g_last_session (main thread only) */
  int watch_alerts; /* record alerts received in g_last_alert (main thread only) */
};

struct client {
  SSL_CTX *ctx;
  SSL *ssl;
};

/* The last session a client received. Collected through the new-session
 * callback because BoringSSL's SSL_get1_session is not resumable in TLS
 * 1.3 (tickets arrive after the handshake). */
static int on_new_session(SSL *ssl, SSL_SESSION *sess) {
  (void)ssl;
  SSL_SESSION_free(g_last_session);
  g_last_session = sess;
  return 1; /* we keep the reference */
}

static SSL_SESSION *take_session(void) {
  SSL_SESSION *s = g_last_session;
  g_last_session = NULL;
  return s;
}

static int g_last_alert = -1;

static void on_info(const SSL *ssl, int where, int value) {
  (void)ssl;
  if (where & SSL_CB_READ_ALERT) g_last_alert = value & 0xff;
}

/* No CUnit assertions in the client helpers: the concurrency test runs
 * them on several threads. A failed setup leaves c.ssl NULL, which makes
 * handshake() fail. */
static struct client client_new(const struct client_opts *o) {
  struct client c = {NULL, NULL};
  c.ctx = SSL_CTX_new(TLS_method());
  if (!c.ctx) return c;
  if (o->max_version) SSL_CTX_set_max_proto_version(c.ctx, o->max_version);
  if (o->ciphers && SSL_CTX_set_cipher_list(c.ctx, o->ciphers) != 1) return c;
  if (o->want_session) {
    SSL_CTX_set_session_cache_mode(c.ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c.ctx, on_new_session);
  }
  if (o->watch_alerts) {
    g_last_alert = -1;
    SSL_CTX_set_info_callback(c.ctx, on_info);
  }
  c.ssl = SSL_new(c.ctx);
  if (!c.ssl) return c;
  SSL_set_bio(c.ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  SSL_set_connect_state(c.ssl);
  if (o->sni) SSL_set_tlsext_host_name(c.ssl, o->sni);
  if (o->alpn) SSL_set_alpn_protos(c.ssl, (const uint8_t *)o->alpn, (unsigned)strlen(o->alpn));
  if (o->session) SSL_set_session(c.ssl, o->session);
  return c;
}

static void client_free(struct client *c) {
  /* OpenSSL marks the session of an unclean close not resumable */
  if (c->ssl && SSL_is_init_finished(c->ssl)) SSL_shutdown(c->ssl);
  SSL_free(c->ssl);
  SSL_CTX_free(c->ctx);
  ERR_clear_error();
}

static int to_server(struct client *c, struct tls_conn *s) {
  char buf[16384];
  int n;
  while ((n = BIO_read(SSL_get_wbio(c->ssl), buf, sizeof(buf))) > 0)
    if (tls_conn_feed(s, buf, (size_t)n) != 0) return -1;
  return 0;
}

static void to_client(struct tls_conn *s, struct client *c) {
  for (int i = 0; i < 100; i++) {
    const uint8_t *p;
    size_t len;
    tls_conn_pending_output(s, &p, &len);
    if (len == 0) return;
    /* take it in two pieces to exercise partial consumption */
    size_t half = len / 2;
    BIO_write(SSL_get_rbio(c->ssl), p, (int)half);
    tls_conn_consume_output(s, half);
    tls_conn_pending_output(s, &p, &len);
    BIO_write(SSL_get_rbio(c->ssl), p, (int)len);
    tls_conn_consume_output(s, len);
  }
}

/* Pumps until both sides finish the handshake (0) or one fails (-1). */
static int handshake(struct client *c, struct tls_conn *s) {
  if (!c->ssl) return -1;
  for (int i = 0; i < 20; i++) {
    int cr = SSL_do_handshake(c->ssl);
    int cerr = cr == 1 ? SSL_ERROR_NONE : SSL_get_error(c->ssl, cr);
    if (to_server(c, s) != 0) return -1;
    uint8_t buf[64];
    int sr = tls_conn_read(s, buf, sizeof(buf));
    to_client(s, c);
    if (sr != TLS_WANT_MORE && sr < 0) {
      SSL_do_handshake(c->ssl); /* let the client read the alert */
      return -1;
    }
    if (cerr != SSL_ERROR_NONE && cerr != SSL_ERROR_WANT_READ) return -1;
    if (cr == 1 && tls_conn_handshake_done(s)) return 0;
  }
  return -1;
}

/* Client says "ping", server reads it and says "pong": 0 when both arrive. */
static int exchange(struct client *c, struct tls_conn *s) {
  char buf[64];
  if (!c->ssl || SSL_write(c->ssl, "ping", 4) != 4 || to_server(c, s) != 0) return -1;
  int n = tls_conn_read(s, buf, sizeof(buf));
  if (n != 4 || memcmp(buf, "ping", 4) != 0) return -1;
  if (tls_conn_write(s, "pong", 4) != 4) return -1;
  to_client(s, c);
  n = SSL_read(c->ssl, buf, sizeof(buf));
  if (n != 4 || memcmp(buf, "pong", 4) != 0) return -1;
  return 0;
}

/* 1 when the certificate the client saw is the leaf of pem. */
static int peer_is(struct client *c, const char *pem) {
  X509 *peer = SSL_get_peer_certificate(c->ssl);
  BIO *b = BIO_new_mem_buf(pem, (int)strlen(pem));
  X509 *want = PEM_read_bio_X509(b, NULL, NULL, NULL);
  int same = peer && want && X509_cmp(peer, want) == 0;
  X509_free(peer);
  X509_free(want);
  BIO_free(b);
  return same;
}

/* One handshake + exchange on store; returns the chosen certificate name
 * (static copy) or NULL when the handshake failed. */
static const char *connect_name(struct tls_store *st, const struct client_opts *o,
                                const char *expect_pem) {
  static char name[128];
  struct tls_conn *s = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
  struct client c = client_new(o);
  const char *res = NULL;
  if (handshake(&c, s) == 0) {
    CU_ASSERT_EQUAL(exchange(&c, s), 0);
    if (expect_pem) CU_ASSERT(peer_is(&c, expect_pem));
    snprintf(name, sizeof(name), "%s", tls_conn_certificate_name(s));
    res = name;
  }
  client_free(&c);
  tls_conn_free(s);
  return res;
}

/* ---- SNI selection ---------------------------------------------------- */

static void sni_exact_name_selects_its_certificate(void) {
  struct tls_store *st = store_with(1, NULL);
  struct tls_conn *s = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
  struct client_opts o = {.sni = "WWW.Example.com"};
  struct client c = client_new(&o);
  CU_ASSERT_EQUAL_FATAL(handshake(&c, s), 0);
  CU_ASSERT_STRING_EQUAL(tls_conn_certificate_name(s), "ns/www");
  CU_ASSERT_STRING_EQUAL(tls_conn_sni(s), "www.example.com");
  CU_ASSERT(peer_is(&c, g_www.cert));
  CU_ASSERT_EQUAL(exchange(&c, s), 0);
  client_free(&c);
  tls_conn_free(s);
  tls_store_unref(st);
}

static void sni_under_a_wildcard_selects_the_wildcard_certificate(void) {
  struct tls_store *st = store_with(1, NULL);
  struct client_opts o = {.sni = "api.example.com"};
  const char *name = connect_name(st, &o, g_wild.cert);
  CU_ASSERT_PTR_NOT_NULL_FATAL(name);
  CU_ASSERT_STRING_EQUAL(name, "ns/wild");
  tls_store_unref(st);
}

static void two_labels_under_a_wildcard_get_the_default(void) {
  struct tls_store *st = store_with(1, NULL);
  struct client_opts o = {.sni = "a.b.example.com"};
  const char *name = connect_name(st, &o, g_default.cert);
  CU_ASSERT_PTR_NOT_NULL_FATAL(name);
  CU_ASSERT_STRING_EQUAL(name, "ns/default");
  struct client_opts apex = {.sni = "example.com"};
  name = connect_name(st, &apex, g_default.cert);
  CU_ASSERT_PTR_NOT_NULL_FATAL(name);
  CU_ASSERT_STRING_EQUAL(name, "ns/default");
  tls_store_unref(st);
}

static void no_sni_gets_the_default(void) {
  struct tls_store *st = store_with(1, NULL);
  struct tls_conn *s = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
  struct client_opts o = {0};
  struct client c = client_new(&o);
  CU_ASSERT_EQUAL_FATAL(handshake(&c, s), 0);
  CU_ASSERT_STRING_EQUAL(tls_conn_certificate_name(s), "ns/default");
  CU_ASSERT_STRING_EQUAL(tls_conn_sni(s), "");
  CU_ASSERT(peer_is(&c, g_default.cert));
  client_free(&c);
  tls_conn_free(s);
  tls_store_unref(st);
}

static void no_default_and_no_match_fails_the_handshake(void) {
  struct tls_store *st = store_with(0, NULL);
  struct tls_conn *s = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
  struct client_opts o = {.sni = "other.test", .watch_alerts = 1};
  struct client c = client_new(&o);
  CU_ASSERT_EQUAL(handshake(&c, s), -1);
  CU_ASSERT_EQUAL(g_last_alert, SSL_AD_UNRECOGNIZED_NAME);
  CU_ASSERT_FALSE(tls_conn_handshake_done(s));
  CU_ASSERT_PTR_NOT_NULL(strstr(tls_conn_error(s), "no certificate for server name other.test"));
  uint8_t buf[16];
  CU_ASSERT_EQUAL(tls_conn_read(s, buf, sizeof(buf)), TLS_ERR_PROTOCOL);
  client_free(&c);
  tls_conn_free(s);

  struct client_opts none = {0};
  CU_ASSERT_PTR_NULL(connect_name(st, &none, NULL));
  /* a name the store does have still works */
  struct client_opts www = {.sni = "www.example.com"};
  const char *name = connect_name(st, &www, g_www.cert);
  CU_ASSERT_PTR_NOT_NULL_FATAL(name);
  CU_ASSERT_STRING_EQUAL(name, "ns/www");
  tls_store_unref(st);
}

static void store_select_follows_exact_then_wildcard_then_default(void) {
  struct tls_store *st = store_with(1, NULL);
  CU_ASSERT_EQUAL(tls_store_size(st), 3);
  CU_ASSERT_STRING_EQUAL(tls_store_select(st, "www.example.com."), "ns/www");
  CU_ASSERT_STRING_EQUAL(tls_store_select(st, "x.EXAMPLE.com"), "ns/wild");
  CU_ASSERT_STRING_EQUAL(tls_store_select(st, "wildcard.example.com"), "ns/wild");
  CU_ASSERT_STRING_EQUAL(tls_store_select(st, "x.y.example.com"), "ns/default");
  CU_ASSERT_STRING_EQUAL(tls_store_select(st, NULL), "ns/default");
  CU_ASSERT_STRING_EQUAL(tls_store_select(st, "bad name!"), "ns/default");
  tls_store_unref(st);
  st = store_with(0, NULL);
  CU_ASSERT_PTR_NULL(tls_store_select(st, "default.test"));
  CU_ASSERT_PTR_NULL(tls_store_select(st, NULL));
  tls_store_unref(st);
}

/* A store with only a default certificate has empty exact and wildcard
 * tables: looking a dotted name up must fall back to the default (under
 * UBSan a bsearch over the empty NULL table aborted the worker). */
static void store_with_only_a_default_selects_it_for_any_name(void) {
  struct tls_certificate c = cert_of("ns/default", &g_default, NULL, 0, 1);
  struct tls_store *st = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(tls_store_build(&c, 1, NULL, &st, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(tls_store_select(st, "gamma.example.test"), "ns/default");
  CU_ASSERT_STRING_EQUAL(tls_store_select(st, "a.b.c.d"), "ns/default");
  CU_ASSERT_STRING_EQUAL(tls_store_select(st, NULL), "ns/default");
  tls_store_unref(st);
}

/* ---- ALPN ------------------------------------------------------------- */

static const char *alpn_with(const struct tls_options *opts, const char *offer) {
  static char got[16];
  struct tls_store *st = store_with(1, opts);
  struct tls_conn *s = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
  struct client_opts o = {.sni = "www.example.com", .alpn = offer};
  struct client c = client_new(&o);
  CU_ASSERT_EQUAL(handshake(&c, s), 0);
  snprintf(got, sizeof(got), "%s", tls_conn_alpn(s));
  const uint8_t *p = NULL;
  unsigned len = 0;
  SSL_get0_alpn_selected(c.ssl, &p, &len);
  CU_ASSERT_EQUAL(len, strlen(got)); /* the client agrees */
  client_free(&c);
  tls_conn_free(s);
  tls_store_unref(st);
  return got;
}

static void alpn_prefers_h2_when_the_client_offers_both(void) {
  CU_ASSERT_STRING_EQUAL(alpn_with(NULL, "\x08http/1.1\x02h2"), "h2");
  CU_ASSERT_STRING_EQUAL(alpn_with(NULL, "\x02h2\x08http/1.1"), "h2");
}

static void alpn_gives_http11_to_a_client_offering_only_it(void) {
  CU_ASSERT_STRING_EQUAL(alpn_with(NULL, "\x08http/1.1"), "http/1.1");
  CU_ASSERT_STRING_EQUAL(alpn_with(NULL, "\x08spdy/3.1"), "");
  CU_ASSERT_STRING_EQUAL(alpn_with(NULL, NULL), "");
}

static void alpn_with_h2_disabled_gives_http11(void) {
  struct tls_options o = {.disable_h2 = 1};
  CU_ASSERT_STRING_EQUAL(alpn_with(&o, "\x02h2\x08http/1.1"), "http/1.1");
  CU_ASSERT_STRING_EQUAL(alpn_with(&o, "\x02h2"), "");
}

/* ---- versions and ciphers --------------------------------------------- */

static void tls12_and_tls13_both_negotiate(void) {
  struct tls_store *st = store_with(1, NULL);
  const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
  const char *names[] = {"TLSv1.2", "TLSv1.3"};
  for (int i = 0; i < 2; i++) {
    struct tls_conn *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
    struct client_opts o = {.sni = "www.example.com", .max_version = versions[i]};
    struct client c = client_new(&o);
    CU_ASSERT_EQUAL(handshake(&c, s), 0);
    CU_ASSERT_STRING_EQUAL(tls_conn_version(s), names[i]);
    CU_ASSERT_EQUAL(SSL_version(c.ssl), versions[i]);
    CU_ASSERT_EQUAL(exchange(&c, s), 0);
    client_free(&c);
    tls_conn_free(s);
  }
  tls_store_unref(st);
}

static void min_version_13_rejects_a_tls12_only_client(void) {
  struct tls_options opts = {.min_version = TLS_MIN_1_3};
  struct tls_store *st = store_with(1, &opts);
  struct tls_conn *s = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
  struct client_opts o = {.sni = "www.example.com", .max_version = TLS1_2_VERSION};
  struct client c = client_new(&o);
  CU_ASSERT_EQUAL(handshake(&c, s), -1);
  CU_ASSERT_EQUAL(strncmp(tls_conn_error(s), "tls handshake failed: ", 22), 0);
  client_free(&c);
  tls_conn_free(s);
  struct client_opts ok = {.sni = "www.example.com"};
  CU_ASSERT_PTR_NOT_NULL(connect_name(st, &ok, NULL));
  tls_store_unref(st);
}

static void no_shared_cipher_fails_with_a_reason(void) {
  struct tls_store *st = store_with(1, NULL);
  struct tls_conn *s = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
  /* an RSA-key-exchange CBC suite the modern default does not offer */
  struct client_opts o = {
      .sni = "www.example.com", .max_version = TLS1_2_VERSION, .ciphers = "AES128-SHA"};
  struct client c = client_new(&o);
  CU_ASSERT_EQUAL(handshake(&c, s), -1);
  CU_ASSERT_STRING_EQUAL(tls_conn_error(s), "tls handshake failed: no shared cipher");
  client_free(&c);
  tls_conn_free(s);
  tls_store_unref(st);
}

static const char *cipher_of(struct client *c) {
  const SSL_CIPHER *ci = SSL_get_current_cipher(c->ssl);
  return ci ? SSL_CIPHER_get_name(ci) : "";
}

static void cipher_options_pick_the_negotiated_suites(void) {
  struct tls_options opts = {.ciphers_tls12 = "ECDHE-ECDSA-CHACHA20-POLY1305",
                             .ciphersuites_tls13 = "TLS_CHACHA20_POLY1305_SHA256"};
  struct tls_store *st = store_with(1, &opts);
  const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
  for (int v = 0; v < 2; v++) {
    struct tls_conn *s = NULL;
    CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
    struct client_opts o = {.sni = "www.example.com", .max_version = versions[v]};
    struct client c = client_new(&o);
    CU_ASSERT_EQUAL(handshake(&c, s), 0);
    if (versions[v] == TLS1_2_VERSION)
      CU_ASSERT_STRING_EQUAL(cipher_of(&c), "ECDHE-ECDSA-CHACHA20-POLY1305");
#ifndef OPENSSL_IS_BORINGSSL /* BoringSSL has no TLS 1.3 suite setting */
    if (versions[v] == TLS1_3_VERSION)
      CU_ASSERT_STRING_EQUAL(cipher_of(&c), "TLS_CHACHA20_POLY1305_SHA256");
#endif
    client_free(&c);
    tls_conn_free(s);
  }
  tls_store_unref(st);
}

static void parses_min_version_names(void) {
  enum tls_min_version v;
  CU_ASSERT_EQUAL(tls_parse_min_version("1.2", &v), 0);
  CU_ASSERT_EQUAL(v, TLS_MIN_1_2);
  CU_ASSERT_EQUAL(tls_parse_min_version("TLSv1.3", &v), 0);
  CU_ASSERT_EQUAL(v, TLS_MIN_1_3);
  CU_ASSERT_EQUAL(tls_parse_min_version("1.1", &v), TLS_ERR_INVALID);
  CU_ASSERT_EQUAL(tls_parse_min_version("", &v), TLS_ERR_INVALID);
}

/* ---- tickets ---------------------------------------------------------- */

/* Full handshake on st; returns the client's session (caller frees). */
static SSL_SESSION *first_session(struct tls_store *st, int max_version) {
  struct tls_conn *s = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
  struct client_opts o = {.sni = "www.example.com", .max_version = max_version, .want_session = 1};
  struct client c = client_new(&o);
  CU_ASSERT_EQUAL(handshake(&c, s), 0);
  CU_ASSERT_EQUAL(exchange(&c, s), 0); /* TLS 1.3 tickets arrive after the handshake */
  CU_ASSERT_FALSE(tls_conn_resumed(s));
  client_free(&c);
  tls_conn_free(s);
  return take_session();
}

/* 1 when a handshake offering sess resumed it (both sides agree). */
static int resumes(struct tls_store *st, SSL_SESSION *sess, int max_version) {
  struct tls_conn *s = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
  struct client_opts o = {
      .sni = "www.example.com", .max_version = max_version, .session = sess, .want_session = 1};
  struct client c = client_new(&o);
  int resumed = -1;
  if (handshake(&c, s) == 0 && exchange(&c, s) == 0) {
    resumed = tls_conn_resumed(s);
    CU_ASSERT_EQUAL(resumed, SSL_session_reused(c.ssl));
    CU_ASSERT_STRING_EQUAL(tls_conn_certificate_name(s), "ns/www");
  }
  client_free(&c);
  tls_conn_free(s);
  SSL_SESSION_free(take_session()); /* a renewed ticket, unused */
  return resumed;
}

/* Resumes (1) or not (0) a ticket issued before `rotations` key rotations.
 * Each attempt uses a fresh ticket: OpenSSL clients use a TLS 1.3 ticket
 * once. */
static int resumes_after(struct tls_store *st, int max_version, int rotations) {
  SSL_SESSION *sess = first_session(st, max_version);
  CU_ASSERT_PTR_NOT_NULL(sess);
  if (!sess) return -1;
  for (int i = 0; i < rotations; i++) CU_ASSERT_EQUAL(tls_ticket_keys_rotate(), 0);
  int r = resumes(st, sess, max_version);
  SSL_SESSION_free(sess);
  return r;
}

static void tickets_resume_across_rotations_until_the_key_falls_off_the_ring(void) {
  struct tls_store *st = store_with(1, NULL);
  const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
  for (int v = 0; v < 2; v++) {
    CU_ASSERT_EQUAL(resumes_after(st, versions[v], 0), 1);
    CU_ASSERT_EQUAL(resumes_after(st, versions[v], 1), 1); /* previous key still decrypts */
    CU_ASSERT_EQUAL(resumes_after(st, versions[v], TLS_TICKET_KEY_RING - 1), 1); /* oldest */
    CU_ASSERT_EQUAL(resumes_after(st, versions[v], TLS_TICKET_KEY_RING), 0);     /* fell off */
  }
  tls_store_unref(st);
}

static void tickets_survive_a_store_swap(void) {
  struct tls_store *a = store_with(1, NULL);
  SSL_SESSION *sess = first_session(a, 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(sess);
  struct tls_store *b = store_with(1, NULL);
  CU_ASSERT_EQUAL(resumes(b, sess, 0), 1);
  SSL_SESSION_free(sess);
  tls_store_unref(a);
  tls_store_unref(b);
}

static void disabled_resumption_never_resumes(void) {
  struct tls_options opts = {.disable_resumption = 1};
  struct tls_store *st = store_with(1, &opts);
  const int versions[] = {TLS1_2_VERSION, TLS1_3_VERSION};
  for (int v = 0; v < 2; v++) {
    SSL_SESSION *sess = first_session(st, versions[v]);
    if (versions[v] == TLS1_3_VERSION) CU_ASSERT_PTR_NULL(sess); /* no ticket sent */
    if (sess) CU_ASSERT_EQUAL(resumes(st, sess, versions[v]), 0);
    SSL_SESSION_free(sess);
  }
  tls_store_unref(st);
}

/* ---- rotation of certificates ----------------------------------------- */

static void a_new_store_serves_new_handshakes_while_old_connections_keep_working(void) {
  struct tls_store *st = store_with(1, NULL);
  publish_store(st); /* the published store owns that reference */

  struct tls_store *cur = cur_store();
  CU_ASSERT_PTR_EQUAL_FATAL(cur, st);
  struct tls_conn *old = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(cur, &old), 0);
  tls_store_unref(cur);
  struct client_opts o = {.sni = "www.example.com"};
  struct client oc = client_new(&o);
  CU_ASSERT_EQUAL_FATAL(handshake(&oc, old), 0);
  CU_ASSERT(peer_is(&oc, g_www.cert));

  /* push: www gets a new certificate; the old store is dropped */
  struct tls_certificate certs[] = {cert_of("ns/www-v2", &g_www_v2, NULL, 0, 1)};
  struct tls_store *next = NULL;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(tls_store_build(certs, 1, NULL, &next, err, sizeof(err)), 0);
  publish_store(next);

  cur = cur_store();
  CU_ASSERT_PTR_EQUAL(cur, next);
  const char *name = connect_name(cur, &o, g_www_v2.cert);
  CU_ASSERT_PTR_NOT_NULL(name);
  if (name) CU_ASSERT_STRING_EQUAL(name, "ns/www-v2");
  tls_store_unref(cur);

  /* the connection made on the old store still reads and writes */
  for (int i = 0; i < 3; i++) CU_ASSERT_EQUAL(exchange(&oc, old), 0);
  CU_ASSERT_STRING_EQUAL(tls_conn_certificate_name(old), "ns/www");
  client_free(&oc);
  tls_conn_free(old);
  publish_store(NULL);
  CU_ASSERT_PTR_NULL(cur_store());
}

static void an_incremental_build_reuses_unchanged_certificates_and_applies_changes(void) {
  struct tls_store *a = store_with(1, NULL);
  /* www changes, default and wild stay */
  struct tls_certificate certs[] = {cert_of("ns/default", &g_default, NULL, 0, 1),
                                    cert_of("ns/www", &g_www_v2, NULL, 0, 0),
                                    cert_of("ns/wild", &g_wild, g_wild_sni, 1, 0)};
  struct tls_store *b = NULL;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(tls_store_build_from(a, certs, 3, NULL, &b, err, sizeof(err)), 0);
  tls_store_unref(a); /* b must not depend on a staying alive */
  struct client_opts www = {.sni = "www.example.com"};
  CU_ASSERT_PTR_NOT_NULL(connect_name(b, &www, g_www_v2.cert));
  struct client_opts api = {.sni = "api.example.com"};
  CU_ASSERT_PTR_NOT_NULL(connect_name(b, &api, g_wild.cert));
  struct client_opts none = {0};
  CU_ASSERT_PTR_NOT_NULL(connect_name(b, &none, g_default.cert));

  /* changed options are not masked by reuse */
  struct tls_options strict = {.min_version = TLS_MIN_1_3};
  struct tls_store *c = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_store_build_from(b, certs, 3, &strict, &c, err, sizeof(err)), 0);
  struct client_opts old = {.sni = "www.example.com", .max_version = TLS1_2_VERSION};
  CU_ASSERT_PTR_NULL(connect_name(c, &old, NULL));
  CU_ASSERT_PTR_NOT_NULL(connect_name(b, &old, g_www_v2.cert));

  /* a bad certificate costs only its own names (they get the default),
   * the rest of an incremental build goes through, prev stays intact */
  struct pem mixed = {g_www.cert, g_wild.key};
  certs[1] = cert_of("ns/www", &mixed, NULL, 0, 0);
  struct tls_store *d = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_store_build_from(b, certs, 3, NULL, &d, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(tls_store_n_problems(d), 1);
  const char *bad = NULL;
  CU_ASSERT_PTR_NOT_NULL(strstr(tls_store_problem(d, 0, &bad), "does not match"));
  CU_ASSERT_STRING_EQUAL(bad, "ns/www");
  /* its names get the default certificate */
  CU_ASSERT_PTR_NOT_NULL(connect_name(d, &www, g_default.cert));
  CU_ASSERT_PTR_NOT_NULL(connect_name(d, &api, g_wild.cert));
  CU_ASSERT_PTR_NOT_NULL(connect_name(b, &www, g_www_v2.cert));
  /* the same bad bytes again: the same reason, from the digest */
  struct tls_store *e = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_store_build_from(d, certs, 3, NULL, &e, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(tls_store_n_problems(e), 1);
  CU_ASSERT_STRING_EQUAL(tls_store_problem(e, 0, NULL), tls_store_problem(d, 0, NULL));
  tls_store_unref(b);
  tls_store_unref(c);
  tls_store_unref(d);
  tls_store_unref(e);
}

/* Handshakes on two threads while the main thread publishes new stores
 * and rotates ticket keys: every handshake completes on the store it
 * started with. */
struct hs_worker {
  pthread_t tid;
  int ok;
  int failed;
};

#define HS_ROUNDS 25

static void *hs_worker_main(void *arg) {
  struct hs_worker *w = arg;
  for (int i = 0; i < HS_ROUNDS; i++) {
    struct tls_store *st = cur_store();
    struct tls_conn *s = NULL;
    int rc = st ? tls_conn_new(st, &s) : -1;
    tls_store_unref(st);
    if (rc != 0) {
      w->failed++;
      continue;
    }
    struct client_opts o = {.sni = "www.example.com"};
    struct client c = client_new(&o);
    if (handshake(&c, s) == 0 && exchange(&c, s) == 0 &&
        strncmp(tls_conn_certificate_name(s), "ns/www", 6) == 0)
      w->ok++;
    else
      w->failed++;
    client_free(&c);
    tls_conn_free(s);
  }
  return NULL;
}

static void handshakes_survive_concurrent_publishes_and_key_rotations(void) {
  struct tls_options lazy = {.lazy = 1}; /* first handshakes of a store race to decode */
  publish_store(store_with(1, &lazy));
  struct hs_worker w[2] = {{0}};
  for (int i = 0; i < 2; i++)
    CU_ASSERT_EQUAL_FATAL(pthread_create(&w[i].tid, NULL, hs_worker_main, &w[i]), 0);
  for (int i = 0; i < HS_ROUNDS; i++) {
    struct tls_certificate certs[] = {i % 2 ? cert_of("ns/www-v2", &g_www_v2, NULL, 0, 1)
                                            : cert_of("ns/www", &g_www, NULL, 0, 1)};
    struct tls_store *next = NULL;
    char err[256];
    CU_ASSERT_EQUAL(tls_store_build(certs, 1, &lazy, &next, err, sizeof(err)), 0);
    publish_store(next);
    if (i % 5 == 0) CU_ASSERT_EQUAL(tls_ticket_keys_rotate(), 0);
  }
  for (int i = 0; i < 2; i++) {
    pthread_join(w[i].tid, NULL);
    CU_ASSERT_EQUAL(w[i].failed, 0);
    CU_ASSERT_EQUAL(w[i].ok, HS_ROUNDS);
  }
  publish_store(NULL);
}

/* ---- lazy stores --------------------------------------------------------- */

static atomic_int g_pins[4]; /* references the stores hold on each pin */
static char g_pin_owner[4];  /* stand-ins for the owners (snapshot resources) */
static void pin_ref(void *p) {
  atomic_fetch_add(&g_pins[(char *)p - g_pin_owner], 1);
}
static void pin_unref(void *p) {
  atomic_fetch_sub(&g_pins[(char *)p - g_pin_owner], 1);
}
#define PIN(i) ((void *)&g_pin_owner[i])

static void a_lazy_store_decodes_a_certificate_on_its_first_handshake_only(void) {
  struct tls_options lazy = {.lazy = 1};
  struct tls_store *st = store_with(1, &lazy);
  CU_ASSERT_EQUAL(tls_store_size(st), 3);
  CU_ASSERT_EQUAL(tls_store_loaded(st), 0); /* building decoded nothing */
  struct client_opts www = {.sni = "www.example.com"};
  CU_ASSERT_STRING_EQUAL(connect_name(st, &www, g_www.cert), "ns/www");
  CU_ASSERT_EQUAL(tls_store_loaded(st), 1);
  CU_ASSERT_STRING_EQUAL(connect_name(st, &www, g_www.cert), "ns/www");
  CU_ASSERT_EQUAL(tls_store_loaded(st), 1);
  struct client_opts none = {0};
  CU_ASSERT_STRING_EQUAL(connect_name(st, &none, g_default.cert), "ns/default");
  CU_ASSERT_EQUAL(tls_store_loaded(st), 2);
  tls_store_unref(st);
}

/* A lazy store finds a bad certificate on its first handshake: that
 * handshake and the later ones for its names get the default certificate
 * (issue 15: one tenant's Secret costs only its own names), the reason is
 * reported per certificate, and the bad one is decoded once. */
static void a_lazy_store_serves_the_default_for_a_bad_certificate_and_reports_it(void) {
  struct pem mixed = {g_www.cert, g_wild.key};
  struct tls_certificate certs[] = {cert_of("ns/default", &g_default, NULL, 0, 1),
                                    cert_of("ns/bad", &mixed, NULL, 0, 0)};
  struct tls_options lazy = {.lazy = 1};
  struct tls_store *st = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(tls_store_build(certs, 2, &lazy, &st, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(tls_store_n_problems(st), 0); /* not decoded yet */
  unsigned long long decoded = tls_certificates_decoded();
  for (int round = 0; round < 3; round++) { /* then from the remembered reason: no decode */
    struct client_opts www = {.sni = "www.example.com"};
    CU_ASSERT_STRING_EQUAL(connect_name(st, &www, g_default.cert), "ns/default");
  }
  CU_ASSERT_EQUAL(tls_certificates_decoded(), decoded + 2); /* the bad one and the default */
  CU_ASSERT_EQUAL(tls_store_n_problems(st), 1);
  const char *name = NULL, *why = tls_store_problem(st, 0, &name);
  CU_ASSERT_STRING_EQUAL(name, "ns/bad");
  CU_ASSERT_PTR_NOT_NULL(strstr(why, "certificate ns/bad"));
  CU_ASSERT_PTR_NOT_NULL(strstr(why, "does not match"));
  CU_ASSERT_PTR_NULL(strstr(why, "PRIVATE"));
  struct client_opts none = {0};
  CU_ASSERT_STRING_EQUAL(connect_name(st, &none, g_default.cert), "ns/default");
  CU_ASSERT_EQUAL(tls_store_loaded(st), 1);
  tls_store_unref(st);
}

/* A pinned certificate is shared with the next store by its pin: no copy,
 * no digest, and a certificate decoded in one store is decoded in the next. */
static void pinned_certificates_are_shared_by_pin_without_copies(void) {
  struct tls_options o = {.lazy = 1, .pin_ref = pin_ref, .pin_unref = pin_unref};
  struct tls_certificate certs[] = {cert_of("ns/default", &g_default, NULL, 0, 1),
                                    cert_of("ns/www", &g_www, NULL, 0, 0),
                                    cert_of("ns/wild", &g_wild, g_wild_sni, 1, 0)};
  for (int i = 0; i < 3; i++) certs[i].pin = PIN(i + 1);
  struct tls_store *a = NULL, *b = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(tls_store_build(certs, 3, &o, &a, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(atomic_load(&g_pins[1]) + atomic_load(&g_pins[2]) + atomic_load(&g_pins[3]), 3);
  struct client_opts www = {.sni = "www.example.com"}, api = {.sni = "api.example.com"};
  CU_ASSERT_STRING_EQUAL(connect_name(a, &www, g_www.cert), "ns/www");
  CU_ASSERT_STRING_EQUAL(connect_name(a, &api, g_wild.cert), "ns/wild");
  CU_ASSERT_EQUAL(tls_store_loaded(a), 2);
  /* next generation: wild changes (a new pin), default and www stay */
  certs[2] = cert_of("ns/wild", &g_www_v2, g_wild_sni, 1, 0);
  certs[2].pin = PIN(0);
  CU_ASSERT_EQUAL_FATAL(tls_store_build_from(a, certs, 3, &o, &b, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(tls_store_loaded(b), 1);     /* www came decoded; wild did not */
  CU_ASSERT_EQUAL(atomic_load(&g_pins[2]), 1); /* www: one entry for both stores */
  CU_ASSERT_STRING_EQUAL(connect_name(b, &api, g_www_v2.cert), "ns/wild");
  CU_ASSERT_STRING_EQUAL(connect_name(a, &api, g_wild.cert), "ns/wild"); /* a keeps its own */
  tls_store_unref(a);
  CU_ASSERT_EQUAL(atomic_load(&g_pins[3]), 0);
  CU_ASSERT_STRING_EQUAL(connect_name(b, &www, g_www.cert), "ns/www");
  tls_store_unref(b);
  for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(atomic_load(&g_pins[i]), 0);
}

/* A rotation (same names at the same positions) keeps the name table; a
 * certificate that changes its names gets a new one. */
static void a_rotation_keeps_the_names_and_a_rename_rebuilds_them(void) {
  struct tls_options o = {.lazy = 1, .pin_ref = pin_ref, .pin_unref = pin_unref};
  static const char *const www_sni[] = {"www.example.com"}, *const api_sni[] = {"api.example.com"};
  struct tls_certificate certs[] = {cert_of("ns/default", &g_default, NULL, 0, 1),
                                    cert_of("ns/www", &g_www, www_sni, 1, 0),
                                    cert_of("ns/wild", &g_wild, g_wild_sni, 1, 0)};
  for (int i = 0; i < 3; i++) certs[i].pin = PIN(i + 1);
  struct tls_store *a = NULL, *b = NULL, *c = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(tls_store_build(certs, 3, &o, &a, err, sizeof(err)), 0);
  certs[1] = cert_of("ns/www", &g_www_v2, www_sni, 1, 0); /* rotated */
  certs[1].pin = PIN(0);
  CU_ASSERT_EQUAL_FATAL(tls_store_build_from(a, certs, 3, &o, &b, err, sizeof(err)), 0);
  struct client_opts www = {.sni = "www.example.com"}, api = {.sni = "api.example.com"};
  CU_ASSERT_STRING_EQUAL(connect_name(b, &www, g_www_v2.cert), "ns/www");
  CU_ASSERT_STRING_EQUAL(connect_name(a, &www, g_www.cert), "ns/www");
  CU_ASSERT_STRING_EQUAL(tls_store_select(b, "api.example.com"), "ns/wild");
  tls_store_unref(a);
  certs[1] = cert_of("ns/www", &g_www, api_sni, 1, 0); /* renamed: another server name */
  certs[1].pin = PIN(2);
  CU_ASSERT_EQUAL_FATAL(tls_store_build_from(b, certs, 3, &o, &c, err, sizeof(err)), 0);
  CU_ASSERT_STRING_EQUAL(tls_store_select(c, "www.example.com"), "ns/wild");
  CU_ASSERT_STRING_EQUAL(tls_store_select(c, "api.example.com"), "ns/www");
  CU_ASSERT_STRING_EQUAL(connect_name(c, &api, g_www.cert), "ns/www");
  CU_ASSERT_STRING_EQUAL(tls_store_select(b, "www.example.com"), "ns/www"); /* b kept its own */
  tls_store_unref(b);
  tls_store_unref(c);
  for (int i = 0; i < 4; i++) CU_ASSERT_EQUAL(atomic_load(&g_pins[i]), 0);
}

/* ---- bad configuration ------------------------------------------------ */

static void a_key_that_does_not_match_costs_only_its_own_hosts(void) {
  struct pem mixed = {g_www.cert, g_wild.key};
  const char *other_sni[] = {"other.test"};
  struct tls_certificate certs[] = {cert_of("ns/good", &g_default, NULL, 0, 1),
                                    cert_of("ns/mixed", &mixed, NULL, 0, 0),
                                    cert_of("ns/other", &g_wild, other_sni, 1, 0)};
  struct tls_store *s = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(tls_store_build(certs, 3, NULL, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(tls_store_size(s), 2);
  CU_ASSERT_EQUAL(tls_store_n_problems(s), 1);
  const char *name = NULL;
  const char *why = tls_store_problem(s, 0, &name);
  CU_ASSERT_STRING_EQUAL(name, "ns/mixed");
  CU_ASSERT_PTR_NOT_NULL(strstr(why, "does not match"));
  CU_ASSERT_PTR_NULL(strstr(why, "PRIVATE KEY"));
  CU_ASSERT_PTR_NULL(tls_store_problem(s, 1, NULL));
  /* its host falls to the default certificate; the others keep theirs */
  struct client_opts www = {.sni = "www.example.com"};
  CU_ASSERT_PTR_NOT_NULL(connect_name(s, &www, g_default.cert));
  struct client_opts other = {.sni = "other.test"};
  CU_ASSERT_PTR_NOT_NULL(connect_name(s, &other, g_wild.cert));
  tls_store_unref(s);
}

static void unparsable_pem_and_bad_options_are_rejected_with_the_reason(void) {
  struct pem junk_cert = {"-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
                          g_www.key};
  struct pem junk_key = {g_www.cert, "garbage"};
  const char *bad_names[] = {"ok.example.com", "bad*.example.com"};
  struct tls_certificate c1[] = {
      cert_of("ns/junk", &junk_cert, NULL, 0, 0), cert_of("ns/nokey", &junk_key, NULL, 0, 0),
      cert_of("ns/names", &g_www, bad_names, 2, 0), cert_of("ns/default", &g_default, NULL, 0, 1)};
  struct tls_store *s = NULL;
  char err[256] = "";
  CU_ASSERT_EQUAL_FATAL(tls_store_build(c1, 4, NULL, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(tls_store_n_problems(s), 3);
  const char *name;
  CU_ASSERT_PTR_NOT_NULL(strstr(tls_store_problem(s, 0, &name), "tls.crt"));
  CU_ASSERT_STRING_EQUAL(name, "ns/junk");
  CU_ASSERT_PTR_NOT_NULL(strstr(tls_store_problem(s, 1, &name), "private key"));
  CU_ASSERT_STRING_EQUAL(name, "ns/nokey");
  CU_ASSERT_PTR_NOT_NULL(strstr(tls_store_problem(s, 2, &name), "invalid server name"));
  CU_ASSERT_STRING_EQUAL(name, "ns/names");
  /* none of ns/names' names is served by it, not even the valid one */
  struct client_opts ok = {.sni = "ok.example.com"};
  CU_ASSERT_PTR_NOT_NULL(connect_name(s, &ok, g_default.cert));
  tls_store_unref(s);
  s = NULL;

  struct tls_certificate good[] = {cert_of("ns/www", &g_www, NULL, 0, 1)};
  struct tls_options o = {.ciphers_tls12 = "NO-SUCH-CIPHER"};
  CU_ASSERT_EQUAL(tls_store_build(good, 1, &o, &s, err, sizeof(err)), TLS_ERR_CONFIG);
  CU_ASSERT_PTR_NOT_NULL(strstr(err, "cipher"));
  CU_ASSERT_PTR_NULL(s);

  /* an empty store builds; every handshake then fails */
  CU_ASSERT_EQUAL(tls_store_build(NULL, 0, NULL, &s, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(tls_store_size(s), 0);
  struct client_opts none = {0};
  CU_ASSERT_PTR_NULL(connect_name(s, &none, NULL));
  tls_store_unref(s);
}

/* ---- bad input -------------------------------------------------------- */

static void garbage_bytes_fail_the_connection_without_crashing(void) {
  struct tls_store *st = store_with(1, NULL);
  struct tls_conn *s = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
  const char *http = "GET / HTTP/1.1\r\nHost: www.example.com\r\n\r\n";
  CU_ASSERT_EQUAL(tls_conn_feed(s, http, strlen(http)), 0);
  uint8_t buf[256];
  CU_ASSERT_EQUAL(tls_conn_read(s, buf, sizeof(buf)), TLS_ERR_PROTOCOL);
  CU_ASSERT_EQUAL(strncmp(tls_conn_error(s), "tls handshake failed: ", 22), 0);
  CU_ASSERT_EQUAL(tls_conn_read(s, buf, sizeof(buf)), TLS_ERR_PROTOCOL); /* stays dead */
  CU_ASSERT_EQUAL(tls_conn_write(s, "x", 1), TLS_ERR_PROTOCOL);
  CU_ASSERT_EQUAL(tls_conn_shutdown(s), 0);
  tls_conn_free(s);

  /* a real ClientHello with bytes flipped, and random records */
  struct client_opts o = {.sni = "www.example.com", .alpn = "\x02h2"};
  struct client c = client_new(&o);
  SSL_do_handshake(c.ssl);
  uint8_t hello[4096];
  int n = BIO_read(SSL_get_wbio(c.ssl), hello, sizeof(hello));
  CU_ASSERT_FATAL(n > 5);
  client_free(&c);
  uint32_t rng = 12345;
  for (int round = 0; round < 300; round++) {
    uint8_t in[4096];
    size_t len = (size_t)n;
    memcpy(in, hello, len);
    int flips = 1 + round % 8;
    for (int f = 0; f < flips; f++) {
      rng = rng * 1103515245u + 12345u;
      size_t at = round < 200 ? 5 + (rng >> 8) % (len - 5) : (rng >> 8) % len;
      in[at] ^= (uint8_t)(1u << ((rng >> 4) % 8));
    }
    if (round % 10 == 9) len = (rng >> 8) % len; /* truncated */
    CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
    CU_ASSERT_EQUAL(tls_conn_feed(s, in, len), 0);
    int r = tls_conn_read(s, buf, sizeof(buf));
    CU_ASSERT(r == TLS_WANT_MORE || r == TLS_ERR_PROTOCOL);
    if (r == TLS_ERR_PROTOCOL) CU_ASSERT(strlen(tls_conn_error(s)) > 0);
    const uint8_t *p;
    size_t plen;
    tls_conn_pending_output(s, &p, &plen);
    tls_conn_consume_output(s, plen);
    tls_conn_free(s);
  }
  tls_store_unref(st);
}

static void writes_before_the_handshake_are_refused(void) {
  struct tls_store *st = store_with(1, NULL);
  struct tls_conn *s = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
  CU_ASSERT_EQUAL(tls_conn_write(s, "x", 1), TLS_ERR_STATE);
  uint8_t buf[8];
  CU_ASSERT_EQUAL(tls_conn_read(s, buf, sizeof(buf)), TLS_WANT_MORE);
  CU_ASSERT_EQUAL(tls_conn_read(s, buf, 0), TLS_ERR_INVALID);
  const uint8_t *p;
  size_t len;
  tls_conn_pending_output(s, &p, &len);
  CU_ASSERT_EQUAL(len, 0);
  tls_conn_free(s);
  tls_store_unref(st);
}

static void close_notify_travels_both_ways(void) {
  struct tls_store *st = store_with(1, NULL);
  struct tls_conn *s = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_conn_new(st, &s), 0);
  struct client_opts o = {.sni = "www.example.com"};
  struct client c = client_new(&o);
  CU_ASSERT_EQUAL_FATAL(handshake(&c, s), 0);
  CU_ASSERT_EQUAL(exchange(&c, s), 0);
  /* client closes: the server reads TLS_CLOSED */
  SSL_shutdown(c.ssl);
  to_server(&c, s);
  uint8_t buf[16];
  CU_ASSERT_EQUAL(tls_conn_read(s, buf, sizeof(buf)), TLS_CLOSED);
  /* server answers with its own close_notify; writes then fail */
  CU_ASSERT_EQUAL(tls_conn_shutdown(s), 0);
  CU_ASSERT_EQUAL(tls_conn_write(s, "x", 1), TLS_ERR_STATE);
  to_client(s, &c);
  char cbuf[16];
  CU_ASSERT_EQUAL(SSL_read(c.ssl, cbuf, sizeof(cbuf)), 0);
  CU_ASSERT_EQUAL(SSL_get_error(c.ssl, 0), SSL_ERROR_ZERO_RETURN);
  client_free(&c);
  tls_conn_free(s);
  tls_store_unref(st);
}

static void parses_the_sni_extension_strictly(void) {
  char out[256];
  const uint8_t ok[] = {0, 14, 0, 0, 11, 'W', 'w', 'W', '.', 'a', 'b', '.', 'c', 'o', 'm', '.'};
  CU_ASSERT_EQUAL(tls_parse_sni(ok, sizeof(ok), out, sizeof(out)), 0);
  CU_ASSERT_STRING_EQUAL(out, "www.ab.com");
  const uint8_t short_list[] = {0, 20, 0, 0, 3, 'a', 'b', 'c'};
  CU_ASSERT_EQUAL(tls_parse_sni(short_list, sizeof(short_list), out, sizeof(out)), TLS_ERR_INVALID);
  const uint8_t overrun[] = {0, 6, 0, 0, 9, 'a', 'b', 'c'};
  CU_ASSERT_EQUAL(tls_parse_sni(overrun, sizeof(overrun), out, sizeof(out)), TLS_ERR_INVALID);
  const uint8_t nul[] = {0, 6, 0, 0, 3, 'a', 0, 'c'};
  CU_ASSERT_EQUAL(tls_parse_sni(nul, sizeof(nul), out, sizeof(out)), TLS_ERR_INVALID);
  const uint8_t empty[] = {0, 3, 0, 0, 0};
  CU_ASSERT_EQUAL(tls_parse_sni(empty, sizeof(empty), out, sizeof(out)), TLS_ERR_INVALID);
  const uint8_t other_type[] = {0, 6, 1, 0, 3, 'a', 'b', 'c'};
  CU_ASSERT_EQUAL(tls_parse_sni(other_type, sizeof(other_type), out, sizeof(out)), TLS_ERR_INVALID);
  CU_ASSERT_EQUAL(tls_parse_sni(ok, 1, out, sizeof(out)), TLS_ERR_INVALID);
  CU_ASSERT_EQUAL(tls_parse_sni(ok, sizeof(ok), out, 4), TLS_ERR_INVALID); /* too long */
}

/* ---- OCSP stapling (issue 20, owner: p20a) ----------------------------- */

/* The response the server stapled for a client that asked (length, -1
 * when none), copied into out. */
static long stapled(struct tls_store *st, const char *sni, uint8_t *out, size_t cap) {
  struct client_opts o = {.sni = sni};
  struct client c = client_new(&o);
  struct tls_conn *s = NULL;
  long got = -2;
  if (!c.ssl || tls_conn_new(st, &s) != 0) goto done;
#ifdef OPENSSL_IS_BORINGSSL
  SSL_enable_ocsp_stapling(c.ssl);
#else
  SSL_set_tlsext_status_type(c.ssl, TLSEXT_STATUSTYPE_ocsp);
#endif
  if (handshake(&c, s) != 0) goto done;
  const uint8_t *p = NULL;
  size_t len = 0;
#ifdef OPENSSL_IS_BORINGSSL
  SSL_get0_ocsp_response(c.ssl, &p, &len);
#else
  unsigned char *q = NULL;
  long l = SSL_get_tlsext_status_ocsp_resp(c.ssl, &q);
  p = q;
  len = l > 0 ? (size_t)l : 0;
#endif
  got = p && len ? (long)len : -1;
  if (p && len <= cap) memcpy(out, p, len);
done:
  tls_conn_free(s);
  client_free(&c);
  return got;
}

static void the_selected_certificates_ocsp_response_is_stapled_while_current(void) {
  static const uint8_t resp[] = "0\x82 an OCSP response";
  struct tls_certificate certs[2] = {cert_of("ns/default", &g_default, NULL, 0, 1),
                                     cert_of("ns/www", &g_www, NULL, 0, 0)};
  certs[1].ocsp_der = resp;
  certs[1].ocsp_der_len = sizeof(resp);
  certs[1].ocsp_next_update = (int64_t)time(NULL) + 3600;
  struct tls_store *st = NULL;
  char err[256];
  CU_ASSERT_EQUAL_FATAL(tls_store_build(certs, 2, NULL, &st, err, sizeof(err)), 0);
  uint8_t got[64];
  CU_ASSERT_EQUAL(stapled(st, "www.example.com", got, sizeof(got)), (long)sizeof(resp));
  CU_ASSERT_EQUAL(memcmp(got, resp, sizeof(resp)), 0);
  CU_ASSERT_EQUAL(stapled(st, "default.test", got, sizeof(got)), -1); /* none for it */
  /* a staple past its nextUpdate is never sent, and a new staple reuses the SSL_CTX */
  certs[1].ocsp_next_update = (int64_t)time(NULL) - 1;
  struct tls_store *st2 = NULL;
  CU_ASSERT_EQUAL_FATAL(tls_store_build_from(st, certs, 2, NULL, &st2, err, sizeof(err)), 0);
  CU_ASSERT_EQUAL(stapled(st2, "www.example.com", got, sizeof(got)), -1);
  tls_store_unref(st);
  tls_store_unref(st2);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("tls", suite_init, suite_cleanup);
  CU_add_test(s, "sni_exact_name_selects_its_certificate", sni_exact_name_selects_its_certificate);
  CU_add_test(s, "sni_under_a_wildcard_selects_the_wildcard_certificate",
              sni_under_a_wildcard_selects_the_wildcard_certificate);
  CU_add_test(s, "two_labels_under_a_wildcard_get_the_default",
              two_labels_under_a_wildcard_get_the_default);
  CU_add_test(s, "no_sni_gets_the_default", no_sni_gets_the_default);
  CU_add_test(s, "no_default_and_no_match_fails_the_handshake",
              no_default_and_no_match_fails_the_handshake);
  CU_add_test(s, "store_with_only_a_default_selects_it_for_any_name",
              store_with_only_a_default_selects_it_for_any_name);
  CU_add_test(s, "store_select_follows_exact_then_wildcard_then_default",
              store_select_follows_exact_then_wildcard_then_default);
  CU_add_test(s, "alpn_prefers_h2_when_the_client_offers_both",
              alpn_prefers_h2_when_the_client_offers_both);
  CU_add_test(s, "alpn_gives_http11_to_a_client_offering_only_it",
              alpn_gives_http11_to_a_client_offering_only_it);
  CU_add_test(s, "alpn_with_h2_disabled_gives_http11", alpn_with_h2_disabled_gives_http11);
  CU_add_test(s, "tls12_and_tls13_both_negotiate", tls12_and_tls13_both_negotiate);
  CU_add_test(s, "min_version_13_rejects_a_tls12_only_client",
              min_version_13_rejects_a_tls12_only_client);
  CU_add_test(s, "no_shared_cipher_fails_with_a_reason", no_shared_cipher_fails_with_a_reason);
  CU_add_test(s, "cipher_options_pick_the_negotiated_suites",
              cipher_options_pick_the_negotiated_suites);
  CU_add_test(s, "parses_min_version_names", parses_min_version_names);
  CU_add_test(s, "tickets_resume_across_rotations_until_the_key_falls_off_the_ring",
              tickets_resume_across_rotations_until_the_key_falls_off_the_ring);
  CU_add_test(s, "tickets_survive_a_store_swap", tickets_survive_a_store_swap);
  CU_add_test(s, "disabled_resumption_never_resumes", disabled_resumption_never_resumes);
  CU_add_test(s, "a_new_store_serves_new_handshakes_while_old_connections_keep_working",
              a_new_store_serves_new_handshakes_while_old_connections_keep_working);
  CU_add_test(s, "an_incremental_build_reuses_unchanged_certificates_and_applies_changes",
              an_incremental_build_reuses_unchanged_certificates_and_applies_changes);
  CU_add_test(s, "handshakes_survive_concurrent_publishes_and_key_rotations",
              handshakes_survive_concurrent_publishes_and_key_rotations);
  CU_add_test(s, "a_key_that_does_not_match_costs_only_its_own_hosts",
              a_key_that_does_not_match_costs_only_its_own_hosts);
  CU_add_test(s, "a_lazy_store_decodes_a_certificate_on_its_first_handshake_only",
              a_lazy_store_decodes_a_certificate_on_its_first_handshake_only);
  CU_add_test(s, "a_lazy_store_serves_the_default_for_a_bad_certificate_and_reports_it",
              a_lazy_store_serves_the_default_for_a_bad_certificate_and_reports_it);
  CU_add_test(s, "pinned_certificates_are_shared_by_pin_without_copies",
              pinned_certificates_are_shared_by_pin_without_copies);
  CU_add_test(s, "a_rotation_keeps_the_names_and_a_rename_rebuilds_them",
              a_rotation_keeps_the_names_and_a_rename_rebuilds_them);
  CU_add_test(s, "unparsable_pem_and_bad_options_are_rejected_with_the_reason",
              unparsable_pem_and_bad_options_are_rejected_with_the_reason);
  CU_add_test(s, "garbage_bytes_fail_the_connection_without_crashing",
              garbage_bytes_fail_the_connection_without_crashing);
  CU_add_test(s, "writes_before_the_handshake_are_refused",
              writes_before_the_handshake_are_refused);
  CU_add_test(s, "close_notify_travels_both_ways", close_notify_travels_both_ways);
  CU_add_test(s, "parses_the_sni_extension_strictly", parses_the_sni_extension_strictly);
  CU_add_test(s, "the_selected_certificates_ocsp_response_is_stapled_while_current",
              the_selected_certificates_ocsp_response_is_stapled_while_current);
}
