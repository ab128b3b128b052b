/*
 * manifest — Kubernetes manifests (multi-document YAML or JSON) as jansson
 * objects, each remembering where it came from ("dir/file.yaml:12").
 *
 * libyaml reads YAML and JSON alike; scalars are typed as YAML 1.2's core
 * schema says (plain true/false/null/numbers; quoted scalars are strings).
 * A document that does not parse is recorded as an error with its file and
 * line; the documents before it in the same file are kept. Kubernetes
 * "List" objects are flattened into their items.
 *
 * Limits against hostile input: nesting depth, alias expansion and the
 * number of nodes per document are bounded; exceeding them is a parse
 * error, never a crash. Called by the sources and by tests.
 */
#ifndef EDGE_SYNCD_MANIFEST_H
#define EDGE_SYNCD_MANIFEST_H

#include <jansson.h>
#include <stddef.h>

struct manifest_doc {
  json_t *obj;    /* a JSON object (one reference owned by the set) */
  char *location; /* "file:line" of the document, or "" */
};

struct manifest_error {
  char *location; /* "file:line" where parsing failed */
  char *message;  /* libyaml's problem, or why the document was refused */
};

/* A growing collection of documents and parse errors. Owns everything in it. */
struct manifest_set {
  struct manifest_doc *docs;
  size_t n_docs, cap_docs;
  /* Set before any add: documents' locations are borrowed from a set that
   * outlives this one (a source collecting its per-file sets each change),
   * not copied. */
  int borrow_locations;
  struct manifest_error *errors;
  size_t n_errors, cap_errors;
};

void manifest_set_init(struct manifest_set *s);
/* Frees every document and error (not s itself). */
void manifest_set_free(struct manifest_set *s);

/*
 * Parses text (len bytes, need not be NUL-terminated) as a stream of
 * documents from file `filename` and appends them to s. Returns 0 when
 * everything parsed, -EINVAL when some document was refused (its error is
 * appended to s->errors and the good documents are still appended), or
 * -ENOMEM.
 */
int manifest_parse(struct manifest_set *s, const char *text, size_t len, const char *filename);

/* Appends obj (takes a new reference; the caller keeps its own) with location (copied, or
 * borrowed when s->borrow_locations; may be NULL). Returns 0 or -ENOMEM. */
int manifest_add(struct manifest_set *s, json_t *obj, const char *location);

/* Appends an error (strings copied). Returns 0 or -ENOMEM. */
int manifest_add_error(struct manifest_set *s, const char *location, const char *message);

#endif
