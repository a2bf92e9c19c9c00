/* Typed batches of actions, and the per-batch document cache under them. */
#include <criterion/criterion.h>
#include <stdio.h>
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

TestSuite(engine_batch, .init = setup, .fini = teardown);

Test(engine_batch, typed_batch_commits_many_actions_at_once) {
  cs_store *a = tu_open(dir, "a");
  cs_batch *bt;
  size_t n;
  cr_assert_eq(cs_batch_begin(&bt, a), 0);
  for (int i = 0; i < 100; i++) {
    char inst[16];
    snprintf(inst, sizeof(inst), "p%d", i);
    cr_assert_eq(cs_batch_set_int(bt, "P", inst, "age", i), 0, "%s", cs_errmsg());
    cr_assert_eq(cs_batch_set_str(bt, "P", inst, "city", "Oslo"), 0);
    cr_assert_eq(cs_batch_set_add(bt, "P", inst, "tags", "a"), 0);
    cr_assert_eq(cs_batch_counter_add(bt, "P", inst, "n", 2), 0);
  }
  cr_expect_eq(cs_batch_set_add(bt, "P", "p1", "age", "x"), CS_EINVAL, "age is a register");
  cr_assert_eq(cs_batch_commit(bt), 0, "%s", cs_errmsg());
  cr_assert_eq(cs_outbox_count(&n, a), 0);
  cr_expect_eq(n, 400);
  char *j = tu_get(a, "P", "p7");
  cr_expect_str_eq(j, "{\"age\":7,\"city\":\"Oslo\",\"n\":2,\"tags\":[\"a\"]}");
  free(j);
  cr_assert_eq(cs_batch_begin(&bt, a), 0);
  cr_assert_eq(cs_batch_set_int(bt, "P", "p7", "age", 99), 0);
  cs_batch_abort(bt);
  j = tu_get(a, "P", "p7");
  cr_expect(strstr(j, "\"age\":7") != NULL, "abort wrote nothing: %s", j);
  free(j);
  cs_store_close(a);
}

/* A batch's document cache keeps short instance names in its slots and
 * longer ones apart; both kinds must survive the cache growing (300
 * instances: it starts with room for 64) and be found again afterwards. */
Test(engine_batch, batch_over_short_and_long_instance_names) {
  cs_store *a = tu_open(dir, "a");
  cs_batch *bt;
  char inst[128];
  const int n = 300;
  cr_assert_eq(cs_batch_begin(&bt, a), 0);
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < n; i++) {
      /* Lengths 30..49 around the 40-byte slot name. */
      int len = snprintf(inst, sizeof(inst), "i%d-", i);
      memset(inst + len, 'x', (size_t)(30 + i % 20 - len));
      inst[30 + i % 20] = '\0';
      cr_assert_eq(cs_batch_counter_add(bt, "P", inst, "n", i + round * 1000), 0, "%s",
                   cs_errmsg());
    }
  cr_assert_eq(cs_batch_commit(bt), 0, "%s", cs_errmsg());
  for (int i = 0; i < n; i++) {
    char want[32], *j;
    int len = snprintf(inst, sizeof(inst), "i%d-", i);
    memset(inst + len, 'x', (size_t)(30 + i % 20 - len));
    inst[30 + i % 20] = '\0';
    snprintf(want, sizeof(want), "{\"n\":%d}", 2 * i + 1000);
    j = tu_get(a, "P", inst);
    cr_expect_str_eq(j, want, "%s", inst);
    free(j);
  }
  cs_store_close(a);
}

/* Prefetching more documents than a cache has room for grows it first:
 * every slot it hands out stays where it is (ASan sees any that moved). */
Test(engine_batch, prefetch_past_the_cache_room_keeps_every_slot) {
  cs_store *a = tu_open(dir, "a");
  cs_model *m = NULL;
  cs_doc_cache c;
  enum { N = 300 };
  char *names[N];
  cs_doc_slot *slots[N];

  tu_act(a, CS_ACTION_CREATE, "P", "i7", "{\"n\":7}");
  for (int i = 0; i < N; i++) {
    char b[16];
    snprintf(b, sizeof(b), "i%d", i);
    names[i] = strdup(b);
  }
  CS_LOCK(a);
  cr_assert_eq(cs__model_get(&m, a, "P"), 0);
  cr_assert_eq(cs__cache_init(&c, m, 1), 0);
  cr_assert_eq(cs__cache_prefetch(&c, a, names, N), 0, "%s", cs_errmsg());
  cr_assert_eq(cs__cache_slots(slots, &c, names, N), 0, "%s", cs_errmsg());
  for (int i = 0; i < N; i++) {
    cr_expect_str_eq(slots[i]->instance, names[i]);
    cr_expect_eq(slots[i]->exists, i == 7, "%s", names[i]);
  }
  cs__cache_dispose(&c);
  CS_UNLOCK(a);
  for (int i = 0; i < N; i++)
    free(names[i]);
  cs_store_close(a);
}

/* Each new model a batch touches is inserted in name order, which moves the
 * store's models (and the models of the batch's earlier caches) in memory. */
Test(engine_batch, batch_over_many_new_models_keeps_each_models_changes) {
  cs_store *a = tu_open(dir, "a");
  cs_batch *bt;
  char model[16], inst[16];
  cr_assert_eq(cs_batch_begin(&bt, a), 0);
  for (int round = 0; round < 2; round++)
    for (int i = 11; i >= 0; i--) {
      snprintf(model, sizeof(model), "M%02d", i);
      snprintf(inst, sizeof(inst), "p%d", round);
      cr_assert_eq(cs_batch_set_int(bt, model, inst, "n", i * 10 + round), 0, "%s", cs_errmsg());
    }
  cr_assert_eq(cs_batch_commit(bt), 0, "%s", cs_errmsg());
  for (int i = 0; i < 12; i++)
    for (int round = 0; round < 2; round++) {
      char want[32], *j;
      snprintf(model, sizeof(model), "M%02d", i);
      snprintf(inst, sizeof(inst), "p%d", round);
      snprintf(want, sizeof(want), "{\"n\":%d}", i * 10 + round);
      j = tu_get(a, model, inst);
      cr_expect_str_eq(j, want, "%s/%s", model, inst);
      free(j);
    }
  cs_store_close(a);
}
