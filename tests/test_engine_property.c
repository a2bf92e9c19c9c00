/*
 * Randomized convergence through the public API: several stores apply random
 * actions and sync in random pairs over peers that lose answers, resolve
 * conflicts, partial-sync and clean up; at quiescence every store reads the
 * same for every instance and lists the same conflicts.
 *
 * Seeded and replayable: CS_SEED=<seed> runs one schedule; the seed of a
 * failing schedule is printed. CS_ENGINE_SCHEDULES=N runs N schedules.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "transport/transport.h"
#include "tests/helpers/testutil.h"

void cs__peer_forget(const cs_peer *p);

static uint64_t rng;
static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545F4914F6CDD1Dull;
}
static int pick(int n) { return (int)(rnd() % (uint64_t)n); }

typedef struct flaky {
  cs_peer base;
  cs_peer *inner;
} flaky;

/* Delivers the request, then loses the answer one time in five. */
static int flaky_exchange(cs_peer *self, cs_buf *resp, const char *path, const uint8_t *req,
                          size_t len) {
  flaky *f = (flaky *)self;
  int rc = f->inner->exchange(f->inner, resp, path, req, len);
  if (rc == 0 && pick(5) == 0)
    return cs__error(CS_ENETWORK, "simulated lost answer");
  return rc;
}

static const char *const values[] = {"\"a\"", "\"b\"", "1", "2", "true", "null"};
static const char *const elems[] = {"\"x\"", "\"y\"", "\"z\"", "3"};

static void random_action(cs_store *s) {
  char inst[8], data[256];
  snprintf(inst, sizeof(inst), "i%d", pick(4));
  int kind = pick(10);
  cs_action a = {CS_ACTION_UPDATE, "M", inst, data};
  if (kind < 4)
    snprintf(data, sizeof(data), "{\"f%d\":%s}", pick(3), values[pick(6)]);
  else if (kind < 6)
    snprintf(data, sizeof(data), "{\"tags\":{\"$add\":[%s]}}", elems[pick(4)]);
  else if (kind < 7)
    snprintf(data, sizeof(data), "{\"tags\":{\"$remove\":[%s]}}", elems[pick(4)]);
  else if (kind < 8)
    snprintf(data, sizeof(data), "{\"tags\":[%s,%s]}", elems[pick(4)], elems[pick(4)]);
  else if (kind < 9)
    snprintf(data, sizeof(data), "{\"n\":{\"$inc\":%d}}", pick(7) - 3);
  else {
    a.type = CS_ACTION_DELETE;
    a.data = NULL;
  }
  int rc = cs_queue_offline_action(s, &a);
  if (getenv("CS_TRACE"))
    fprintf(stderr, "action %d on %s: %s -> %d\n", a.type, inst, a.data ? a.data : "(delete)", rc);
  /* Deleting what is not there, or a duplicate set element, are fine refusals. */
  cr_assert(rc == 0 || rc == CS_ENOTFOUND || (rc == CS_EINVAL && strstr(cs_errmsg(), "tags")),
            "seed: action %s on %s: %d %s", data, inst, rc, cs_errmsg());
}

static void resolve_some(cs_store *s) {
  cs_buf b = CS_BUF_INIT;
  cr_assert_eq(cs_list_conflicts(&b, s), 0);
  json_t *arr = json_loads(b.ptr, 0, NULL);
  if (json_array_size(arr)) {
    json_t *c = json_array_get(arr, (size_t)pick((int)json_array_size(arr)));
    const char *id = json_string_value(json_object_get(c, "id"));
    const char *kind = json_string_value(json_object_get(c, "kind"));
    cs_resolution r = {CS_RESOLVE_PICK, 0, NULL};
    if (strcmp(kind, "delete_update") == 0)
      r.kind = pick(2) ? CS_RESOLVE_RESTORE : CS_RESOLVE_KEEP_DELETED;
    else if (pick(2))
      r = (cs_resolution){CS_RESOLVE_VALUE, 0, "\"resolved\""};
    cr_assert_eq(cs_resolve_conflict(s, id, &r), 0, "resolve %s: %s", id, cs_errmsg());
  }
  json_decref(arr);
  cs_buf_dispose(&b);
}

static char *snapshot(cs_store *s) {
  cs_buf out = CS_BUF_INIT, c = CS_BUF_INIT;
  for (int i = 0; i < 4; i++) {
    char inst[8];
    cs_buf d = CS_BUF_INIT;
    snprintf(inst, sizeof(inst), "i%d", i);
    int rc = cs_get_local_data(&d, s, "M", inst);
    cs__buf_printf(&out, "%s=%s\n", inst, rc == 0 ? d.ptr : "<absent>");
    cs_buf_dispose(&d);
  }
  cr_assert_eq(cs_list_conflicts(&c, s), 0);
  cs__buf_printf(&out, "conflicts=%s\n", c.ptr);
  cs_buf_dispose(&c);
  return out.ptr;
}

static void schedule(const char *dir, uint64_t seed) {
  enum { N = 3 };
  cs_store *s[N];
  flaky peers[N];
  char name[32];

  rng = seed * 2654435761u + 1;
  cs__keypair_test_seed(seed * 16 + 1); /* replica ids follow the seed too */
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof(name), "%llu-%d", (unsigned long long)seed, i);
    s[i] = tu_open(dir, name);
    peers[i].base = (cs_peer){CS_PEER_VERSION, flaky_exchange, NULL};
    cr_assert_eq(cs_peer_local(&peers[i].inner, s[i]), 0);
  }
  int steps = 30 + pick(30);
  bool trace = getenv("CS_TRACE") != NULL;
  for (int k = 0; k < steps; k++) {
    int a = pick(N), b = pick(N), what = pick(10);
    if (what < 6)
      random_action(s[a]);
    else if (what < 9 && a != b) {
      int rc = cs_sync(NULL, s[a], &peers[b].base); /* may lose its answer */
      if (trace)
        fprintf(stderr, "step %d: sync %d<->%d: %d %s\n", k, a, b, rc, rc ? cs_errmsg() : "");
    } else if (what == 9)
      resolve_some(s[a]);
    if (trace)
      for (int i = 0; i < N; i++) {
        char *snap = snapshot(s[i]);
        fprintf(stderr, "  step %d (what %d by %d) store %d: %s", k, what, a, i, strstr(snap, "i3="));
        free(snap);
      }
  }
  /* Quiescence: reliable all-pairs syncs until nothing moves. */
  for (int round = 0; round < 3; round++)
    for (int a = 0; a < N; a++)
      for (int b = 0; b < N; b++)
        if (a != b)
          cr_assert_eq(cs_sync(NULL, s[a], peers[b].inner), 0, "seed %llu: %s",
                       (unsigned long long)seed, cs_errmsg());
  char *first = snapshot(s[0]);
  for (int i = 1; i < N; i++) {
    char *other = snapshot(s[i]);
    if (strcmp(first, other) != 0)
      fprintf(stderr, "store 0:\n%s\nstore %d:\n%s\n", first, i, other);
    cr_assert_str_eq(first, other, "seed %llu (replay with CS_SEED=%llu): store %d differs",
                     (unsigned long long)seed, (unsigned long long)seed, i);
    free(other);
  }
  free(first);
  for (int i = 0; i < N; i++) {
    cs_peer_free(peers[i].inner);
    cs__peer_forget(&peers[i].base);
    cs_store_close(s[i]);
  }
  cs__keypair_test_seed(0);
}

Test(engine_property, random_schedules_converge, .timeout = 600) {
  char *dir = tu_tempdir();
  const char *seed_env = getenv("CS_SEED"), *n_env = getenv("CS_ENGINE_SCHEDULES");
  uint64_t base = seed_env ? strtoull(seed_env, NULL, 10) : 20261125u;
  int n = seed_env ? 1 : n_env ? atoi(n_env) : tu_scale(60);
  for (int i = 0; i < n; i++) {
    uint64_t seed = base + (uint64_t)i;
    schedule(dir, seed);
    if (i % 10 == 9)
      tu_rmrf(dir), free(dir), dir = tu_tempdir();
  }
  fprintf(stderr, "engine_property: %d schedules from seed %llu converged\n", n,
          (unsigned long long)base);
  tu_rmrf(dir);
  free(dir);
}
