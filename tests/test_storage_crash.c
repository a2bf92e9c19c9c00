/*
 * Crash test in the spirit of RocksDB's db_stress: a child process writes
 * batches across several column families and reports "ACK n" on a pipe after
 * each write returns; the parent SIGKILLs it at a random moment, reopens and
 * checks that every acknowledged batch is there, that no batch is half
 * applied, and that the counter equals the last applied batch. Rounds reuse
 * one database, so recovery itself is also killed and re-recovered.
 *
 * The child is this same program re-executed (fork alone would copy a
 * process whose RocksDB background threads do not survive the fork).
 * CS_CRASH_KILLS=N sets the number of kills (default 50, 10 under
 * CS_TEST_SCALE=small); CS_SEED replays a run's plan (the seed is printed):
 * value sizes, how many ACKs before each kill, the delays. Where exactly the
 * kill lands inside a write still depends on scheduling.
 */
#include "test_storage_util.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#define SLOTS 64       /* documents rewritten round-robin */
#define OUTBOX_KEEP 16 /* outbox entries older than this are deleted (acked) */

/* ---- what batch n writes (the verifier recomputes it) ---- */

static size_t value_len(uint64_t seed, uint64_t n) {
  uint64_t s = seed ^ (n * 0x9e3779b97f4a7c15ull);
  return 8 + (size_t)(st_rand(&s) % 400);
}

static void value_fill(cs_buf *v, uint64_t seed, uint64_t n) {
  size_t len = value_len(seed, n);
  uint8_t hdr[8];
  cs__buf_clear(v);
  cs__put_be64(hdr, n);
  cs__buf_put(v, hdr, 8);
  for (size_t i = 8; i < len; i++)
    cs__buf_putc(v, (char)(uint8_t)(n * 31 + i));
}

/* NULL when v is exactly batch n's value, else what is wrong. */
static const char *value_check(const uint8_t *p, size_t len, uint64_t seed, uint64_t n) {
  if (len != value_len(seed, n))
    return "wrong length";
  if (cs__get_be64(p) != n)
    return "wrong batch number";
  for (size_t i = 8; i < len; i++)
    if (p[i] != (uint8_t)(n * 31 + i))
      return "wrong filler byte";
  return NULL;
}

static void slot_name(char *out, size_t cap, uint64_t n) {
  snprintf(out, cap, "doc%02u", (unsigned)(n % SLOTS));
}

static void batch_fill(cs_wbatch *b, cs_buf *key, cs_buf *val, uint64_t seed, uint64_t n) {
  char inst[16];
  uint8_t be[8];

  cs__wbatch_clear(b);
  value_fill(val, seed, n);
  slot_name(inst, sizeof(inst), n);
  cs__buf_clear(key);
  cs__key_doc(key, "M", inst);
  cs__wbatch_put(b, CS_CF_DOCS, key->ptr, key->size, val->ptr, val->size);
  cs__buf_clear(key);
  cs__key_log(key, "M", 1, n);
  cs__wbatch_put(b, CS_CF_LOG, key->ptr, key->size, val->ptr, val->size);
  cs__buf_clear(key);
  cs__key_change(key, "M", n);
  cs__wbatch_put(b, CS_CF_CHANGES, key->ptr, key->size, inst, strlen(inst));
  cs__buf_clear(key);
  cs__key_u64(key, n);
  cs__wbatch_put(b, CS_CF_OUTBOX, key->ptr, key->size, val->ptr, val->size);
  if (n > OUTBOX_KEEP) {
    cs__buf_clear(key);
    cs__key_u64(key, n - OUTBOX_KEEP);
    cs__wbatch_delete(b, CS_CF_OUTBOX, key->ptr, key->size);
  }
  cs__put_be64(be, n);
  cs__wbatch_put(b, CS_CF_META, "counter", 7, be, 8);
}

/* ---- the child: write until killed ---- */

static void child_run(const char *path, bool sync, uint64_t seed, int fd) {
  cs_db *db = NULL;
  cs_wbatch *b = NULL;
  cs_buf key = CS_BUF_INIT, val = CS_BUF_INIT, cur = CS_BUF_INIT;
  bool moved;
  uint64_t n = 0;
  int rc;

  if ((rc = cs__db_open(&db, &moved, path, NULL)) != 0) {
    dprintf(fd, "ERR open: %s\n", cs_errmsg());
    _exit(2);
  }
  rc = cs__db_get(&cur, db, CS_CF_META, "counter", 7);
  if (rc == 0 && cur.size == 8)
    n = cs__get_be64((const uint8_t *)cur.ptr);
  cs__wbatch_new(&b, db);
  for (;;) {
    n++;
    batch_fill(b, &key, &val, seed, n);
    if ((rc = cs__db_write(db, b, sync)) != 0) {
      dprintf(fd, "ERR write %llu: %s\n", (unsigned long long)n, cs_errmsg());
      _exit(2);
    }
    /* The parent gone (closed pipe: SIGPIPE, or EPIPE if it is ignored) ends the child. */
    if (dprintf(fd, "ACK %llu\n", (unsigned long long)n) < 0)
      _exit(0);
  }
}

__attribute__((constructor)) static void child_entry(void) {
  const char *spec = getenv("CS_CRASH_CHILD");
  char path[512];
  int sync = 0, fd = -1;
  unsigned long long seed = 0;

  if (!spec)
    return;
  if (sscanf(spec, "%d %d %llu %511s", &fd, &sync, &seed, path) != 4)
    _exit(3);
  child_run(path, sync != 0, seed, fd);
  _exit(0);
}

/* ---- the parent ---- */

static void sleep_us(unsigned us) {
  struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

struct round {
  uint64_t last_ack; /* highest ACK read this round (0: none) */
  char err[400];
};

/* Starts the child, kills it per the plan, collects every ACK it sent. */
static void run_round(struct round *r, const char *path, bool sync, uint64_t seed, uint64_t *rs) {
  int p[2];
  char spec[700], buf[4096], line[300];
  size_t ll = 0;
  pid_t pid;
  /* One round in eight kills blind, maybe during open and WAL recovery. */
  bool blind = st_rand(rs) % 8 == 0;
  uint64_t want = 1 + st_rand(rs) % 40, acks = 0;
  unsigned blind_us = (unsigned)(st_rand(rs) % 30000), extra_us = (unsigned)(st_rand(rs) % 2000);
  bool killed = false;

  memset(r, 0, sizeof(*r));
  cr_assert_eq(pipe(p), 0);
  snprintf(spec, sizeof(spec), "%d %d %llu %s", p[1], sync ? 1 : 0, (unsigned long long)seed, path);
  pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(p[0]);
    setenv("CS_CRASH_CHILD", spec, 1);
    execl("/proc/self/exe", "storage-crash-child", (char *)NULL);
    _exit(4);
  }
  close(p[1]);
  if (blind) {
    sleep_us(blind_us);
    kill(pid, SIGKILL);
    killed = true;
  }
  for (;;) {
    ssize_t got = read(p[0], buf, sizeof(buf));
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0)
      break;
    for (ssize_t i = 0; i < got; i++) {
      if (buf[i] != '\n') {
        if (ll < sizeof(line) - 1)
          line[ll++] = buf[i];
        continue;
      }
      line[ll] = '\0';
      ll = 0;
      unsigned long long n;
      if (sscanf(line, "ACK %llu", &n) == 1) {
        r->last_ack = n;
        acks++;
      } else {
        snprintf(r->err, sizeof(r->err), "child: %s", line);
      }
    }
    if (!killed && acks >= want) {
      /* Land the kill somewhere inside a following write. */
      sleep_us(extra_us);
      kill(pid, SIGKILL);
      killed = true;
    }
  }
  close(p[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!killed && !r->err[0])
    snprintf(r->err, sizeof(r->err), "child ended by itself (status %d)", status);
}

/* Checks the database against batches 1..C, where C is meta "counter". */
static uint64_t verify(const char *path, uint64_t seed, uint64_t acked, uint64_t max_started,
                       unsigned round) {
  cs_db *db = NULL;
  cs_buf v = CS_BUF_INIT, key = CS_BUF_INIT;
  bool moved;
  uint64_t c = 0, n;
  const char *why;
#define CTX "seed %llu round %u: "
#define CTXA (unsigned long long)seed, round

  cr_assert_eq(cs__db_open(&db, &moved, path, NULL), 0, CTX "reopen: %s", CTXA, cs_errmsg());
  int rc = cs__db_get(&v, db, CS_CF_META, "counter", 7);
  if (rc == 0) {
    cr_assert_eq(v.size, 8, CTX "counter of %zu bytes", CTXA, v.size);
    c = cs__get_be64((const uint8_t *)v.ptr);
  } else {
    cr_assert_eq(rc, CS_ENOTFOUND, CTX "%s", CTXA, cs_errmsg());
  }
  cr_assert_geq(c, acked, CTX "acknowledged batch %llu lost: counter is %llu", CTXA,
                (unsigned long long)acked, (unsigned long long)c);
  cr_assert_leq(c, max_started, CTX "counter %llu beyond any batch written (%llu)", CTXA,
                (unsigned long long)c, (unsigned long long)max_started);

  /* log and changes hold exactly batches 1..C, in order, whole. */
  cs_iter *it = NULL;
  cr_assert_eq(cs__iter_new(&it, db, CS_CF_LOG, NULL, 0, NULL, 0), 0);
  for (n = 1; cs__iter_valid(it); cs__iter_next(it), n++) {
    cs_bytes k = cs__iter_key(it), val = cs__iter_value(it);
    cs__buf_clear(&key);
    cs__key_log(&key, "M", 1, n);
    cr_assert(k.len == key.size && memcmp(k.ptr, key.ptr, k.len) == 0,
              CTX "log entry %llu missing or out of order", CTXA, (unsigned long long)n);
    why = value_check(val.ptr, val.len, seed, n);
    cr_assert_null(why, CTX "log entry %llu: %s", CTXA, (unsigned long long)n, why);
  }
  cr_assert_eq(cs__iter_status(it), 0);
  cr_assert_eq(n - 1, c, CTX "log has %llu entries, counter %llu (half-applied batch)", CTXA,
               (unsigned long long)(n - 1), (unsigned long long)c);
  cs__iter_free(it);

  cr_assert_eq(cs__iter_new(&it, db, CS_CF_CHANGES, NULL, 0, NULL, 0), 0);
  for (n = 1; cs__iter_valid(it); cs__iter_next(it), n++) {
    cs_bytes k = cs__iter_key(it);
    cs__buf_clear(&key);
    cs__key_change(&key, "M", n);
    cr_assert(k.len == key.size && memcmp(k.ptr, key.ptr, k.len) == 0, CTX "change %llu missing",
              CTXA, (unsigned long long)n);
  }
  cs__iter_free(it);
  cr_assert_eq(n - 1, c, CTX "%llu changes, counter %llu", CTXA, (unsigned long long)(n - 1),
               (unsigned long long)c);

  /* outbox: exactly the last OUTBOX_KEEP batches (the deletes applied too). */
  cr_assert_eq(cs__iter_new(&it, db, CS_CF_OUTBOX, NULL, 0, NULL, 0), 0);
  n = c > OUTBOX_KEEP ? c - OUTBOX_KEEP + 1 : 1;
  for (; cs__iter_valid(it); cs__iter_next(it), n++) {
    cs_bytes k = cs__iter_key(it), val = cs__iter_value(it);
    cr_assert(k.len == 8 && cs__get_be64(k.ptr) == n, CTX "outbox entry %llu expected", CTXA,
              (unsigned long long)n);
    why = value_check(val.ptr, val.len, seed, n);
    cr_assert_null(why, CTX "outbox %llu: %s", CTXA, (unsigned long long)n, why);
  }
  cs__iter_free(it);
  cr_assert_eq(n, c + 1, CTX "outbox ends at %llu, counter %llu", CTXA, (unsigned long long)(n - 1),
               (unsigned long long)c);

  /* docs: each slot holds the last batch <= C that wrote it. */
  for (unsigned s = 0; s < SLOTS; s++) {
    char inst[16];
    uint64_t want = c >= s ? c - (c - s) % SLOTS : 0;
    snprintf(inst, sizeof(inst), "doc%02u", s);
    cs__buf_clear(&key);
    cs__key_doc(&key, "M", inst);
    rc = cs__db_get(&v, db, CS_CF_DOCS, key.ptr, key.size);
    if (want == 0) {
      cr_assert_eq(rc, CS_ENOTFOUND, CTX "slot %u written before its first batch", CTXA, s);
      continue;
    }
    cr_assert_eq(rc, 0, CTX "slot %u: batch %llu's document missing", CTXA, s,
                 (unsigned long long)want);
    why = value_check((const uint8_t *)v.ptr, v.size, seed, want);
    cr_assert_null(why, CTX "slot %u (batch %llu): %s", CTXA, s, (unsigned long long)want, why);
  }
  cs_buf_dispose(&v);
  cs_buf_dispose(&key);
  cs__db_close(db);
  return c;
#undef CTX
#undef CTXA
}

static unsigned kill_count(void) {
  const char *s = getenv("CS_CRASH_KILLS");
  if (s && *s)
    return (unsigned)strtoul(s, NULL, 10);
  return st_scale(50) < 10 ? 10 : st_scale(50);
}

static void crash_loop(bool sync) {
  char dir[256], path[300];
  uint64_t seed = st_seed(), rs = seed, acked = 0, counter = 0;
  unsigned kills = kill_count(), rounds_with_acks = 0;
  uint64_t t0 = cs__mono_ms();

  st_tmpdir(dir, sizeof(dir));
  snprintf(path, sizeof(path), "%s/db", dir);
  /* On failure the database is left in place for inspection. */
  fprintf(stderr, "storage crash (%s): seed %llu (replay with CS_SEED=%llu), %u kills, in %s\n",
          sync ? "sync" : "fast", (unsigned long long)seed, (unsigned long long)seed, kills, path);
  for (unsigned k = 0; k < kills; k++) {
    struct round r;
    run_round(&r, path, sync, seed, &rs);
    cr_assert_eq(r.err[0], '\0', "seed %llu round %u: %s", (unsigned long long)seed, k, r.err);
    if (r.last_ack) {
      acked = r.last_ack;
      rounds_with_acks++;
    }
    /* The child started at counter+1 and may have begun one batch past its last ACK. */
    uint64_t max_started = (r.last_ack ? r.last_ack : counter) + 1;
    counter = verify(path, seed, acked, max_started, k);
  }
  fprintf(stderr,
          "storage crash (%s): %u kills, %u with acknowledged writes, %llu batches, "
          "%llu ms\n",
          sync ? "sync" : "fast", kills, rounds_with_acks, (unsigned long long)counter,
          (unsigned long long)(cs__mono_ms() - t0));
  cr_expect_gt(rounds_with_acks, 0, "no round acknowledged anything: the test tested nothing");
  st_rmtree(dir);
}

Test(storage_crash, sync_batches_survive_sigkill_whole, .timeout = 300) {
  crash_loop(true);
}

/* Without fsync a write sits in the OS page cache: it survives the process,
 * not the machine. SIGKILL is the process crash. */
Test(storage_crash, fast_batches_survive_process_kill_whole, .timeout = 300) {
  crash_loop(false);
}
