/*
 * report — the translation report (rejected and ignored objects, object
 * counts) in the form Status and explain read and the journal keeps: a
 * packed edge.v1.StatusResponse holding only `objects`, `rejected` and
 * `ignored`. The store keeps it unpacked (typed) next to these bytes, so
 * readers never unpack per request; packing happens once per change of
 * the report, when it is persisted.
 *
 * An ignored Ingress carries its rules' hosts comma-separated in
 * `location` (model.h); packed, they become the `hosts` field.
 *
 * Pure; any thread. Callers: syncd/main.c, tests.
 */
#ifndef EDGE_SYNCD_REPORT_H
#define EDGE_SYNCD_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "syncd/model.h"

/* Packs r. On success 0 and *out (malloc'd, caller frees), else -1. */
int report_pack(const struct syncd_report *r, uint8_t **out, size_t *len);

#endif
