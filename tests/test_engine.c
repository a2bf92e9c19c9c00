/* The engine end to end over the in-process peer: the product guide's flow. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include <time.h>

#include "core/engine.h"
#include "tests/helpers/testutil.h"

static char *dir;
static void setup(void) { dir = tu_tempdir(); }
static void teardown(void) {
  tu_rmrf(dir);
  free(dir);
}

TestSuite(engine, .init = setup, .fini = teardown);

Test(engine, create_get_update_delete) {
  cs_store *a = tu_open(dir, "a");
  cs_buf b = CS_BUF_INIT;
  tu_act(a, CS_ACTION_CREATE, "UserProfile", "profile_123",
         "{\"name\":\"Ada\",\"age\":36,\"interests\":[\"hiking\",\"chess\"],\"visits\":{\"$inc\":2}}");
  json_t *j = tu_get_json(a, "UserProfile", "profile_123");
  cr_expect_str_eq(json_string_value(json_object_get(j, "name")), "Ada");
  cr_expect_eq(json_integer_value(json_object_get(j, "age")), 36);
  cr_expect_eq(json_array_size(json_object_get(j, "interests")), 2);
  cr_expect_eq(json_integer_value(json_object_get(j, "visits")), 2);
  json_decref(j);
  tu_act(a, CS_ACTION_UPDATE, "UserProfile", "profile_123",
         "{\"interests\":{\"$add\":[\"photography\"],\"$remove\":[\"chess\"]},\"visits\":{\"$inc\":-1}}");
  j = tu_get_json(a, "UserProfile", "profile_123");
  json_t *in = json_object_get(j, "interests");
  cr_expect_eq(json_array_size(in), 2);
  cr_expect_str_eq(json_string_value(json_array_get(in, 0)), "hiking");
  cr_expect_str_eq(json_string_value(json_array_get(in, 1)), "photography");
  cr_expect_eq(json_integer_value(json_object_get(j, "visits")), 1);
  json_decref(j);
  tu_act(a, CS_ACTION_DELETE, "UserProfile", "profile_123", NULL);
  cr_expect_eq(cs_get_local_data(&b, a, "UserProfile", "profile_123"), CS_ENOTFOUND);
  cr_expect(strstr(cs_errmsg(), "profile_123") != NULL, "%s", cs_errmsg());
  cr_expect_eq(cs_get_local_data(&b, a, "UserProfile", "nobody"), CS_ENOTFOUND);
  cr_expect(strstr(cs_errmsg(), "not found") != NULL);
  cs_buf_dispose(&b);
  cs_store_close(a);
}

/* The direct JSON writer (conflict records) writes what jansson would:
 * random values, seeded (CS_SEED replays; the seed is printed on failure). */
static uint64_t jw_next(uint64_t *x) {
  *x ^= *x << 13;
  *x ^= *x >> 7;
  *x ^= *x << 17;
  return *x;
}

Test(engine, json_writer_matches_jansson) {
  static const char *const pieces[] = {"a", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f", "\x7f",
                                       "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", " ", "\b", "\f", "\r"};
  static const double edges[] = {0.0, -0.0, 1.0, -1.5, 1e20, 1e21, 1e-7, 123456789012345678.0,
                                 0.1, 5e-324, 1.7976931348623157e308, 1e17, 1e16};
  const char *env = getenv("CS_SEED");
  uint64_t seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL), x = seed | 1;
  for (int it = 0; it < tu_scale(20000); it++) {
    cs_val v = {0};
    char str[64];
    size_t len = 0;
    switch (jw_next(&x) % 5) {
    case 0:
      v.type = CS_VAL_INT;
      v.u.i = (int64_t)jw_next(&x) >> (jw_next(&x) % 64);
      break;
    case 1: {
      uint64_t bits = jw_next(&x);
      v.type = CS_VAL_DOUBLE;
      if (bits % 3 == 0)
        memcpy(&v.u.d, &bits, 8);
      else if (bits % 3 == 1)
        v.u.d = edges[(bits >> 8) % (sizeof(edges) / sizeof(edges[0]))];
      else
        v.u.d = (double)(int64_t)(bits >> 40) / 1024.0;
      break;
    }
    case 2:
      v.type = CS_VAL_BOOL;
      v.u.b = jw_next(&x) & 1;
      break;
    default:
      for (int k = (int)(jw_next(&x) % 8); k > 0; k--) {
        const char *p = pieces[jw_next(&x) % (sizeof(pieces) / sizeof(pieces[0]))];
        memcpy(str + len, p, strlen(p));
        len += strlen(p);
      }
      str[len] = 0;
      cr_assert_eq(cs__val_str(&v, str, len), 0);
      if (jw_next(&x) % 4 == 0)
        v.type = CS_VAL_BYTES;
    }
    cs_buf mine = CS_BUF_INIT, theirs = CS_BUF_INIT;
    json_t *j = cs__val_to_json(&v);
    cr_assert_not_null(j);
    cr_assert_eq(cs__json_put_val(&mine, &v), 0);
    cr_assert_eq(cs__json_dump(&theirs, j), 0);
    if (strcmp(mine.ptr, theirs.ptr) != 0) {
      fprintf(stderr, "seed %llu (replay with CS_SEED=%llu), iteration %d\n",
              (unsigned long long)seed, (unsigned long long)seed, it);
      cr_assert(0, "direct %s, jansson %s", mine.ptr, theirs.ptr);
    }
    json_decref(j);
    cs__val_dispose(&v);
    cs_buf_dispose(&mine);
    cs_buf_dispose(&theirs);
  }
}

/* A listed conflict is jansson's canonical form of itself (compact, keys
 * sorted): parsing and dumping it again changes nothing. */
static void expect_canonical(const char *list) {
  json_t *arr = json_loads(list, 0, NULL);
  cr_assert_not_null(arr, "%s", list);
  char *again = json_dumps(arr, JSON_COMPACT | JSON_SORT_KEYS);
  cr_expect_str_eq(again, list);
  free(again);
  json_decref(arr);
}

/* The guide's scenario: two devices edit profile_123 offline. */
Test(engine, guide_scenario_one_conflict_then_resolved_everywhere) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b"), *hub = tu_open(dir, "hub");
  char *ca, *cb, *ja, *jb;
  tu_act(a, CS_ACTION_CREATE, "UserProfile", "profile_123",
         "{\"name\":\"Ada\",\"city\":\"Berlin\",\"interests\":[\"hiking\",\"climbing\"]}");
  tu_sync(a, hub);
  tu_sync(b, hub);
  /* offline edits */
  tu_act(a, CS_ACTION_UPDATE, "UserProfile", "profile_123",
         "{\"interests\":{\"$add\":[\"photography\"]},\"city\":\"Lisbon\"}");
  tu_act(b, CS_ACTION_UPDATE, "UserProfile", "profile_123",
         "{\"interests\":{\"$remove\":[\"hiking\"]},\"city\":\"Paris\"}");
  tu_sync(a, hub);
  tu_sync(b, hub);
  tu_sync(a, hub);
  cr_assert_eq(tu_conflicts(a, &ca), 1, "%s", ca);
  cr_assert_eq(tu_conflicts(b, &cb), 1, "%s", cb);
  expect_canonical(ca);
  json_t *x = json_loads(ca, 0, NULL), *y = json_loads(cb, 0, NULL);
  const char *id = json_string_value(json_object_get(json_array_get(x, 0), "id"));
  cr_expect_str_eq(id, json_string_value(json_object_get(json_array_get(y, 0), "id")),
                   "same conflict id on both replicas");
  cr_expect_str_eq(json_string_value(json_object_get(json_array_get(x, 0), "field")), "city");
  cr_expect_eq(json_array_size(json_object_get(json_array_get(x, 0), "siblings")), 2);
  ja = tu_get(a, "UserProfile", "profile_123");
  jb = tu_get(b, "UserProfile", "profile_123");
  cr_expect_str_eq(ja, jb, "same visible state on both");
  cr_expect(strstr(ja, "[\"climbing\",\"photography\"]") != NULL, "merged interests: %s", ja);
  free(ja);
  free(jb);
  cs_resolution r = {CS_RESOLVE_VALUE, 0, "\"Porto\""};
  cr_assert_eq(cs_resolve_conflict(b, id, &r), 0, "%s", cs_errmsg());
  cr_expect_eq(tu_conflicts(b, NULL), 0);
  tu_sync(b, hub);
  tu_sync(a, hub);
  cr_expect_eq(tu_conflicts(a, NULL), 0, "resolution reached a");
  cr_expect_eq(tu_conflicts(hub, NULL), 0, "resolution reached the hub");
  ja = tu_get(a, "UserProfile", "profile_123");
  jb = tu_get(b, "UserProfile", "profile_123");
  char *jh = tu_get(hub, "UserProfile", "profile_123");
  cr_expect_str_eq(ja, jb);
  cr_expect_str_eq(ja, jh);
  cr_expect(strstr(ja, "\"city\":\"Porto\"") != NULL, "%s", ja);
  free(ja);
  free(jb);
  free(jh);
  json_decref(x);
  json_decref(y);
  free(ca);
  free(cb);
  cs_store_close(a);
  cs_store_close(b);
  cs_store_close(hub);
}

Test(engine, same_value_written_concurrently_is_no_conflict) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  tu_act(a, CS_ACTION_CREATE, "M", "i", "{\"x\":1}");
  tu_sync(a, b);
  tu_act(a, CS_ACTION_UPDATE, "M", "i", "{\"x\":2}");
  tu_act(b, CS_ACTION_UPDATE, "M", "i", "{\"x\":2}");
  tu_sync(a, b);
  cr_expect_eq(tu_conflicts(a, NULL), 0);
  cr_expect_eq(tu_conflicts(b, NULL), 0);
  cs_store_close(a);
  cs_store_close(b);
}

Test(engine, delete_versus_update_then_restore) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  char *c;
  cs_buf out = CS_BUF_INIT;
  tu_act(a, CS_ACTION_CREATE, "M", "i", "{\"x\":1,\"y\":\"k\"}");
  tu_sync(a, b);
  tu_act(a, CS_ACTION_DELETE, "M", "i", NULL);
  tu_act(b, CS_ACTION_UPDATE, "M", "i", "{\"x\":5}");
  tu_sync(a, b);
  cr_assert_eq(tu_conflicts(a, &c), 1, "%s", c);
  expect_canonical(c);
  cr_expect(strstr(c, "delete_update") != NULL, "%s", c);
  cr_expect_eq(cs_get_local_data(&out, a, "M", "i"), CS_ENOTFOUND, "deleted by default");
  json_t *arr = json_loads(c, 0, NULL);
  const char *id = json_string_value(json_object_get(json_array_get(arr, 0), "id"));
  cs_resolution pick = {CS_RESOLVE_PICK, 0, NULL};
  cr_expect_eq(cs_resolve_conflict(a, id, &pick), CS_EINVAL, "pick does not fit delete_update");
  cs_resolution r = {CS_RESOLVE_RESTORE, 0, NULL};
  cr_assert_eq(cs_resolve_conflict(a, id, &r), 0, "%s", cs_errmsg());
  tu_sync(a, b);
  char *ja = tu_get(a, "M", "i"), *jb = tu_get(b, "M", "i");
  cr_expect_str_eq(ja, jb);
  cr_expect(strstr(ja, "\"x\":5") != NULL, "the concurrent edit was kept: %s", ja);
  cr_expect_eq(tu_conflicts(b, NULL), 0);
  free(ja);
  free(jb);
  free(c);
  json_decref(arr);
  cs_buf_dispose(&out);
  cs_store_close(a);
  cs_store_close(b);
}

Test(engine, chain_and_star_converge) {
  enum { N = 4 };
  cs_store *s[N];
  char name[8];
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof(name), "s%d", i);
    s[i] = tu_open(dir, name);
    char inst[16], data[64];
    snprintf(inst, sizeof(inst), "doc%d", i);
    snprintf(data, sizeof(data), "{\"owner\":%d,\"tags\":[\"t%d\"]}", i, i);
    tu_act(s[i], CS_ACTION_CREATE, "Doc", inst, data);
    tu_act(s[i], CS_ACTION_UPDATE, "Doc", "shared",
           i == 0 ? "{\"tags\":{\"$add\":[\"a\"]}}" : "{\"tags\":{\"$add\":[\"b\"]}}");
  }
  /* chain 0-1-2-3, twice over so everything travels both ways */
  for (int round = 0; round < 2; round++)
    for (int i = 0; i + 1 < N; i++)
      tu_sync(s[i], s[i + 1]);
  for (int i = N - 2; i >= 0; i--)
    tu_sync(s[i], s[i + 1]);
  for (int d = 0; d < N; d++) {
    char inst[16];
    snprintf(inst, sizeof(inst), "doc%d", d);
    char *first = tu_get(s[0], "Doc", inst);
    for (int i = 1; i < N; i++) {
      char *other = tu_get(s[i], "Doc", inst);
      cr_expect_str_eq(first, other, "store %d, %s", i, inst);
      free(other);
    }
    free(first);
  }
  /* star: everyone through s0 */
  tu_act(s[3], CS_ACTION_UPDATE, "Doc", "shared", "{\"tags\":{\"$add\":[\"star\"]}}");
  for (int i = 1; i < N; i++)
    tu_sync(s[i], s[0]);
  for (int i = 1; i < N; i++)
    tu_sync(s[i], s[0]);
  char *hub = tu_get(s[0], "Doc", "shared");
  cr_expect(strstr(hub, "star") != NULL, "%s", hub);
  for (int i = 1; i < N; i++) {
    char *o = tu_get(s[i], "Doc", "shared");
    cr_expect_str_eq(hub, o);
    free(o);
  }
  free(hub);
  for (int i = 0; i < N; i++)
    cs_store_close(s[i]);
}

Test(engine, repeated_sync_changes_nothing) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  cs_peer *p;
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  tu_act(a, CS_ACTION_CREATE, "M", "i", "{\"x\":1}");
  tu_sync(a, b);
  uint64_t fb = tu_fingerprint_data(b);
  cr_assert_eq(cs_peer_local(&p, b), 0);
  cr_assert_eq(cs_sync(&r, a, p), 0);
  cr_expect_eq(r.sent, 0, "nothing re-sent once acknowledged");
  cr_expect_eq(r.received, 0, "nothing echoed back");
  cr_expect_eq(tu_fingerprint_data(b), fb, "the peer stored nothing new");
  cs_sync_result_dispose(&r);
  cs_peer_free(p);
  cs_store_close(a);
  cs_store_close(b);
}

/* A peer that loses the answer: the request was applied, the answer never
 * arrives. Syncing again must converge without duplicates. */
typedef struct lossy_peer {
  cs_peer base;
  cs_peer *inner;
  int fail_next;
  int calls;
} lossy_peer;

static int lossy_exchange(cs_peer *self, cs_buf *resp, const char *path, const uint8_t *req,
                          size_t len) {
  lossy_peer *lp = (lossy_peer *)self;
  lp->calls++;
  int rc = lp->inner->exchange(lp->inner, resp, path, req, len);
  if (rc == 0 && lp->fail_next > 0) {
    lp->fail_next--;
    return CS_ENETWORK; /* delivered, but the answer is lost */
  }
  return rc;
}

Test(engine, interrupted_and_duplicated_sync_is_harmless) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  lossy_peer lp = {{CS_PEER_VERSION, lossy_exchange, NULL}, NULL, 1, 0};
  cr_assert_eq(cs_peer_local(&lp.inner, b), 0);
  tu_act(a, CS_ACTION_CREATE, "M", "i", "{\"n\":{\"$inc\":5},\"s\":[\"x\"]}");
  tu_act(b, CS_ACTION_CREATE, "M", "j", "{\"v\":1}");
  cr_expect_neq(cs_sync(NULL, a, &lp.base), 0, "the first answer is lost");
  cr_assert_eq(cs_sync(NULL, a, &lp.base), 0, "%s", cs_errmsg());
  cr_assert_eq(cs_sync(NULL, a, &lp.base), 0, "%s", cs_errmsg());
  char *ja = tu_get(a, "M", "i"), *jb = tu_get(b, "M", "i");
  cr_expect_str_eq(ja, jb);
  cr_expect(strstr(ja, "\"n\":5") != NULL, "the counter was not doubled: %s", ja);
  free(ja);
  free(jb);
  ja = tu_get(a, "M", "j");
  free(ja);
  cs_peer_free(lp.inner);
  cs_store_close(a);
  cs_store_close(b);
}

Test(engine, partial_sync_by_cursor_and_model) {
  cs_store *srv = tu_open(dir, "srv"), *cli = tu_open(dir, "cli");
  cs_peer *p;
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  const char *only_a[] = {"A"};
  cs_buf out = CS_BUF_INIT;
  tu_act(srv, CS_ACTION_CREATE, "A", "a1", "{\"v\":1}");
  tu_act(srv, CS_ACTION_CREATE, "B", "b1", "{\"v\":1}");
  cr_assert_eq(cs_peer_local(&p, srv), 0);
  cr_assert_eq(cs_partial_sync(&r, cli, p, 0, only_a, 1), 0, "%s", cs_errmsg());
  uint64_t cursor = r.cursor;
  cr_expect_gt(cursor, 0);
  cr_expect_eq(r.received, 1);
  cr_expect_eq(cs_get_local_data(&out, cli, "B", "b1"), CS_ENOTFOUND, "model B not pulled");
  tu_act(srv, CS_ACTION_CREATE, "A", "a2", "{\"v\":2}");
  tu_act(srv, CS_ACTION_UPDATE, "B", "b1", "{\"v\":2}");
  cs_sync_result_dispose(&r);
  r = (cs_sync_result)CS_SYNC_RESULT_INIT;
  cr_assert_eq(cs_partial_sync(&r, cli, p, cursor, only_a, 1), 0, "%s", cs_errmsg());
  cr_expect_eq(r.received, 1, "only a2 changed since the cursor");
  char *j = tu_get(cli, "A", "a2");
  cr_expect_str_eq(j, "{\"v\":2}");
  free(j);
  /* a cursor this store never got from this peer */
  cs_sync_result_dispose(&r);
  r = (cs_sync_result)CS_SYNC_RESULT_INIT;
  cr_expect_eq(cs_partial_sync(&r, cli, p, r.cursor + 1000000, only_a, 1), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "cursor") != NULL, "%s", cs_errmsg());
  cs_sync_result_dispose(&r);
  cs_buf_dispose(&out);
  cs_peer_free(p);
  cs_store_close(srv);
  cs_store_close(cli);
}

Test(engine, bad_input_changes_nothing) {
  cs_store *a = tu_open(dir, "a");
  cs_field_def defs[] = {{"interests", CS_FIELD_SET, CS_POLICY_SURFACE},
                         {"visits", CS_FIELD_COUNTER, CS_POLICY_SURFACE}};
  cr_assert_eq(cs_define_model(a, "UserProfile", defs, 2), 0, "%s", cs_errmsg());
  tu_act(a, CS_ACTION_CREATE, "UserProfile", "p", "{\"name\":\"x\"}");
  uint64_t before = tu_fingerprint(a);
  static const struct {
    cs_action_type t;
    const char *model, *inst, *data, *msg;
    int code;
  } cases[] = {
      {CS_ACTION_UPDATE, "UserProfile", "p", "{\"name\":", "bad JSON", CS_EINVAL},
      {CS_ACTION_UPDATE, "UserProfile", "p", "[1,2]", "must be a JSON object", CS_EINVAL},
      {CS_ACTION_UPDATE, "UserProfile", "p", "{\"interests\":\"hiking\"}", "is a set", CS_EINVAL},
      {CS_ACTION_UPDATE, "UserProfile", "p", "{\"visits\":3}", "is a counter", CS_EINVAL},
      {CS_ACTION_UPDATE, "UserProfile", "p", "{\"name\":[\"a\"]}", "is a register", CS_EINVAL},
      {CS_ACTION_UPDATE, "UserProfile", "p", "{\"x\":{\"$mul\":2}}", "unknown operator",
       CS_EINVAL},
      {CS_ACTION_UPDATE, "UserProfile", "p", "{\"x\":{\"a\":1}}", "unknown operator", CS_EINVAL},
      {CS_ACTION_UPDATE, "UserProfile", "p", "{\"visits\":{\"$inc\":\"1\"}}", "integer",
       CS_EINVAL},
      {CS_ACTION_UPDATE, "UserProfile", "p", "{\"interests\":[[1]]}", "array", CS_EINVAL},
      {CS_ACTION_UPDATE, "UserProfile", "p", "{\"a\":1,\"a\":2}", "bad JSON", CS_EINVAL},
      {CS_ACTION_UPDATE, "", "p", "{}", "model name is empty", CS_EINVAL},
      {CS_ACTION_UPDATE, "UserProfile", "", "{}", "instance id is empty", CS_EINVAL},
      {CS_ACTION_UPDATE, "UserProfile", "p", NULL, "data is required", CS_EINVAL},
      {CS_ACTION_CREATE, "UserProfile", "p", "{}", "exists", CS_EEXISTS},
      {CS_ACTION_DELETE, "UserProfile", "ghost", NULL, "not found", CS_ENOTFOUND},
      {(cs_action_type)9, "UserProfile", "p", "{}", "unknown action type", CS_EINVAL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    cs_action act = {cases[i].t, cases[i].model, cases[i].inst, cases[i].data};
    int rc = cs_queue_offline_action(a, &act);
    cr_expect_eq(rc, cases[i].code, "case %zu: got %d (%s)", i, rc, cs_errmsg());
    cr_expect(strstr(cs_errmsg(), cases[i].msg) != NULL, "case %zu: message '%s' lacks '%s'", i,
              cs_errmsg(), cases[i].msg);
    cr_expect_eq(tu_fingerprint(a), before, "case %zu changed the store", i);
  }
  /* schema conflicts */
  cs_field_def bad[] = {{"interests", CS_FIELD_COUNTER, CS_POLICY_SURFACE}};
  cr_expect_eq(cs_define_model(a, "UserProfile", bad, 1), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "already a set") != NULL, "%s", cs_errmsg());
  cr_expect_eq(cs_store_locally(a, "UserProfile", "p", "{oops"), CS_EINVAL);
  /* Text that is not UTF-8, through every door that takes a C string. */
  cs_action bad_inst = {CS_ACTION_UPDATE, "UserProfile", "p\xff", "{\"x\":1}"};
  cr_expect_eq(cs_queue_offline_action(a, &bad_inst), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "instance id is not UTF-8") != NULL, "%s", cs_errmsg());
  cs_action bad_model = {CS_ACTION_UPDATE, "User\xc0\x80", "p", "{\"x\":1}"};
  cr_expect_eq(cs_queue_offline_action(a, &bad_model), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "model name is not UTF-8") != NULL, "%s", cs_errmsg());
  cs_batch *bt;
  cr_assert_eq(cs_batch_begin(&bt, a), 0);
  cr_expect_eq(cs_batch_set_str(bt, "UserProfile", "p", "name", "bad\xfe"), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "value is not UTF-8") != NULL, "%s", cs_errmsg());
  cr_expect_eq(cs_batch_set_add(bt, "UserProfile", "p", "tags\xed\xa0\x80", "x"), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "field name is not UTF-8") != NULL, "%s", cs_errmsg());
  cr_expect_eq(cs_batch_commit(bt), 0);
  cs_field_def bad_def[] = {{"f\xff", CS_FIELD_SET, CS_POLICY_SURFACE}};
  cr_expect_eq(cs_define_model(a, "UserProfile", bad_def, 1), CS_EINVAL);
  cr_expect(strstr(cs_errmsg(), "not UTF-8") != NULL, "%s", cs_errmsg());
  cr_expect_eq(cs_resolve_conflict(a, "00112233445566778899aabbccddeeff",
                                   &(cs_resolution){CS_RESOLVE_PICK, 0, NULL}),
               CS_ENOTFOUND);
  cr_expect_eq(cs_resolve_conflict(a, "xyz", &(cs_resolution){CS_RESOLVE_PICK, 0, NULL}),
               CS_EINVAL);
  cr_expect_eq(tu_fingerprint(a), before);
  cs_store_close(a);
}

Test(engine, baseline_is_visible_but_superseded_and_never_uploaded) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  cs_buf out = CS_BUF_INIT;
  cr_assert_eq(cs_store_locally(a, "M", "i", "{\"x\":1,\"y\":\"base\"}"), 0);
  char *j = tu_get(a, "M", "i");
  cr_expect_str_eq(j, "{\"x\":1,\"y\":\"base\"}");
  free(j);
  tu_act(a, CS_ACTION_UPDATE, "M", "i", "{\"y\":\"mine\"}");
  j = tu_get(a, "M", "i");
  cr_expect_str_eq(j, "{\"x\":1,\"y\":\"mine\"}");
  free(j);
  tu_sync(a, b);
  j = tu_get(b, "M", "i");
  cr_expect_str_eq(j, "{\"y\":\"mine\"}", "the baseline stays on its device");
  free(j);
  cs_buf_dispose(&out);
  cs_store_close(a);
  cs_store_close(b);
}

Test(engine, reopen_keeps_identity_and_data) {
  cs_store *a = tu_open(dir, "a");
  char k1[65], k2[65];
  cs_store_public_key(k1, a);
  tu_act(a, CS_ACTION_CREATE, "M", "i", "{\"x\":1}");
  cs_store_close(a);
  a = tu_open(dir, "a");
  cs_store_public_key(k2, a);
  cr_expect_str_eq(k1, k2);
  char *j = tu_get(a, "M", "i");
  cr_expect_str_eq(j, "{\"x\":1}");
  free(j);
  /* next writes do not reuse dots: a second replica sees both writes */
  tu_act(a, CS_ACTION_UPDATE, "M", "i", "{\"y\":2}");
  cs_store *b = tu_open(dir, "b");
  tu_sync(b, a);
  j = tu_get(b, "M", "i");
  cr_expect_str_eq(j, "{\"x\":1,\"y\":2}");
  free(j);
  cs_store_close(a);
  cs_store_close(b);
}

Test(engine, copied_store_takes_a_new_identity) {
  cs_store *a = tu_open(dir, "a");
  char k1[65], k2[65], cmd[1024];
  cs_store_public_key(k1, a);
  tu_act(a, CS_ACTION_CREATE, "M", "i", "{\"x\":1}");
  cs_store_close(a);
  snprintf(cmd, sizeof(cmd), "cp -a '%s/a' '%s/copy'", dir, dir);
  cr_assert_eq(system(cmd), 0);
  cs_store *c = tu_open(dir, "copy");
  cs_store_public_key(k2, c);
  cr_expect_str_neq(k1, k2, "a restored copy must not write as the original");
  /* both write; a third replica keeps both writes */
  a = tu_open(dir, "a");
  tu_act(a, CS_ACTION_UPDATE, "M", "i", "{\"from_a\":1}");
  tu_act(c, CS_ACTION_UPDATE, "M", "i", "{\"from_copy\":1}");
  cs_store *z = tu_open(dir, "z");
  tu_sync(z, a);
  tu_sync(z, c);
  char *j = tu_get(z, "M", "i");
  cr_expect(strstr(j, "from_a") && strstr(j, "from_copy"), "no write lost: %s", j);
  free(j);
  cs_store_close(a);
  cs_store_close(c);
  cs_store_close(z);
}

Test(engine, cleanup_frees_acknowledged_log_and_keeps_deleted_docs) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  cs_cleanup_stats st;
  for (int i = 0; i < 200; i++) {
    char inst[16];
    snprintf(inst, sizeof(inst), "d%d", i);
    tu_act(a, CS_ACTION_CREATE, "M", inst, "{\"payload\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
    if (i % 2)
      tu_act(a, CS_ACTION_DELETE, "M", inst, NULL);
  }
  cr_assert_eq(cs_cleanup(&st, a), 0, "%s", cs_errmsg());
  cr_expect_eq(st.log_entries_deleted, 0, "no peer has acknowledged anything yet");
  tu_sync(a, b);
  tu_sync(a, b);
  cr_assert_eq(cs_cleanup(&st, a), 0, "%s", cs_errmsg());
  cr_expect_eq(st.log_entries_deleted, 300);
  cr_expect_eq(st.documents_purged, 0, "deleted instances are kept");
  cs_buf gone = CS_BUF_INIT;
  cr_expect_eq(cs_get_local_data(&gone, a, "M", "d1"), CS_ENOTFOUND, "still reads as deleted");
  cs_buf_dispose(&gone);
  cr_expect_lt(st.bytes_after, st.bytes_before, "%llu -> %llu",
               (unsigned long long)st.bytes_after, (unsigned long long)st.bytes_before);
  char *j = tu_get(a, "M", "d0");
  free(j);
  /* a new replica behind the compacted log gets whole states */
  cs_store *c = tu_open(dir, "c");
  tu_sync(c, a);
  j = tu_get(c, "M", "d0");
  cr_expect_str_eq(j, "{\"payload\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}");
  free(j);
  cs_buf out = CS_BUF_INIT;
  cr_expect_eq(cs_get_local_data(&out, c, "M", "d1"), CS_ENOTFOUND);
  cs_buf_dispose(&out);
  cs_store_close(a);
  cs_store_close(b);
  cs_store_close(c);
}

/* A peer that fails n times, to drive the scheduler's backoff. */
typedef struct failing_peer {
  cs_peer base;
  cs_peer *inner;
  int failures_left;
} failing_peer;

static int failing_exchange(cs_peer *self, cs_buf *resp, const char *path, const uint8_t *req,
                            size_t len) {
  failing_peer *fp = (failing_peer *)self;
  if (fp->failures_left > 0) {
    fp->failures_left--;
    return cs__error(CS_ENETWORK, "simulated network failure");
  }
  return fp->inner->exchange(fp->inner, resp, path, req, len);
}

Test(engine, scheduler_backs_off_then_recovers) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  failing_peer fp = {{CS_PEER_VERSION, failing_exchange, NULL}, NULL, 3};
  cs_scheduler_options o = CS_SCHEDULER_OPTIONS_INIT;
  cs_scheduler *sch;
  cs_sync_status st;
  o.interval_ms = 60000;
  o.backoff_base_ms = 100;
  o.backoff_max_ms = 350;
  o.jitter = 0;
  cr_assert_eq(cs_peer_local(&fp.inner, b), 0);
  tu_act(a, CS_ACTION_CREATE, "M", "i", "{\"x\":1}");
  cr_assert_eq(cs_scheduler_new(&sch, a, &fp.base, &o, NULL, NULL), 0);
  uint64_t t = 1000000000ull; /* a synthetic monotonic time */
  cr_expect_eq(cs_scheduler_tick(sch, t), CS_ENETWORK);
  cs_scheduler_status(&st, sch);
  cr_expect_eq(st.state, CS_SYNC_OFFLINE);
  cr_expect_eq(st.failures, 1);
  cr_expect_eq(st.next_attempt_ms, t + 100);
  cr_expect_eq(cs_scheduler_tick(sch, t + 50), 0, "not due yet");
  cr_expect_eq(cs_scheduler_tick(sch, t + 100), CS_ENETWORK);
  cs_scheduler_status(&st, sch);
  cr_expect_eq(st.next_attempt_ms, t + 100 + 200, "doubled");
  cr_expect_eq(cs_scheduler_tick(sch, t + 300), CS_ENETWORK);
  cs_scheduler_status(&st, sch);
  cr_expect_eq(st.next_attempt_ms, t + 300 + 350, "capped");
  cr_expect_eq(st.pending, 1);
  cr_expect_eq(cs_scheduler_tick(sch, t + 650), 0);
  cs_scheduler_status(&st, sch);
  cr_expect_eq(st.state, CS_SYNC_IDLE);
  cr_expect_eq(st.failures, 0);
  cr_expect_eq(st.pending, 0);
  cr_expect_gt(st.last_success_ms, 0);
  cr_expect_eq(st.next_attempt_ms, t + 650 + 60000, "periodic interval after success");
  cs_scheduler_notify_online(sch);
  cs_scheduler_status(&st, sch);
  cr_expect_eq(cs_scheduler_tick(sch, t + 700), 0, "on connection: runs at once");
  cs_scheduler_free(sch);
  cs_peer_free(fp.inner);
  cs_store_close(a);
  cs_store_close(b);
}

Test(engine, scheduler_thread_syncs_in_background) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  cs_peer *p;
  cs_scheduler *sch;
  cs_scheduler_options o = CS_SCHEDULER_OPTIONS_INIT;
  cs_sync_status st;
  o.interval_ms = 20;
  cr_assert_eq(cs_peer_local(&p, b), 0);
  tu_act(a, CS_ACTION_CREATE, "M", "bg", "{\"x\":1}");
  cr_assert_eq(cs_scheduler_new(&sch, a, p, &o, NULL, NULL), 0);
  cr_assert_eq(cs_scheduler_start(sch), 0);
  cs_buf out = CS_BUF_INIT;
  int rc = CS_ENOTFOUND;
  for (int i = 0; i < 500 && rc != 0; i++) {
    struct timespec ts = {0, 10 * 1000000L};
    nanosleep(&ts, NULL);
    cs__buf_clear(&out);
    rc = cs_get_local_data(&out, b, "M", "bg");
  }
  cr_expect_eq(rc, 0, "the background thread delivered the action");
  cs_scheduler_stop(sch);
  cs_scheduler_status(&st, sch);
  cr_expect_neq(st.state, CS_SYNC_ERROR);
  cs_buf_dispose(&out);
  cs_scheduler_free(sch);
  cs_peer_free(p);
  cs_store_close(a);
  cs_store_close(b);
}

Test(engine, corrupt_document_is_named_and_others_stay_readable) {
  cs_store *a = tu_open(dir, "a");
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT, out = CS_BUF_INIT, report = CS_BUF_INIT;
  cs_wbatch *b;
  tu_act(a, CS_ACTION_CREATE, "M", "good", "{\"x\":1}");
  tu_act(a, CS_ACTION_CREATE, "M", "bad", "{\"x\":2}");
  /* flip bytes in the stored state of "bad" */
  cr_assert_eq(cs__key_doc(&key, "M", "bad"), 0);
  cr_assert_eq(cs__db_get(&val, a->db, CS_CF_DOCS, key.ptr, key.size), 0);
  for (size_t i = 9; i < val.size; i += 3)
    val.ptr[i] ^= 0x5a;
  cr_assert_eq(cs__wbatch_new(&b, a->db), 0);
  cs__wbatch_put(b, CS_CF_DOCS, key.ptr, key.size, val.ptr, val.size);
  cr_assert_eq(cs__db_write(a->db, b, true), 0);
  cs__wbatch_free(b);
  cr_expect_eq(cs_get_local_data(&out, a, "M", "bad"), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "M/bad") != NULL, "names the key: %s", cs_errmsg());
  char *j = tu_get(a, "M", "good");
  cr_expect_str_eq(j, "{\"x\":1}", "the other document stays readable");
  free(j);
  cr_expect_eq(cs_check(&report, a), CS_ECORRUPT);
  cr_expect(strstr(report.ptr, "\"ok\":false") != NULL, "%s", report.ptr);
  cr_expect(strstr(cs_errmsg(), "failed to decode") != NULL, "%s", cs_errmsg());
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  cs_buf_dispose(&out);
  cs_buf_dispose(&report);
  cs_store_close(a);
}

/* A merge reads the documents it touches in one batch: one that does not
 * decode fails the merge, naming it, and nothing is written. */
Test(engine, a_merge_into_a_corrupt_document_fails_and_names_it) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT;
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  cs_peer *p;
  cs_wbatch *wb;
  tu_act(a, CS_ACTION_CREATE, "M", "good", "{\"x\":1}");
  tu_act(a, CS_ACTION_CREATE, "M", "bad", "{\"x\":2}");
  tu_sync(b, a);
  tu_act(b, CS_ACTION_UPDATE, "M", "good", "{\"x\":3}");
  tu_act(b, CS_ACTION_UPDATE, "M", "bad", "{\"x\":4}");
  cr_assert_eq(cs__key_doc(&key, "M", "bad"), 0);
  cr_assert_eq(cs__db_get(&val, a->db, CS_CF_DOCS, key.ptr, key.size), 0);
  val.size = 12; /* the cursor and a few bytes of the state */
  cr_assert_eq(cs__wbatch_new(&wb, a->db), 0);
  cs__wbatch_put(wb, CS_CF_DOCS, key.ptr, key.size, val.ptr, val.size);
  cr_assert_eq(cs__db_write(a->db, wb, true), 0);
  cs__wbatch_free(wb);
  uint64_t before = tu_fingerprint_data(a);
  cr_assert_eq(cs_peer_local(&p, a), 0);
  cr_expect_neq(cs_sync(&r, b, p), 0);
  cr_expect(strstr(cs_errmsg(), "M/bad") != NULL, "names the document: %s", cs_errmsg());
  cr_expect_eq(tu_fingerprint_data(a), before, "nothing merged");
  char *j = tu_get(a, "M", "good");
  cr_expect_str_eq(j, "{\"x\":1}");
  free(j);
  cs_sync_result_dispose(&r);
  cs_peer_free(p);
  cs_buf_dispose(&key);
  cs_buf_dispose(&val);
  cs_store_close(a);
  cs_store_close(b);
}

/* A damaged log run is found while the request is read from the log: the
 * sync fails naming it, and the peer receives none of it. */
Test(engine, damaged_log_run_fails_the_sync_and_names_it) {
  cs_store *a = tu_open(dir, "a"), *hub = tu_open(dir, "hub");
  cs_buf lo = CS_BUF_INIT, hi = CS_BUF_INIT, out = CS_BUF_INIT;
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  cs_peer *p;
  cs_iter *it;
  cs_wbatch *b;
  tu_act(a, CS_ACTION_CREATE, "M", "x", "{\"v\":1}");
  tu_sync(a, hub); /* the hub is known: later syncs read the log */
  tu_act(a, CS_ACTION_UPDATE, "M", "x", "{\"v\":2}");
  cr_assert_eq(cs__buf_put(&lo, "", 0), 0);
  cr_assert_eq(cs__buf_put(&hi, "\xff\xff", 2), 0);
  cr_assert_eq(cs__iter_new(&it, a->db, CS_CF_LOG, lo.ptr, 0, hi.ptr, hi.size), 0);
  cr_assert_eq(cs__wbatch_new(&b, a->db), 0);
  for (cs__iter_seek(it, lo.ptr, 0); cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it);
    cs__wbatch_put(b, CS_CF_LOG, k.ptr, k.len, "\x01\x02junk", 6);
  }
  cs__iter_free(it);
  cr_assert_eq(cs__db_write(a->db, b, true), 0);
  cs__wbatch_free(b);
  cr_assert_eq(cs_peer_local(&p, hub), 0);
  cr_expect_eq(cs_sync(&r, a, p), CS_ECORRUPT);
  cr_expect(strstr(cs_errmsg(), "log of model 'M'") != NULL, "%s", cs_errmsg());
  cr_expect_eq(cs_get_local_data(&out, hub, "M", "x"), 0);
  cr_expect(strstr(out.ptr, "\"v\":1") != NULL, "%s", out.ptr);
  cs_peer_free(p);
  cs_sync_result_dispose(&r);
  cs_buf_dispose(&lo);
  cs_buf_dispose(&hi);
  cs_buf_dispose(&out);
  cs_store_close(a);
  cs_store_close(hub);
}

/* A deleted instance written again after a cleanup reads the same on every
 * replica: the write restores what the delete kept (fields, counters), so a
 * replica that had purged the document would read it without them. */
Test(engine, a_write_after_cleanup_restores_the_same_everywhere) {
  cs_store *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  cs_cleanup_stats st;
  tu_act(a, CS_ACTION_CREATE, "M", "x", "{\"f\":\"old\",\"n\":{\"$inc\":2}}");
  tu_sync(a, b);
  tu_act(a, CS_ACTION_DELETE, "M", "x", NULL);
  tu_sync(a, b);
  tu_sync(b, a);
  cr_assert_eq(cs_cleanup(&st, a), 0, "%s", cs_errmsg());
  cr_assert_eq(cs_cleanup(&st, b), 0, "%s", cs_errmsg());
  tu_act(b, CS_ACTION_UPDATE, "M", "x", "{\"g\":1}");
  tu_sync(a, b);
  char *ja = tu_get(a, "M", "x"), *jb = tu_get(b, "M", "x");
  cr_expect_str_eq(ja, jb);
  cr_expect(strstr(ja, "\"f\":\"old\"") && strstr(ja, "\"n\":2"), "%s", ja);
  free(ja);
  free(jb);
  cs_store_close(a);
  cs_store_close(b);
}
