/*
 * Randomized convergence through the public API. Four stores apply random
 * actions to two models and exchange them every way the product does: full
 * syncs in random pairs (so that what one store learnt is relayed through
 * others), partial syncs (every model or some, from cursor 0, from the last
 * cursor a peer issued, from an older one, or CS_SINCE_LAST), cleanups (so
 * that later exchanges go past compacted logs, as whole states), conflict
 * resolutions, and exchanges killed before the request lands or before the
 * answer does. At quiescence every store reads the same for every instance,
 * lists the same conflicts, and passes cs_check (no missing dots, nothing
 * known that it cannot serve, no logged gap, no two siblings of one replica).
 *
 * Stores are opened once per batch of schedules (opening is most of the cost
 * of a schedule); each schedule writes models of its own ("M<k>", "P<k>").
 *
 * Seeded and replayable: the first seed varies from run to run unless
 * CS_SEED is set, and is printed; a failure prints the command that replays
 * it (the batch up to the failing schedule). CS_ENGINE_SCHEDULES=N runs N
 * schedules (default 2,000, 200 with CS_TEST_SCALE=small, split over two
 * tests that run in parallel); CS_TRACE=1 prints every step.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "transport/transport.h"
#include "tests/helpers/testutil.h"

void cs__peer_forget(const cs_peer *p);

enum { N = 4, BATCH = 8, INSTANCES = 3, KEEP = 6 };

static uint64_t rng;
static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 0x2545F4914F6CDD1Dull;
}
static int pick(int n) { return (int)(rnd() % (uint64_t)n); }

static bool trace;
#define TRACE(...)                                                                                 \
  do {                                                                                             \
    if (trace)                                                                                     \
      fprintf(stderr, __VA_ARGS__);                                                                \
  } while (0)

/* A peer whose exchange is killed: one time in ten before the request
 * reaches the other store, one in six after it merged (the answer lost). */
typedef struct flaky {
  cs_peer base;
  cs_peer *inner;
} flaky;

static int flaky_exchange(cs_peer *self, cs_buf *resp, const char *path, const uint8_t *req,
                          size_t len) {
  flaky *f = (flaky *)self;
  if (pick(10) == 0)
    return cs__error(CS_ENETWORK, "simulated: killed before the request landed");
  int rc = f->inner->exchange(f->inner, resp, path, req, len);
  if (rc == 0 && pick(6) == 0)
    return cs__error(CS_ENETWORK, "simulated: killed before the answer landed");
  return rc;
}

typedef struct world {
  const char *dir;
  uint64_t batch_seed; /* the seed the batch's stores were made from */
  int index;           /* of the schedule in its batch */
  uint64_t seed;
  cs_store *s[N];
  flaky peers[N]; /* peers[b] reaches store b */
  char model[2][24];
  /* cursors store a took from store b for model m, oldest first */
  uint64_t cursors[N][N][2][KEEP];
  int ncursors[N][N][2];
} world;

static void fail_replay(const world *w, const char *what) {
  cr_assert_fail("seed %llu: %s\nreplay: CS_SEED=%llu CS_ENGINE_SCHEDULES=%d CS_TRACE=1 "
           "./build/tests/test_engine_property",
           (unsigned long long)w->seed, what, (unsigned long long)w->batch_seed, w->index + 1);
}

static const char *const values[] = {"\"a\"", "\"b\"", "1", "2", "true", "null"};
static const char *const elems[] = {"\"x\"", "\"y\"", "\"z\"", "3"};

static void random_action(world *w, int a) {
  char inst[8], data[256];
  const char *model = w->model[pick(2)];
  snprintf(inst, sizeof(inst), "i%d", pick(INSTANCES));
  int kind = pick(10);
  cs_action act = {CS_ACTION_UPDATE, model, inst, data};
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
    act.type = CS_ACTION_DELETE;
    act.data = NULL;
  }
  int rc = cs_queue_offline_action(w->s[a], &act);
  TRACE("  store %d: %s %s/%s %s -> %d\n", a, act.data ? "update" : "delete", model, inst,
        act.data ? act.data : "", rc);
  /* Deleting what is not there, or a duplicate set element, are fine refusals. */
  if (!(rc == 0 || rc == CS_ENOTFOUND || (rc == CS_EINVAL && strstr(cs_errmsg(), "tags"))))
    fail_replay(w, cs_errmsg());
}

static void resolve_some(world *w, int a) {
  cs_buf b = CS_BUF_INIT;
  cr_assert_eq(cs_list_conflicts(&b, w->s[a]), 0);
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
    int rc = cs_resolve_conflict(w->s[a], id, &r);
    TRACE("  store %d: resolve %s -> %d\n", a, id, rc);
    if (rc != 0)
      fail_replay(w, cs_errmsg());
  }
  json_decref(arr);
  cs_buf_dispose(&b);
}

static void full_sync(world *w, int a, int b) {
  int rc = cs_sync(NULL, w->s[a], &w->peers[b].base);
  TRACE("  sync %d<->%d -> %d %s\n", a, b, rc, rc ? cs_errmsg() : "");
  if (rc != 0 && rc != CS_ENETWORK)
    fail_replay(w, cs_errmsg());
}

static void remember_cursor(world *w, int a, int b, int m, uint64_t c) {
  int *n = &w->ncursors[a][b][m];
  if (*n == KEEP) {
    memmove(&w->cursors[a][b][m][0], &w->cursors[a][b][m][1], (KEEP - 1) * sizeof(uint64_t));
    (*n)--;
  }
  w->cursors[a][b][m][(*n)++] = c;
}

/* A pull by a from b: every model, one or both of this schedule's; from 0,
 * the latest cursor b issued, an older one, or CS_SINCE_LAST. */
static void partial_sync(world *w, int a, int b) {
  const char *models[2];
  int which = pick(4), how = pick(4), m0 = which == 2 ? 1 : 0;
  size_t n = which == 0 ? 0 : which == 3 ? 2 : 1;
  uint64_t since = 0;
  cs_sync_result r = CS_SYNC_RESULT_INIT;

  models[0] = w->model[m0];
  models[1] = w->model[1];
#ifdef CS_SINCE_LAST
  if (how == 1)
    since = CS_SINCE_LAST;
#else
  if (how == 1) /* builds without it: the latest cursor */
    how = 2;
#endif
  else if (how >= 2 && w->ncursors[a][b][m0] > 0) {
    int k = w->ncursors[a][b][m0];
    since = w->cursors[a][b][m0][how == 2 ? k - 1 : pick(k)];
  }
  int rc = cs_partial_sync(&r, w->s[a], &w->peers[b].base, since, n ? models : NULL, n);
  TRACE("  pull %d<-%d models %d since %llu -> %d %s (cursor %llu)\n", a, b, which,
        (unsigned long long)since, rc, rc ? cs_errmsg() : "", (unsigned long long)r.cursor);
  if (rc == 0) {
    for (int m = 0; m < 2; m++)
      if (n == 0 || n == 2 || m == m0)
        remember_cursor(w, a, b, m, r.cursor);
  } else if (!(rc == CS_ENETWORK ||
               /* an explicit cursor that is not good for every model of the
                * answer: the engine's refusal, not a failure */
               (rc == CS_EINVAL && how != 1 && strstr(cs_errmsg(), "not issued"))))
    fail_replay(w, cs_errmsg());
  cs_sync_result_dispose(&r);
}

static void cleanup(world *w, int a) {
  cs_cleanup_stats st;
  int rc = cs_cleanup(&st, w->s[a]);
  TRACE("  cleanup %d -> %d (%zu log entries)\n", a, rc, rc ? 0 : st.log_entries_deleted);
  if (rc != 0)
    fail_replay(w, cs_errmsg());
}

static char *snapshot(world *w, int i) {
  cs_buf out = CS_BUF_INIT, c = CS_BUF_INIT;
  for (int m = 0; m < 2; m++)
    for (int k = 0; k < INSTANCES; k++) {
      char inst[8];
      cs_buf d = CS_BUF_INIT;
      snprintf(inst, sizeof(inst), "i%d", k);
      int rc = cs_get_local_data(&d, w->s[i], w->model[m], inst);
      cs__buf_printf(&out, "%s/%s=%s\n", w->model[m], inst, rc == 0 ? d.ptr : "<absent>");
      cs_buf_dispose(&d);
    }
  cr_assert_eq(cs_list_conflicts(&c, w->s[i]), 0);
  cs__buf_printf(&out, "conflicts=%s\n", c.ptr);
  cs_buf_dispose(&c);
  return out.ptr;
}

static void schedule(world *w) {
  rng = w->seed * 2654435761u + 1;
  snprintf(w->model[0], sizeof(w->model[0]), "M%d", w->index);
  snprintf(w->model[1], sizeof(w->model[1]), "P%d", w->index);
  memset(w->ncursors, 0, sizeof(w->ncursors));
  int steps = 25 + pick(35);
  TRACE("schedule seed %llu (%d of the batch from %llu), %d steps\n",
        (unsigned long long)w->seed, w->index, (unsigned long long)w->batch_seed, steps);
  for (int k = 0; k < steps; k++) {
    int a = pick(N), b = (a + 1 + pick(N - 1)) % N, c = (b + 1 + pick(N - 1)) % N;
    int what = pick(100);
    TRACE("step %d:\n", k);
    if (what < 45)
      random_action(w, a);
    else if (what < 67)
      full_sync(w, a, b);
    else if (what < 79)
      partial_sync(w, a, b);
    else if (what < 85) {
      /* a relay: what a pulled goes on to a third store */
      partial_sync(w, a, b);
      if (c != a)
        full_sync(w, a, c);
    } else if (what < 96)
      resolve_some(w, a);
    else
      cleanup(w, a);
  }
  /* Quiescence: reliable all-pairs syncs until a round moves nothing (two
   * at least: the first may only bring everything to the last store). */
  for (int round = 0, moved = 1; moved && round < 4; round++) {
    moved = round == 0;
    for (int a = 0; a < N; a++)
      for (int b = 0; b < N; b++) {
        cs_sync_result r = CS_SYNC_RESULT_INIT;
        if (a != b && cs_sync(&r, w->s[a], w->peers[b].inner) != 0)
          fail_replay(w, cs_errmsg());
        moved |= r.synced_count > 0;
        cs_sync_result_dispose(&r);
      }
  }
  char *first = snapshot(w, 0);
  for (int i = 0; i < N; i++) {
    cs_buf rep = CS_BUF_INIT;
    char *other = i ? snapshot(w, i) : NULL;
    if (other && strcmp(first, other) != 0) {
      fprintf(stderr, "store 0:\n%s\nstore %d:\n%s\n", first, i, other);
      fail_replay(w, "the stores differ at quiescence");
    }
    if (cs_check(&rep, w->s[i]) != 0) {
      fprintf(stderr, "store %d: %s\n", i, rep.ptr ? rep.ptr : "");
      fail_replay(w, cs_errmsg());
    }
    cs_buf_dispose(&rep);
    free(other);
  }
  free(first);
}

static void batch_open(world *w, uint64_t seed) {
  char name[48];
  w->batch_seed = seed;
  cs__keypair_test_seed(seed * 16 + 1); /* replica ids follow the seed too */
  for (int i = 0; i < N; i++) {
    snprintf(name, sizeof(name), "%llu-%d", (unsigned long long)seed, i);
    w->s[i] = tu_open(w->dir, name);
    w->peers[i].base = (cs_peer){CS_PEER_VERSION, flaky_exchange, NULL};
    cr_assert_eq(cs_peer_local(&w->peers[i].inner, w->s[i]), 0);
  }
}

static void batch_close(world *w) {
  for (int i = 0; i < N; i++) {
    cs_peer_free(w->peers[i].inner);
    cs__peer_forget(&w->peers[i].base);
    cs_store_close(w->s[i]);
  }
  cs__keypair_test_seed(0);
}

/* Runs schedules base .. base + n - 1, BATCH to a set of stores. */
static void run(uint64_t base, int n) {
  world *w = calloc(1, sizeof(*w));
  char *dir = tu_tempdir();
  cr_assert_not_null(w);
  w->dir = dir;
  trace = getenv("CS_TRACE") != NULL;
  for (int i = 0; i < n; i++) {
    if (i % BATCH == 0) {
      if (i)
        batch_close(w);
      batch_open(w, base + (uint64_t)i);
    }
    w->index = i % BATCH;
    w->seed = base + (uint64_t)i;
    schedule(w);
  }
  if (n)
    batch_close(w);
  fprintf(stderr, "engine_property: %d schedules from seed %llu converged\n", n,
          (unsigned long long)base);
  tu_rmrf(dir);
  free(dir);
  free(w);
}

static uint64_t first_seed(void) {
  const char *env = getenv("CS_SEED");
  static uint64_t seed;
  if (env)
    return strtoull(env, NULL, 10);
  if (!seed)
    seed = ((uint64_t)time(NULL) * 1000003u) ^ ((uint64_t)getpid() << 16);
  return seed;
}

static int schedules(void) {
  const char *n = getenv("CS_ENGINE_SCHEDULES");
  return n ? atoi(n) : tu_scale(2000);
}

/* Each half's seed range starts at a multiple of BATCH from the first seed,
 * so that the replay command of either half is the same form. */
Test(engine_property, random_schedules_converge_first_half, .timeout = 1800) {
  uint64_t base = first_seed();
  int n = schedules(), half = getenv("CS_SEED") ? n : (n / 2 + BATCH - 1) / BATCH * BATCH;
  fprintf(stderr, "engine_property: first seed %llu (set CS_SEED to choose it)\n",
          (unsigned long long)base);
  run(base, half < n ? half : n);
}

Test(engine_property, random_schedules_converge_second_half, .timeout = 1800) {
  uint64_t base = first_seed();
  int n = schedules(), half = (n / 2 + BATCH - 1) / BATCH * BATCH;
  if (getenv("CS_SEED") || half >= n)
    return; /* a replay runs in the first half */
  fprintf(stderr, "engine_property: first seed %llu (set CS_SEED to choose it)\n",
          (unsigned long long)(base + (uint64_t)half));
  run(base + (uint64_t)half, n - half);
}
