/*
 * pb_json — a protobuf-c message to and from JSON text, driven by the
 * message descriptors, so every edge.v1 message has one text form without
 * hand-written mapping code. Used for l7proxy --config=FILE and
 * syncd's /config dump (with key_pem left out).
 *
 * The JSON form: an object per message whose keys are the .proto field
 * names ("virtual_host", "path_type"); repeated fields are arrays; enums
 * are their full .proto value names ("PATH_TYPE_PREFIX") or numbers;
 * 64-bit integers are numbers or decimal strings; bytes fields hold their
 * content as a plain JSON string (PEM text as is — not base64, which is a
 * deliberate difference from the canonical proto3 JSON mapping so that a
 * hand-written config can paste certificates). A oneof is written by
 * setting exactly one of its fields. Unknown keys are errors (a typo must
 * not silently drop configuration).
 *
 * Ownership: pb_json_decode returns a message allocated with malloc in the
 * layout protobuf-c expects, freed with protobuf_c_message_free_unpacked(m,
 * NULL) (or the generated *_free_unpacked). pb_json_encode returns a
 * malloc'd string.
 *
 * Callers: l7proxy/config_store (reading config files), syncd/status
 * (/config), tests.
 */
#ifndef EDGE_COMMON_PB_JSON_H
#define EDGE_COMMON_PB_JSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* Parses text (len bytes) as a message of type d. 0 and *out, or negative
 * with a reason such as "resources[2].cluster.endpoints[0]: unknown field
 * \"adress\"" or "line 3: ..." for JSON syntax errors. */
int pb_json_decode(const ProtobufCMessageDescriptor *d, const char *text, size_t len,
                   ProtobufCMessage **out, char *err, size_t errlen);

/* Renders m as indented JSON, omitting fields at their default value.
 * Returns a malloc'd string or NULL (allocation failure, or a bytes field
 * that is not valid UTF-8). */
char *pb_json_encode(const ProtobufCMessage *m);

/* The same as a jansson value (a new reference the caller decrefs), leaving
 * out every field named in skip_field at any depth — one name or several
 * separated by commas (e.g. "key_pem,htpasswd,hmac_key", so key material
 * never reaches a dump); skip_field may be NULL. NULL on error. */
json_t *pb_json_to_json(const ProtobufCMessage *m, const char *skip_field);

#endif
