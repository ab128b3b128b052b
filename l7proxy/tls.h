/*
 * tls — TLS termination for the l7proxy HTTPS listeners: certificate
 * selection by SNI, ALPN, session tickets with rotating keys, and
 * server-side TLS connections driven over memory BIOs.
 *
 * Two objects:
 *   - struct tls_store: immutable, reference-counted set of certificates
 *     built from what syncd pushes, one SSL_CTX per certificate plus the
 *     listener SSL_CTX. A lazy store (tls_options.lazy) decodes a
 *     certificate on the first handshake that selects it, so building one
 *     of 10k certificates costs no key decoding and no SSL_CTX memory for
 *     certificates nobody asks for. Selection by SNI: exact name
 *     (case-insensitive), then a one-label wildcard ("*.example.com"
 *     covers "a.example.com", not "b.a.example.com"), then the default
 *     certificate (also when the client sends no SNI). With no default and
 *     no match the handshake fails with an unrecognized_name alert.
 *   - struct tls_conn: one server-side TLS connection, independent of
 *     sockets (like an nghttp2 session): ciphertext in, plaintext out and
 *     the reverse. It keeps a reference to the store it was created with,
 *     so a newly published store affects new handshakes at once while
 *     existing connections keep theirs (nothing is dropped).
 *
 * Session resumption uses stateless tickets only (no server session cache
 * by default). Ticket keys live in one process-wide ring shared by every
 * store: the newest key encrypts, the older TLS_TICKET_KEY_RING-1 keys
 * still decrypt. Call tls_ticket_keys_rotate() from a timer (e.g. every
 * few hours).
 *
 * Built on the API OpenSSL 3 and BoringSSL share (DESIGN §3); the few
 * differences are under OPENSSL_IS_BORINGSSL in tls.c. Never links gRPC.
 *
 * Threads: a store may be used by many threads at once (SSL_CTXs are
 * shared read-only; a lazy certificate is decoded under its own mutex,
 * once). A tls_conn belongs to one thread. The ticket ring is guarded by a
 * mutex.
 *
 * ---- How to wire this into a libuv connection (for the worker) ---------
 *
 *   accept:   snap = l7_snapshot_current();
 *             tls_conn_new(l7_snapshot_tls(snap), &c);
 *             l7_snapshot_unref(snap);         (the conn keeps its own ref)
 *   on read:  tls_conn_feed(c, buf, nread);
 *             loop { n = tls_conn_read(c, plain, sizeof plain);
 *                    n > 0            -> hand plain[0..n) to HTTP/1.1 or
 *                                        nghttp2 (pick by tls_conn_alpn()
 *                                        once tls_conn_handshake_done());
 *                    TLS_WANT_MORE    -> break (wait for the next read);
 *                    TLS_CLOSED       -> peer sent close_notify: finish;
 *                    other negative   -> log tls_conn_error(c), flush
 *                                        (the alert), then close. }
 *             then flush (below): the handshake produces output too.
 *   on write: tls_conn_write(c, plain, len); then flush.
 *   flush:    if no uv_write is in flight and
 *             tls_conn_pending_output(c, &p, &len) returns len > 0:
 *             uv_write(p, len); in its callback tls_conn_consume_output(c,
 *             len) and flush again. The region stays valid until it is
 *             consumed, so at most one uv_write of it may be in flight.
 *             Back-pressure: while it is in flight, stop feeding the conn
 *             plaintext from upstream. Handshake time is bounded by the
 *             worker's header/idle timer, not here.
 *   close:    tls_conn_shutdown(c) (queues close_notify), flush, then
 *             uv_close and tls_conn_free(c).
 *   config:   the snapshot builder (l7proxy/snapshot.h) makes the store
 *             of each generation with tls_store_build_from(previous,...)
 *             and the snapshot carries it: routes and certificates are
 *             published together, once. tls_store_problem()s are reported
 *             (Ack, /config): a refused certificate costs only its own
 *             names, which get the default certificate.
 *   timer:    tls_ticket_keys_rotate() every N hours (any thread).
 */
#ifndef EDGE_L7PROXY_TLS_H
#define EDGE_L7PROXY_TLS_H

#include <stddef.h>
#include <stdint.h>

/* Return codes. 0 or positive is success (a byte count where stated). */
enum {
  TLS_WANT_MORE = -1,    /* needs more ciphertext from the peer */
  TLS_CLOSED = -2,       /* the peer sent close_notify */
  TLS_ERR_PROTOCOL = -3, /* handshake or record failure: see tls_conn_error */
  TLS_ERR_CONFIG = -4,   /* bad certificate, key or option: see err */
  TLS_ERR_NOMEM = -5,
  TLS_ERR_STATE = -6,   /* call not valid now (write before the handshake) */
  TLS_ERR_INVALID = -7, /* bad argument */
};

/* Short description of a return code ("needs more input", ...). */
const char *tls_strerror(int code);

/* How many ticket keys the ring holds: the current one plus the previous
 * TLS_TICKET_KEY_RING-1, which still decrypt. */
#define TLS_TICKET_KEY_RING 3

/* Modern TLS 1.2 default: ECDHE with AES-GCM or CHACHA20-POLY1305 only. */
#define TLS_DEFAULT_CIPHERS_TLS12                              \
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

enum tls_min_version {
  TLS_MIN_1_2 = 0, /* default */
  TLS_MIN_1_3 = 1,
};

/* Listener options. All-zero (or a NULL pointer) means the defaults. */
struct tls_options {
  enum tls_min_version min_version;
  const char *ciphers_tls12;      /* OpenSSL cipher string; NULL = default above */
  const char *ciphersuites_tls13; /* NULL = library default; ignored on BoringSSL */
  int disable_h2;                 /* ALPN offers only http/1.1 */
  int disable_resumption;         /* no tickets, no cache (fair benchmarks) */
  int session_cache;              /* also keep a server session cache (off by default) */
  /* Decode each certificate on its first handshake instead of at build
   * time. A certificate that cannot be used then fails the handshakes that
   * select it (reason in tls_conn_error, logged once as
   * tls_certificate_unusable) instead of the build. */
  int lazy;
  /* Keep certificates' PEM alive by their pin instead of copying it (see
   * struct tls_certificate). Both or neither. */
  void (*pin_ref)(void *pin);
  void (*pin_unref)(void *pin);
};

/* Parses "1.2" or "1.3" (also "TLSv1.2"/"TLSv1.3"). 0 or TLS_ERR_INVALID. */
int tls_parse_min_version(const char *s, enum tls_min_version *out);

/* One certificate as syncd sends it; mirrors struct l7_certificate in
 * l7proxy/snapshot.h field by field (minus not_after) so the worker can
 * convert without this module linking the snapshot. */
struct tls_certificate {
  const char *name; /* "namespace/secret", used in reasons and for tls_conn_certificate_name */
  const char *const *sni_names; /* names it serves; none = its DNS SANs */
  size_t n_sni_names;
  const uint8_t *cert_pem; /* chain, leaf first */
  size_t cert_pem_len;
  const uint8_t *key_pem; /* key material: never logged */
  size_t key_pem_len;
  int is_default; /* the first certificate marked default wins */
  /* With opts->pin_ref: an immutable owner of cert_pem and key_pem. The
   * store takes pin_ref(pin) instead of copying them, and a later build
   * reuses this certificate's entry (and SSL_CTX) for the same pin
   * without reading the bytes. NULL: copied, reused by digest. */
  void *pin;
  /* OCSP stapling (issue 20): a DER response stapled for clients that ask
   * (status_request) until next_update (0: no end); NULL: none. With a
   * pin it belongs to the pin (borrowed while the store holds it),
   * without one it is copied. A staple is per store: a new one never
   * costs a new SSL_CTX. */
  const uint8_t *ocsp_der;
  size_t ocsp_der_len;
  int64_t ocsp_next_update;
};

struct tls_store; /* opaque */

/*
 * Builds a store from certs[0..n) (n may be 0: every handshake then fails)
 * with opts (NULL = defaults). Everything is copied; the caller keeps
 * ownership of certs. On success *out holds one reference (the caller
 * unrefs). A certificate that cannot be served (OpenSSL refuses it through
 * common/cert_valid, or a server name is invalid) does not fail the build:
 * it is left out, its names fall to the default certificate, and
 * tls_store_problem reports it. Only bad options (TLS_ERR_CONFIG, e.g. a
 * cipher list) or memory (TLS_ERR_NOMEM) fail, with a reason in err.
 */
int tls_store_build(const struct tls_certificate *certs, size_t n, const struct tls_options *opts,
                    struct tls_store **out, char *err, size_t errlen);
/*
 * Like tls_store_build, but shares every certificate of prev (NULL =
 * none; only read, the caller keeps its reference) with the same name and
 * the same pin, or without pins byte-identical PEM chain and key, when the
 * options match. Decoding keys is the main cost of a store on OpenSSL 3
 * (~2 ms a certificate), so a push that changes one certificate of
 * thousands should use this with the current store.
 */
int tls_store_build_from(const struct tls_store *prev, const struct tls_certificate *certs,
                         size_t n, const struct tls_options *opts, struct tls_store **out,
                         char *err, size_t errlen);
void tls_store_ref(struct tls_store *s);
void tls_store_unref(struct tls_store *s);        /* NULL is fine */
size_t tls_store_size(const struct tls_store *s); /* usable certificates */
/* How many certificates have their SSL_CTX (all usable ones unless lazy). */
size_t tls_store_loaded(const struct tls_store *s);
/* Certificate decodes (PEM chain and key into an SSL_CTX, whether they
 * succeeded or not) since the process started, in every store. */
unsigned long long tls_certificates_decoded(void);

/* Certificates found unusable in s (at build, or at their first handshake
 * in a lazy store): tls_store_problem(s, i, &name) for i <
 * tls_store_n_problems(s) returns the reason ("certificate NAME: tls.key
 * does not match ...") and sets name to the certificate's name. Valid
 * while the caller holds a reference to s. */
size_t tls_store_n_problems(const struct tls_store *s);
const char *tls_store_problem(const struct tls_store *s, size_t i, const char **cert_name);

/* The certificate name selected for server name sni (NULL = no SNI), or
 * NULL when the handshake would fail. Pure lookup; what handshakes use. */
const char *tls_store_select(const struct tls_store *s, const char *sni);

/* Makes a fresh current ticket key; the oldest key falls off the ring.
 * Tickets issued under the previous keys still resume (and get renewed).
 * Safe from any thread. 0 or TLS_ERR_NOMEM when randomness fails. */
int tls_ticket_keys_rotate(void);

/* Parses the body of a ClientHello server_name extension (RFC 6066) and
 * copies the host_name, lowercased and without a trailing dot, to out.
 * 0, or TLS_ERR_INVALID when malformed, not a valid host name, or longer
 * than outlen-1. Exposed for the fuzz target. */
int tls_parse_sni(const uint8_t *ext, size_t len, char *out, size_t outlen);

struct tls_conn; /* opaque */

/* A server-side connection on store (the conn takes its own reference).
 * 0 or TLS_ERR_NOMEM. Free with tls_conn_free. */
int tls_conn_new(struct tls_store *store, struct tls_conn **out);

/* A client-side connection on a client SSL_CTX (l7proxy/upstream_tls.h
 * makes them; the SSL keeps its own reference to ctx). server_name ("" or
 * NULL: none) is sent as SNI unless it is an IP literal, and checked
 * against the peer's certificate when the context verifies peers. The
 * same feed / read / write / pending-output calls drive it; the first
 * tls_conn_read sends the ClientHello. A verification failure's reason
 * names the X.509 error ("tls handshake failed: certificate verify
 * failed: unable to get local issuer certificate"). 0 or TLS_ERR_*. */
struct ssl_ctx_st;
int tls_conn_new_client(struct ssl_ctx_st *ctx, const char *server_name, struct tls_conn **out);
void tls_conn_free(struct tls_conn *c); /* NULL is fine */

/* Queues len bytes of ciphertext read from the socket (copied). 0 or
 * negative. Nothing is processed until tls_conn_read. */
int tls_conn_feed(struct tls_conn *c, const void *data, size_t len);

/* Advances the handshake and decrypts: plaintext bytes written to buf
 * (> 0), or TLS_WANT_MORE, TLS_CLOSED, or a negative error (the
 * connection is then dead; tls_conn_error says why). Call it until it
 * stops returning bytes, then flush the pending output. */
int tls_conn_read(struct tls_conn *c, void *buf, size_t cap);

/* Encrypts len bytes of plaintext into the pending output. Returns len,
 * TLS_ERR_STATE before the handshake is done or after shutdown, or a
 * negative error. */
int tls_conn_write(struct tls_conn *c, const void *data, size_t len);

/* Ciphertext waiting to go to the socket: *ptr and *len (len 0 when none).
 * The region belongs to the conn and stays valid until it is consumed or
 * the conn is freed; further output is returned after it is consumed. */
void tls_conn_pending_output(struct tls_conn *c, const uint8_t **ptr, size_t *len);
/* Marks n bytes of the region from tls_conn_pending_output as written. */
void tls_conn_consume_output(struct tls_conn *c, size_t n);

/* Queues a close_notify alert. 0 or negative. Writes fail afterwards. */
int tls_conn_shutdown(struct tls_conn *c);

int tls_conn_handshake_done(const struct tls_conn *c);
/* The negotiated protocol: "h2", "http/1.1", or "" (no ALPN agreed: the
 * caller speaks HTTP/1.1). */
const char *tls_conn_alpn(const struct tls_conn *c);
/* The server name the client sent (lowercased), or "" without SNI. */
const char *tls_conn_sni(const struct tls_conn *c);
/* The name of the certificate selected, or "" before selection. */
const char *tls_conn_certificate_name(const struct tls_conn *c);
/* "TLSv1.2", "TLSv1.3", ... */
const char *tls_conn_version(const struct tls_conn *c);
/* 1 when the handshake resumed a session (ticket). */
int tls_conn_resumed(const struct tls_conn *c);
/* The reason of the last failure ("tls handshake failed: no shared
 * cipher"), or "" when none. Never contains key material. */
const char *tls_conn_error(const struct tls_conn *c);

/* ---- client certificates (issue 20; l7proxy/client_auth.h) -------------- */

struct cauth_policy;
struct cauth_peer;
/* Where a server-side connection finds the client-auth policy of the
 * server name its ClientHello asks for: lookup(arg, sni) returns a
 * borrowed policy (NULL: none) that the connection takes a reference on;
 * release(arg) is called once the certificate is selected (or when the
 * connection is freed first). l7proxy passes the snapshot the connection
 * was accepted under, so the policy follows the host tables of that
 * generation (exact host, one-label wildcard, host-less: the precedence
 * requests are routed by) without a table of its own per push. */
struct tls_client_auth_source {
  const struct cauth_policy *(*lookup)(void *arg, const char *sni);
  void (*release)(void *arg);
  void *arg;
};
/* Sets c's source (before its first byte is fed); c owns src->arg now. */
void tls_conn_set_client_auth(struct tls_conn *c, const struct tls_client_auth_source *src);
/* The client-auth policy the connection's handshake applied (NULL: none). */
const struct cauth_policy *tls_conn_client_policy(const struct tls_conn *c);
/* What the client presented, computed on first use and kept with the
 * connection (chain: the URL-encoded chain is needed too). NULL when out
 * of memory. */
const struct cauth_peer *tls_conn_client_peer(struct tls_conn *c, int chain);

#endif
