/*
 * client_hello — the server name (SNI) of a TLS ClientHello, read from the
 * first bytes a client sends, without terminating TLS: how an HTTPS
 * listener decides that a connection is a TLS passthrough (Gateway API
 * TLSRoute) and must be spliced as TCP, or terminated as usual.
 *
 * Reads TLS records (content type 22, handshake) and reassembles the
 * handshake message across records, up to CLIENT_HELLO_MAX bytes; finds the
 * server_name extension (RFC 6066, host_name type). Every length is checked
 * against its container: hostile bytes give CLIENT_HELLO_INVALID, never a
 * read past the buffer. The name is returned lower-cased and must be a DNS
 * name (letters, digits, '-', '_', '.'; at most 253 bytes): anything else
 * is INVALID, so it can be used as a lookup key and logged safely.
 *
 * Pure function over a buffer; no allocation; any thread. Callers: the
 * l7proxy HTTPS listener (peek before the handshake), tests, fuzzing.
 */
#ifndef EDGE_COMMON_CLIENT_HELLO_H
#define EDGE_COMMON_CLIENT_HELLO_H

#include <stddef.h>
#include <stdint.h>

/* A ClientHello larger than this (reassembled) is refused. */
#define CLIENT_HELLO_MAX 16384

enum client_hello_result {
  CLIENT_HELLO_INVALID = -1,  /* not a TLS ClientHello, or malformed */
  CLIENT_HELLO_NEED_MORE = 0, /* a prefix of one: read more bytes */
  CLIENT_HELLO_SNI = 1,       /* complete, with a server name (in sni) */
  CLIENT_HELLO_NO_SNI = 2,    /* complete, without a server name */
};

/* Parses p[0..n). sni receives the NUL-terminated name when SNI is
 * returned (cap >= 254 holds any valid one). */
enum client_hello_result client_hello_sni(const uint8_t *p, size_t n, char *sni, size_t cap);

#endif
