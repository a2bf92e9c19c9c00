/*
 * Crash test for the engine (in the spirit of RocksDB's db_stress): a child
 * process applies local actions (sync durability) and merges from a second
 * store, writing "ACK n" to a pipe after each call returns; the parent kills
 * it with SIGKILL at a random moment, reopens the store and checks:
 *  - every acknowledged action is present (its tag is in the set, and the
 *    document's counter counts it);
 *  - nothing is half-applied: log entries, outbox entries and applied actions
 *    agree one to one, and each document's counter equals its tags;
 *  - the store still accepts writes.
 * CS_SEED replays one seed; CS_CRASH_KILLS sets the number of kills
 * (default 50, 10 when CS_TEST_SCALE=small).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/engine.h"
#include "tests/helpers/testutil.h"

#define DOCS 8

static void child(const char *dir, int fd, uint64_t seed, int start) {
  char path[512], data[128], inst[16];
  cs_store_options o = CS_STORE_OPTIONS_INIT;
  cs_store *s, *other;
  cs_peer *p;
  o.durability = CS_DURABILITY_SYNC;
  snprintf(path, sizeof(path), "%s/main", dir);
  if (cs_store_open(&s, path, &o) != 0)
    _exit(3);
  snprintf(path, sizeof(path), "%s/other", dir);
  if (cs_store_open(&other, path, &o) != 0 || cs_peer_local(&p, other) != 0)
    _exit(4);
  srand((unsigned)seed);
  for (int i = start;; i++) {
    int rc;
    if (rand() % 8 == 0) {
      /* a merge: the other store writes, we pull it in one batch */
      cs_action oa = {CS_ACTION_UPDATE, "Other", "o", "{\"n\":{\"$inc\":1}}"};
      if (cs_queue_offline_action(other, &oa) != 0 || cs_sync(NULL, s, p) != 0)
        _exit(5);
    }
    snprintf(inst, sizeof(inst), "d%d", i % DOCS);
    snprintf(data, sizeof(data), "{\"tags\":{\"$add\":[\"t%d\"]},\"n\":{\"$inc\":1},\"last\":%d}",
             i, i);
    cs_action a = {CS_ACTION_UPDATE, "Crash", inst, data};
    if ((rc = cs_queue_offline_action(s, &a)) != 0)
      _exit(6);
    char line[32];
    int len = snprintf(line, sizeof(line), "ACK %d\n", i);
    if (write(fd, line, (size_t)len) != len)
      _exit(7);
  }
}

/* Reads every "ACK n" line; returns the highest n (or -1). */
static int read_acks(int fd) {
  char buf[65536];
  size_t used = 0;
  ssize_t r;
  int last = -1;
  while ((r = read(fd, buf + used, sizeof(buf) - 1 - used)) > 0) {
    used += (size_t)r;
    buf[used] = '\0';
    char *line = buf, *nl;
    while ((nl = strchr(line, '\n')) != NULL) {
      int n;
      if (sscanf(line, "ACK %d", &n) == 1 && n > last)
        last = n;
      line = nl + 1;
    }
    used = strlen(line);
    memmove(buf, line, used);
  }
  return last;
}

/* Actions logged in model "Crash": one per applied local action. */
static size_t count_log(cs_store *s) {
  cs_buf lo = CS_BUF_INIT, hi = CS_BUF_INIT;
  cs_iter *it;
  size_t n = 0;
  cs__key_name(&lo, "Crash");
  cs__key_name(&hi, "Crash");
  /* above every (origin, dot) that follows the model name */
  for (int i = 0; i < 17; i++)
    cs__buf_putc(&hi, (char)0xff);
  cr_assert_eq(cs__iter_new(&it, s->db, CS_CF_LOG, lo.ptr, lo.size, hi.ptr, hi.size), 0);
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    /* a log record is a run of actions */
    cs_sync_msg seg;
    cs_bytes v = cs__iter_value(it);
    cr_assert_eq(cs__segment_decode(&seg, v.ptr, v.len), 0, "%s", cs_errmsg());
    n += seg.models[0].nactions;
    cs__sync_msg_dispose(&seg);
  }
  cs__iter_free(it);
  cs_buf_dispose(&lo);
  cs_buf_dispose(&hi);
  return n;
}

/* Checks the store after a kill; returns the number of applied actions. */
static int verify(const char *dir, int acked, int prev_applied, uint64_t seed, int kill) {
  cs_store *s = tu_open(dir, "main");
  size_t tags_total = 0;
  for (int d = 0; d < DOCS; d++) {
    char inst[16];
    cs_buf b = CS_BUF_INIT;
    snprintf(inst, sizeof(inst), "d%d", d);
    int rc = cs_get_local_data(&b, s, "Crash", inst);
    if (rc == CS_ENOTFOUND) {
      cr_assert_lt(acked, d, "seed %llu kill %d: d%d missing though action %d was acknowledged",
                   (unsigned long long)seed, kill, d, d);
      continue;
    }
    cr_assert_eq(rc, 0, "seed %llu kill %d: %s", (unsigned long long)seed, kill, cs_errmsg());
    json_t *j = json_loads(b.ptr, 0, NULL);
    json_t *tags = json_object_get(j, "tags");
    size_t ntags = json_array_size(tags);
    /* Each action adds one tag and one increment, in one batch. */
    cr_assert_eq((size_t)json_integer_value(json_object_get(j, "n")), ntags,
                 "seed %llu kill %d: %s half-applied: %s", (unsigned long long)seed, kill, inst,
                 b.ptr);
    tags_total += ntags;
    for (int i = d; i <= acked; i += DOCS) {
      char want[24];
      snprintf(want, sizeof(want), "\"t%d\"", i);
      cr_assert(strstr(b.ptr, want) != NULL,
                "seed %llu kill %d: acknowledged action %d lost (%s = %s)",
                (unsigned long long)seed, kill, i, inst, b.ptr);
    }
    json_decref(j);
    cs_buf_dispose(&b);
  }
  /* One log entry per applied action, no more, no less. */
  size_t logged = count_log(s);
  cr_assert_eq(logged, tags_total, "seed %llu kill %d: log %zu vs applied %zu",
               (unsigned long long)seed, kill, logged, tags_total);
  cr_assert_geq(tags_total, (size_t)(acked + 1));
  /* This life started at prev_applied; of its actions only the one in flight
   * when the kill came may have landed unacknowledged. */
  int floor = acked + 1 > prev_applied ? acked + 1 : prev_applied;
  cr_assert_leq(tags_total, (size_t)floor + 1,
                "seed %llu kill %d: %zu actions applied, %d acknowledged, %d before this life: "
                "at most the one unacknowledged action may land",
                (unsigned long long)seed, kill, tags_total, acked + 1, prev_applied);
  cs_buf rep = CS_BUF_INIT;
  cr_assert_eq(cs_check(&rep, s), 0, "seed %llu kill %d: check: %s", (unsigned long long)seed,
               kill, cs_errmsg());
  cs_buf_dispose(&rep);
  cs_store_close(s);
  return (int)tags_total;
}

Test(engine_crash, sigkill_loses_no_acknowledged_action, .timeout = 900) {
  const char *seed_env = getenv("CS_SEED"), *kills_env = getenv("CS_CRASH_KILLS");
  uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL);
  int kills = kills_env ? atoi(kills_env) : tu_scale(50);
  char *dir = tu_tempdir();
  int acked_total = -1, applied = 0;

  fprintf(stderr, "engine_crash: seed %llu, %d kills (replay with CS_SEED=%llu)\n",
          (unsigned long long)seed, kills, (unsigned long long)seed);
  srand((unsigned)seed);
  for (int k = 0; k < kills; k++) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      child(dir, fds[1], seed + (uint64_t)k, applied);
      _exit(0);
    }
    close(fds[1]);
    /* Let it work for a random while (long enough to open and write). */
    struct timespec ts = {0, (long)(60 + rand() % 340) * 1000000L};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    int acked = read_acks(fds[0]);
    close(fds[0]);
    cr_assert(WIFSIGNALED(status) || WEXITSTATUS(status) == 0,
              "seed %llu kill %d: the child failed on its own (exit %d)", (unsigned long long)seed,
              k, WEXITSTATUS(status));
    if (acked > acked_total)
      acked_total = acked;
    applied = verify(dir, acked_total, applied, seed, k);
  }
  fprintf(stderr, "engine_crash: %d kills, %d actions acknowledged, none lost\n", kills,
          acked_total + 1);
  tu_rmrf(dir);
  free(dir);
}
