/* The conflict index: what listing shows of each kind of conflict, records
 * written by earlier builds, and damaged records. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "tests/helpers/testutil.h"

static char *dir;
static void setup(void) { dir = tu_tempdir(); }
static void teardown(void) {
  tu_rmrf(dir);
  free(dir);
}

TestSuite(engine_conflicts, .init = setup, .fini = teardown);

/* The listed conflict of `field` (NULL: the delete/update one). */
static json_t *conflict_of(json_t *list, const char *field) {
  size_t i;
  json_t *c;
  json_array_foreach(list, i, c) {
    json_t *f = json_object_get(c, "field");
    if (field ? json_is_string(f) && strcmp(json_string_value(f), field) == 0 : json_is_null(f))
      return c;
  }
  cr_assert_fail("no conflict on %s", field ? field : "existence");
  return NULL;
}

/* Register siblings of each value type, with the visible one the latest. */
Test(engine_conflicts, every_value_type_and_the_visible_sibling_are_listed) {
  static const char *const a_vals = "{\"s\":\"tab\\there \\\"q\\\" \\u00e9\",\"i\":-42,"
                                    "\"d\":1.5,\"b\":true,\"n\":null,\"x\":{\"$bytes\":\"00ff\"}}";
  static const char *const b_vals =
      "{\"s\":\"other\",\"i\":7,\"d\":-0.25,\"b\":false,\"n\":1,\"x\":{\"$bytes\":\"0a\"}}";
  static const char *const fields[] = {"s", "i", "d", "b", "n", "x"};
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  char *list;
  tu_act(a, CS_ACTION_CREATE, "M", "p", "{\"s\":\"0\"}");
  tu_sync(a, b);
  tu_act(a, CS_ACTION_UPDATE, "M", "p", a_vals);
  tu_act(b, CS_ACTION_UPDATE, "M", "p", b_vals);
  tu_sync(a, b);
  cr_assert_eq(tu_conflicts(a, &list), 6, "%s", list);
  json_t *got = json_loads(list, 0, NULL), *av = json_loads(a_vals, 0, NULL),
         *bv = json_loads(b_vals, 0, NULL), *doc = tu_get_json(a, "M", "p");
  cr_assert_not_null(got);
  for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++) {
    json_t *c = conflict_of(got, fields[k]), *sib = json_object_get(c, "siblings");
    bool seen_a = false, seen_b = false;
    size_t i;
    json_t *x;
    cr_expect_str_eq(json_string_value(json_object_get(c, "kind")), "value");
    cr_expect_str_eq(json_string_value(json_object_get(c, "model")), "M");
    cr_expect_str_eq(json_string_value(json_object_get(c, "instance")), "p");
    cr_expect_eq(strlen(json_string_value(json_object_get(c, "id"))), 2 * CS_CONFLICT_ID_LEN);
    cr_assert_eq(json_array_size(sib), 2, "%s", fields[k]);
    json_array_foreach(sib, i, x) {
      json_t *v = json_object_get(x, "value");
      seen_a |= json_equal(v, json_object_get(av, fields[k]));
      seen_b |= json_equal(v, json_object_get(bv, fields[k]));
      cr_expect_eq(strlen(json_string_value(json_object_get(x, "replica"))), 16);
      cr_expect(json_integer_value(json_object_get(x, "time")) > 0);
      cr_expect_null(json_object_get(x, "deleted"));
    }
    cr_expect(seen_a && seen_b, "both writes of '%s' are siblings", fields[k]);
    cr_expect(json_equal(json_object_get(c, "visible"), json_object_get(doc, fields[k])),
              "'%s': the visible sibling is the value read", fields[k]);
  }
  json_decref(got);
  json_decref(av);
  json_decref(bv);
  json_decref(doc);
  free(list);
  cs_store_close(a);
  cs_store_close(b);
}

Test(engine_conflicts, a_delete_update_conflict_lists_the_fields_written) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  char *list;
  tu_act(a, CS_ACTION_CREATE, "M", "i", "{\"x\":1,\"y\":\"k\",\"z\":2}");
  tu_sync(a, b);
  tu_act(a, CS_ACTION_DELETE, "M", "i", NULL);
  tu_act(b, CS_ACTION_UPDATE, "M", "i", "{\"x\":5,\"z\":3}");
  tu_sync(a, b);
  cr_assert_eq(tu_conflicts(a, &list), 1, "%s", list);
  json_t *got = json_loads(list, 0, NULL), *c = conflict_of(got, NULL);
  json_t *want_fields = json_loads("[\"x\",\"z\"]", 0, NULL);
  size_t i, deleted = 0, alive = 0;
  json_t *x;
  cr_expect_str_eq(json_string_value(json_object_get(c, "kind")), "delete_update");
  cr_expect(json_equal(json_object_get(c, "updated_fields"), want_fields), "%s", list);
  cr_expect(json_is_null(json_object_get(c, "visible")));
  json_array_foreach(json_object_get(c, "siblings"), i, x) {
    cr_expect_null(json_object_get(x, "value"));
    if (json_is_true(json_object_get(x, "deleted")))
      deleted++;
    else if (json_is_false(json_object_get(x, "deleted")))
      alive++;
  }
  /* The update wrote fields, not existence: the delete is the sibling. */
  cr_expect(deleted == 1 && alive == 0, "the delete is the one sibling: %s", list);
  json_decref(want_fields);
  json_decref(got);
  free(list);
  cs_store_close(a);
  cs_store_close(b);
}

/* The only conflict index record of s (key and value). */
static void only_record(cs_store *s, cs_buf *key, cs_buf *val) {
  cs_iter *it;
  cr_assert_eq(cs__iter_new(&it, s->db, CS_CF_CONFLICTS, NULL, 0, NULL, 0), 0);
  cr_assert(cs__iter_valid(it));
  cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
  cr_assert_eq(cs__buf_put(key, k.ptr, k.len), 0);
  cr_assert_eq(cs__buf_put(val, v.ptr, v.len), 0);
  cs__iter_next(it);
  cr_assert_not(cs__iter_valid(it), "one record");
  cs__iter_free(it);
}

static void put_record(cs_store *s, const cs_buf *key, const void *val, size_t len) {
  cs_wbatch *b;
  cr_assert_eq(cs__wbatch_new(&b, s->db), 0);
  cs__wbatch_put(b, CS_CF_CONFLICTS, key->ptr, key->size, val, len);
  cr_assert_eq(cs__db_write(s->db, b, false), 0);
  cs__wbatch_free(b);
  cs__conflicts_changed(s);
}

static cs_store *one_conflict(cs_store **other) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  tu_act(a, CS_ACTION_CREATE, "M", "p", "{\"s\":\"0\"}");
  tu_sync(a, b);
  tu_act(a, CS_ACTION_UPDATE, "M", "p", "{\"s\":\"from a\"}");
  tu_act(b, CS_ACTION_UPDATE, "M", "p", "{\"s\":\"from b\"}");
  tu_sync(a, b);
  *other = b;
  return a;
}

/* Records written by earlier builds end with the conflict's JSON itself. */
Test(engine_conflicts, records_of_earlier_builds_are_listed_as_they_are) {
  cs_store *b, *a = one_conflict(&b);
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT, old = CS_BUF_INIT, list = CS_BUF_INIT;
  const char *json = "{\"field\":\"s\",\"id\":\"old\",\"kind\":\"value\"}";
  only_record(a, &key, &val);
  cr_assert_eq(cs__key_name(&old, "M"), 0);
  cr_assert_eq(cs__key_name(&old, "p"), 0);
  cr_assert_eq(cs__key_name(&old, "s"), 0);
  cr_assert_eq(cs__buf_puts(&old, json), 0);
  put_record(a, &key, old.ptr, old.size);
  cr_assert_eq(cs_list_conflicts(&list, a), 0, "%s", cs_errmsg());
  cr_expect_eq(strncmp(list.ptr, "[", 1), 0);
  cr_expect(strstr(list.ptr, json) != NULL, "%s", list.ptr);
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  cs_buf_dispose(&old);
  cs_buf_dispose(&list);
  cs_store_close(a);
  cs_store_close(b);
}

/* Every truncation of a record, and a bad kind or value type, is refused
 * as damage (never read past: the sanitizer pass runs this too). */
Test(engine_conflicts, a_damaged_record_is_refused) {
  cs_store *b, *a = one_conflict(&b);
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT, list = CS_BUF_INIT;
  size_t names = 0;
  char *n;
  only_record(a, &key, &val);
  for (int i = 0; i < 3; i++) {
    cr_assert_eq(cs__key_read_name(&n, (const uint8_t *)val.ptr, val.size, &names), 0);
    free(n);
  }
  for (size_t len = 0; len < val.size; len++) {
    put_record(a, &key, val.ptr, len);
    cs__buf_clear(&list);
    cr_expect_eq(cs_list_conflicts(&list, a), CS_ECORRUPT, "cut at %zu of %zu", len, val.size);
    cr_expect(strstr(cs_errmsg(), "conflict index") != NULL, "%s", cs_errmsg());
  }
  {
    char *bad = malloc(val.size);
    memcpy(bad, val.ptr, val.size);
    bad[names + 1] = 9; /* kind */
    put_record(a, &key, bad, val.size);
    cr_expect_eq(cs_list_conflicts(&list, a), CS_ECORRUPT, "unknown kind");
    memcpy(bad, val.ptr, val.size);
    bad[names + 6 + 17] = 77; /* the first sibling's value type */
    put_record(a, &key, bad, val.size);
    cr_expect_eq(cs_list_conflicts(&list, a), CS_ECORRUPT, "unknown value type");
    free(bad);
  }
  put_record(a, &key, val.ptr, val.size);
  cs__buf_clear(&list);
  cr_assert_eq(cs_list_conflicts(&list, a), 0, "the intact record lists: %s", cs_errmsg());
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  cs_buf_dispose(&list);
  cs_store_close(a);
  cs_store_close(b);
}

/* Syncs b with a, failing at each allocation in turn until it goes
 * through. A failed sync leaves b as it was, or with a's answer merged
 * whole (a sync may fail after its merge, acknowledging): then b lists the
 * `merged` conflicts. Returns the failures seen. */
static int sync_through_failures(cs_store *b, cs_store *a, size_t merged) {
  cs_peer *p;
  int fails = 0;
  cr_assert_eq(cs_peer_local(&p, a), 0);
  for (unsigned long n = 1;; n++) {
    uint64_t before = tu_fingerprint_data(b);
    cs__alloc_fail_after(n);
    int rc = cs_sync(NULL, b, p);
    cs__alloc_fail_after(0);
    if (rc == 0)
      break;
    cr_assert_eq(rc, CS_ENOMEM, "allocation %lu: %d %s", n, rc, cs_errmsg());
    if (tu_fingerprint_data(b) != before)
      cr_assert_eq(tu_conflicts(b, NULL), merged, "allocation %lu: b merged in part", n);
    fails++;
  }
  cs_peer_free(p);
  return fails;
}

/* The conflict index changes of a merge (records added, then removed) are
 * written with everything else or not at all. */
Test(engine_conflicts, every_allocation_failure_leaves_the_index_whole) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  const char *const docs[] = {"p1", "p2", "p3"};
  char *list;
  for (int i = 0; i < 3; i++)
    tu_act(a, CS_ACTION_CREATE, "M", docs[i], "{\"x\":0,\"y\":0}");
  tu_sync(a, b);
  for (int i = 0; i < 3; i++) {
    tu_act(a, CS_ACTION_UPDATE, "M", docs[i], "{\"x\":1,\"y\":1}");
    tu_act(b, CS_ACTION_UPDATE, "M", docs[i], "{\"x\":2,\"y\":2}");
  }
  cr_expect_gt(sync_through_failures(b, a, 6), 20);
  cr_expect_eq(tu_conflicts(a, NULL), 6);
  cr_expect_eq(tu_conflicts(b, &list), 6, "%s", list);
  free(list);
  /* A later write of x supersedes its siblings: three records go. */
  for (int i = 0; i < 3; i++)
    tu_act(a, CS_ACTION_UPDATE, "M", docs[i], "{\"x\":3}");
  cr_expect_eq(tu_conflicts(a, NULL), 3);
  cr_expect_gt(sync_through_failures(b, a, 3), 20);
  cr_expect_eq(tu_conflicts(b, &list), 3, "%s", list);
  free(list);
  cs_store_close(a);
  cs_store_close(b);
}
