/* manifest: YAML/JSON documents → jansson objects, errors with file and line. */
#include "syncd/manifest.h"

#include <CUnit/CUnit.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int parse(struct manifest_set *s, const char *text, const char *file) {
  manifest_set_init(s);
  return manifest_parse(s, text, strlen(text), file);
}

static void multi_document_yaml_gives_one_object_per_document_with_its_line(void) {
  struct manifest_set s;
  CU_ASSERT_EQUAL(parse(&s, "kind: A\n---\n# c\nkind: B\n---\n", "m.yaml"), 0);
  CU_ASSERT_EQUAL_FATAL(s.n_docs, 2);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(s.docs[1].obj, "kind")), "B");
  CU_ASSERT_STRING_EQUAL(s.docs[0].location, "m.yaml:1");
  CU_ASSERT_STRING_EQUAL(s.docs[1].location, "m.yaml:2");
  manifest_set_free(&s);
}

static void plain_scalars_are_typed_and_quoted_ones_are_strings(void) {
  struct manifest_set s;
  CU_ASSERT_EQUAL(
      parse(&s, "a: 80\nb: \"80\"\nc: true\nd: null\ne: 1.5\nf: abc\ng: 'false'\n", "x"), 0);
  CU_ASSERT_EQUAL_FATAL(s.n_docs, 1);
  json_t *o = s.docs[0].obj;
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "a")), 80);
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "b")), "80");
  CU_ASSERT(json_is_true(json_object_get(o, "c")));
  CU_ASSERT(json_is_null(json_object_get(o, "d")));
  CU_ASSERT(json_is_real(json_object_get(o, "e")));
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "f")), "abc");
  CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "g")), "false");
  manifest_set_free(&s);
}

static void json_documents_parse_too(void) {
  struct manifest_set s;
  CU_ASSERT_EQUAL(
      parse(&s, "{\"kind\": \"Service\", \"spec\": {\"ports\": [{\"port\": 80}]}}", "s.json"), 0);
  CU_ASSERT_EQUAL_FATAL(s.n_docs, 1);
  json_t *port = json_object_get(
      json_array_get(json_object_get(json_object_get(s.docs[0].obj, "spec"), "ports"), 0), "port");
  CU_ASSERT_EQUAL(json_integer_value(port), 80);
  manifest_set_free(&s);
}

static void syntax_error_is_reported_with_file_and_line_and_earlier_documents_kept(void) {
  struct manifest_set s;
  CU_ASSERT_EQUAL(parse(&s, "kind: A\n---\nkind: B\nspec:\n  x: [1, 2\n  y: 3\n", "bad.yaml"),
                  -EINVAL);
  CU_ASSERT_EQUAL(s.n_docs, 1);
  CU_ASSERT_EQUAL_FATAL(s.n_errors, 1);
  CU_ASSERT_EQUAL(strncmp(s.errors[0].location, "bad.yaml:", 9), 0);
  int line = atoi(s.errors[0].location + 9);
  CU_ASSERT(line >= 5 && line <= 7);
  CU_ASSERT(strlen(s.errors[0].message) > 0);
  manifest_set_free(&s);
}

static void document_that_is_not_a_mapping_is_refused(void) {
  struct manifest_set s;
  CU_ASSERT_EQUAL(parse(&s, "- a\n- b\n---\nkind: A\n", "l.yaml"), -EINVAL);
  CU_ASSERT_EQUAL(s.n_docs, 1);
  CU_ASSERT_EQUAL_FATAL(s.n_errors, 1);
  CU_ASSERT_STRING_EQUAL(s.errors[0].location, "l.yaml:1");
  manifest_set_free(&s);
}

static void kubernetes_list_is_flattened_into_its_items(void) {
  struct manifest_set s;
  CU_ASSERT_EQUAL(parse(&s, "kind: List\nitems:\n- kind: A\n- kind: B\n", "list.yaml"), 0);
  CU_ASSERT_EQUAL(s.n_docs, 2);
  manifest_set_free(&s);
}

static void anchors_and_aliases_share_values(void) {
  struct manifest_set s;
  CU_ASSERT_EQUAL(parse(&s, "a: &x {p: 1}\nb: *x\n", "a.yaml"), 0);
  CU_ASSERT_EQUAL_FATAL(s.n_docs, 1);
  CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(s.docs[0].obj, "b"), "p")), 1);
  manifest_set_free(&s);
}

static void alias_bomb_is_refused_not_expanded(void) {
  const char *bomb =
      "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
      "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
      "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
      "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
      "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
  struct manifest_set s;
  CU_ASSERT_EQUAL(parse(&s, bomb, "bomb.yaml"), -EINVAL);
  CU_ASSERT_EQUAL(s.n_docs, 0);
  CU_ASSERT_EQUAL(s.n_errors, 1);
  manifest_set_free(&s);
}

static void unknown_alias_and_deep_nesting_are_errors(void) {
  struct manifest_set s;
  CU_ASSERT_EQUAL(parse(&s, "a: *nope\n", "u.yaml"), -EINVAL);
  CU_ASSERT_EQUAL(s.n_errors, 1);
  manifest_set_free(&s);
  char deep[400];
  memset(deep, '[', 200);
  deep[200] = '\0';
  CU_ASSERT_EQUAL(parse(&s, deep, "d.yaml"), -EINVAL);
  CU_ASSERT_EQUAL(s.n_docs, 0);
  manifest_set_free(&s);
}

void test_register(void) {
  CU_pSuite s = CU_add_suite("manifest", NULL, NULL);
  CU_add_test(s, "multi_document_yaml_gives_one_object_per_document_with_its_line",
              multi_document_yaml_gives_one_object_per_document_with_its_line);
  CU_add_test(s, "plain_scalars_are_typed_and_quoted_ones_are_strings",
              plain_scalars_are_typed_and_quoted_ones_are_strings);
  CU_add_test(s, "json_documents_parse_too", json_documents_parse_too);
  CU_add_test(s, "syntax_error_is_reported_with_file_and_line_and_earlier_documents_kept",
              syntax_error_is_reported_with_file_and_line_and_earlier_documents_kept);
  CU_add_test(s, "document_that_is_not_a_mapping_is_refused",
              document_that_is_not_a_mapping_is_refused);
  CU_add_test(s, "kubernetes_list_is_flattened_into_its_items",
              kubernetes_list_is_flattened_into_its_items);
  CU_add_test(s, "anchors_and_aliases_share_values", anchors_and_aliases_share_values);
  CU_add_test(s, "alias_bomb_is_refused_not_expanded", alias_bomb_is_refused_not_expanded);
  CU_add_test(s, "unknown_alias_and_deep_nesting_are_errors",
              unknown_alias_and_deep_nesting_are_errors);
}
