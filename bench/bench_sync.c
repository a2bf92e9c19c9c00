/*
 * W1 end to end on two RocksDB stores: 10,000 UserProfile documents (8 scalar
 * fields + an `interests` set of ~5), initial sync A->B, then 50,000 offline
 * edits on each side (80% field sets, 10% interest adds, 10% removes of an
 * existing interest) and one sync both ways. Beside it, in the same run, raw
 * RocksDB writing the same number of documents of the same size.
 *
 *   bench_sync [--runs N] [--docs N] [--edits N] [--json]
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/engine.h"

static const char *const cities[] = {"Berlin", "Lisbon", "Paris", "Oslo",  "Rome",
                                     "Porto",  "Lyon",   "Turin", "Graz",  "Bern",
                                     "Split",  "Cork",   "Ghent", "Malmo", "Brno"};
static const char *const interests[] = {
    "hiking",  "chess",   "photography", "climbing", "cooking", "running", "cycling", "jazz",
    "poetry",  "sailing", "gardening",   "coding",   "drawing", "skiing",  "yoga",    "opera",
    "fishing", "surfing", "knitting",    "birding",  "films",   "rowing",  "tennis",  "go",
    "pottery", "diving",  "history",     "baking",   "archery", "dance"};
#define NCITIES (sizeof(cities) / sizeof(cities[0]))
#define NINTERESTS 30

static uint64_t rng_state = 42;
static uint64_t rnd(void) {
  uint64_t x = rng_state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  rng_state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the calling thread: an in-process sync does its work on it
 * (both stores; RocksDB's background flushes run elsewhere), and on a shared
 * machine it moves less than wall time when other tenants take the CPU. */
static double thread_cpu_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what) {
  fprintf(stderr, "bench_sync: %s: %s\n", what, cs_errmsg());
  exit(1);
}

/* Each document's interests, so that removes pick an existing one. */
typedef struct shadow {
  uint32_t bits; /* interest i present <=> bit i */
} shadow;

static void field_value(char *out, size_t n, int field) {
  switch (field) {
  case 0:
    snprintf(out, n, "user%u", (unsigned)(rnd() % 100000));
    break;
  case 1:
    snprintf(out, n, "u%u@mail.example", (unsigned)(rnd() % 100000));
    break;
  case 2:
    snprintf(out, n, "%s", cities[rnd() % NCITIES]);
    break;
  default:
    snprintf(out, n, "s%u", (unsigned)(rnd() % 50));
  }
}

static const char *const str_fields[] = {"name", "email", "city", "status"};
static const char *const int_fields[] = {"age", "score", "level", "visits"};

static void populate(cs_store *s, shadow *sh, int docs) {
  cs_batch *b;
  char inst[32], val[64];
  if (cs_batch_begin(&b, s))
    die("batch");
  for (int d = 0; d < docs; d++) {
    snprintf(inst, sizeof(inst), "profile_%d", d);
    for (int f = 0; f < 4; f++) {
      field_value(val, sizeof(val), f);
      if (cs_batch_set_str(b, "UserProfile", inst, str_fields[f], val))
        die("populate");
      if (cs_batch_set_int(b, "UserProfile", inst, int_fields[f], (int64_t)(rnd() % 1000)))
        die("populate");
    }
    sh[d].bits = 0;
    for (int k = 0; k < 5; k++) {
      int i = (int)(rnd() % NINTERESTS);
      sh[d].bits |= 1u << i;
      if (cs_batch_set_add(b, "UserProfile", inst, "interests", interests[i]))
        die("populate");
    }
  }
  if (cs_batch_commit(b))
    die("commit");
}

static void edit(cs_store *s, shadow *sh, int docs, int edits) {
  cs_batch *b;
  char inst[32], val[64];
  if (cs_batch_begin(&b, s))
    die("batch");
  for (int e = 0; e < edits; e++) {
    int d = (int)(rnd() % (uint64_t)docs), r = (int)(rnd() % 10);
    snprintf(inst, sizeof(inst), "profile_%d", d);
    if (r < 8) {
      int f = (int)(rnd() % 8);
      if (f < 4) {
        field_value(val, sizeof(val), f);
        if (cs_batch_set_str(b, "UserProfile", inst, str_fields[f], val))
          die("edit");
      } else if (cs_batch_set_int(b, "UserProfile", inst, int_fields[f - 4],
                                  (int64_t)(rnd() % 1000)))
        die("edit");
    } else if (r == 8 || sh[d].bits == 0) {
      int i = (int)(rnd() % NINTERESTS);
      sh[d].bits |= 1u << i;
      if (cs_batch_set_add(b, "UserProfile", inst, "interests", interests[i]))
        die("edit");
    } else {
      int i;
      do
        i = (int)(rnd() % NINTERESTS);
      while (!(sh[d].bits & (1u << i)));
      sh[d].bits &= ~(1u << i);
      if (cs_batch_set_remove(b, "UserProfile", inst, "interests", interests[i]))
        die("edit");
    }
  }
  if (cs_batch_commit(b))
    die("commit");
}

static long peak_rss_bytes(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss * 1024L;
}

/* Every figure is a double so that medians are taken one way. */
typedef struct figures {
  double populate_s, initial_sync_s, edits_s, sync_s, sync_cpu_s, raw_batch_s, raw_rmw_s;
  double single_fast_per_s, single_sync_per_s;
  double sync_bytes, initial_bytes, applied, doc_bytes;
  double http_sync_s, small_syncs_per_s, small_p50_ms, small_p99_ms;
  int converged;
} figures;

static cs_store *open_store(const char *dir, const char *name, cs_durability dur) {
  char path[512];
  cs_store_options o = CS_STORE_OPTIONS_INIT;
  cs_store *s;
  o.durability = dur;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  if (cs_store_open(&s, path, &o))
    die("open");
  return s;
}

/* Raw RocksDB: the same number of documents of the same encoded size, one
 * WriteBatch (WAL on); then `rmw` read-modify-writes in batches of 1,000. */
static void raw_rocksdb(figures *f, const char *dir, int docs, size_t avg, int rmw) {
  char path[512];
  cs_db *db;
  cs_wbatch *b;
  bool moved;
  cs_db_options o = CS_DB_OPTIONS_INIT;
  char *val = malloc(avg + 1);
  cs_buf key = CS_BUF_INIT, got = CS_BUF_INIT;
  char inst[32];
  double t0;

  memset(val, 'x', avg);
  snprintf(path, sizeof(path), "%s/raw", dir);
  if (cs__db_open(&db, &moved, path, &o) || cs__wbatch_new(&b, db))
    die("raw open");
  t0 = now_s();
  for (int d = 0; d < docs; d++) {
    snprintf(inst, sizeof(inst), "profile_%d", d);
    cs__buf_clear(&key);
    cs__key_doc(&key, "UserProfile", inst);
    cs__wbatch_put(b, CS_CF_DOCS, key.ptr, key.size, val, avg);
  }
  if (cs__db_write(db, b, false))
    die("raw write");
  f->raw_batch_s = now_s() - t0;
  t0 = now_s();
  for (int i = 0; i < rmw; i++) {
    snprintf(inst, sizeof(inst), "profile_%d", (int)(rnd() % (uint64_t)docs));
    cs__buf_clear(&key);
    cs__key_doc(&key, "UserProfile", inst);
    cs__buf_clear(&got);
    if (cs__db_get(&got, db, CS_CF_DOCS, key.ptr, key.size))
      die("raw get");
    got.ptr[0] ^= 1;
    if (i % 1000 == 0)
      cs__wbatch_clear(b);
    cs__wbatch_put(b, CS_CF_DOCS, key.ptr, key.size, got.ptr, got.size);
    if (i % 1000 == 999 && cs__db_write(db, b, false))
      die("raw rmw");
  }
  if (cs__db_write(db, b, false))
    die("raw rmw");
  f->raw_rmw_s = now_s() - t0;
  cs__wbatch_free(b);
  cs__db_close(db);
  cs_buf_dispose(&key);
  cs_buf_dispose(&got);
  free(val);
}

static uint64_t avg_doc_bytes(cs_store *s) {
  cs_iter *it;
  uint64_t total = 0, n = 0;
  if (cs__iter_new(&it, s->db, CS_CF_DOCS, NULL, 0, NULL, 0))
    die("iter");
  for (; cs__iter_valid(it); cs__iter_next(it), n++)
    total += cs__iter_value(it).len;
  cs__iter_free(it);
  return n ? total / n : 0;
}

static double single_actions(const char *dir, const char *name, cs_durability dur, int n) {
  cs_store *s = open_store(dir, name, dur);
  char data[64];
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    cs_action a = {CS_ACTION_UPDATE, "UserProfile", "p", data};
    snprintf(data, sizeof(data), "{\"age\":%d}", i);
    if (cs_queue_offline_action(s, &a))
      die("single action");
  }
  double dt = now_s() - t0;
  cs_store_close(s);
  return n / dt;
}

/* The peer for store b as seen from a: in process, or over loopback HTTP
 * through b's embedded server (requests signed and verified). */
static cs_peer *make_peer(cs_server **srv, cs_store *a, cs_store *b, int http) {
  cs_peer *p;
  *srv = NULL;
  if (!http) {
    if (cs_peer_local(&p, b))
      die("peer");
    return p;
  }
  char key[65], url[64];
  const char *const all[] = {"*"};
  cs_server_options so = CS_SERVER_OPTIONS_INIT;
  so.port = 0;
  so.max_body = 256u << 20;
  cs_store_public_key(key, a);
  if (cs_trust(b, key, all, 1, all, 1) || cs_server_start(srv, b, &so))
    die("server");
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)cs_server_port(*srv));
  if (cs_peer_http(&p, a, url, NULL))
    die("http peer");
  return p;
}

static int cmp_double(const void *a, const void *b);

/* Small syncs over HTTP: one edit, one sync, n times; rate and latency. */
static void small_syncs(figures *f, cs_store *a, cs_peer *p, int n) {
  double *lat = malloc((size_t)n * sizeof(double)), t0 = now_s();
  char data[64];
  for (int i = 0; i < n; i++) {
    cs_action act = {CS_ACTION_UPDATE, "UserProfile", "profile_0", data};
    snprintf(data, sizeof(data), "{\"score\":%d}", i);
    if (cs_queue_offline_action(a, &act))
      die("small edit");
    double t = now_s();
    if (cs_sync(NULL, a, p))
      die("small sync");
    lat[i] = now_s() - t;
  }
  f->small_syncs_per_s = n / (now_s() - t0);
  qsort(lat, (size_t)n, sizeof(double), cmp_double);
  f->small_p50_ms = lat[n / 2] * 1000;
  f->small_p99_ms = lat[n * 99 / 100] * 1000;
  free(lat);
}

static void one_run(figures *f, int docs, int edits, int http) {
  char tmpl[] = "/tmp/cs-bench-sync-XXXXXX", cmd[600];
  char *dir = mkdtemp(tmpl);
  shadow *sa = calloc((size_t)docs, sizeof(shadow)), *sb = calloc((size_t)docs, sizeof(shadow));
  cs_store *a, *b;
  cs_peer *p;
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  double t0;

  if (!http)
    memset(f, 0, sizeof(*f));
  /* WAL on, fsync per commit: each side's 50,000 edits are one commit. */
  a = open_store(dir, "a", CS_DURABILITY_SYNC);
  b = open_store(dir, "b", CS_DURABILITY_SYNC);
  t0 = now_s();
  populate(a, sa, docs);
  f->populate_s = now_s() - t0;
  memcpy(sb, sa, (size_t)docs * sizeof(shadow));
  cs_server *srv;
  p = make_peer(&srv, a, b, http);
  t0 = now_s();
  if (cs_sync(&r, a, p))
    die("initial sync");
  f->initial_sync_s = now_s() - t0;
  f->initial_bytes = r.bytes_sent + r.bytes_received;
  cs_sync_result_dispose(&r);
  r = (cs_sync_result)CS_SYNC_RESULT_INIT;
  t0 = now_s();
  edit(a, sa, docs, edits);
  edit(b, sb, docs, edits);
  f->edits_s = now_s() - t0;
  double c0 = thread_cpu_s();
  t0 = now_s();
  if (cs_sync(&r, a, p))
    die("sync");
  if (http) {
    f->http_sync_s = now_s() - t0;
    small_syncs(f, a, p, 2000);
  } else {
    f->sync_s = now_s() - t0;
    f->sync_cpu_s = thread_cpu_s() - c0;
  }
  if (!http) {
    f->sync_bytes = r.bytes_sent + r.bytes_received;
    f->applied = r.received + r.sent;
  }
  cs_sync_result_dispose(&r);
  /* Convergence: every document reads the same on both stores. */
  f->converged = 1;
  for (int d = 0; d < docs && f->converged; d++) {
    char inst[32];
    cs_buf x = CS_BUF_INIT, y = CS_BUF_INIT;
    snprintf(inst, sizeof(inst), "profile_%d", d);
    if (cs_get_local_data(&x, a, "UserProfile", inst) ||
        cs_get_local_data(&y, b, "UserProfile", inst) || strcmp(x.ptr, y.ptr) != 0)
      f->converged = 0;
    cs_buf_dispose(&x);
    cs_buf_dispose(&y);
  }
  cs_peer_free(p);
  cs_server_stop(srv);
  if (http) {
    cs_store_close(a);
    cs_store_close(b);
    goto cleanup;
  }
  f->doc_bytes = (double)avg_doc_bytes(a);
  cs_store_close(a);
  cs_store_close(b);
  raw_rocksdb(f, dir, docs, (size_t)f->doc_bytes, 2 * edits);
  f->single_fast_per_s = single_actions(dir, "single_fast", CS_DURABILITY_FAST, 5000);
  f->single_sync_per_s = single_actions(dir, "single_sync", CS_DURABILITY_SYNC, 300);
cleanup:
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", dir);
  free(sa);
  free(sb);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median_at(const figures *fs, int runs, size_t offset) {
  double v[16];
  for (int i = 0; i < runs; i++)
    memcpy(&v[i], (const char *)&fs[i] + offset, sizeof(double));
  qsort(v, (size_t)runs, sizeof(double), cmp_double);
  return v[runs / 2];
}

#define MEDIAN(field) median_at(fs, runs, offsetof(figures, field))

int main(int argc, char **argv) {
  int runs = 3, docs = 10000, edits = 50000, json = 0;
  figures fs[16];

  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--runs") && i + 1 < argc)
      runs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--docs") && i + 1 < argc)
      docs = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--edits") && i + 1 < argc)
      edits = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--json"))
      json = 1;
    else {
      fprintf(stderr, "usage: bench_sync [--runs N] [--docs N] [--edits N] [--json]\n");
      return 2;
    }
  }
  if (runs < 1 || runs > 15 || docs < 1 || edits < 1) {
    fprintf(stderr, "bench_sync: runs must be 1..15, docs and edits positive\n");
    return 2;
  }
  long w1_rss = 0;
  for (int i = 0; i < runs; i++) {
    rng_state = 42 + (uint64_t)i;
    one_run(&fs[i], docs, edits, 0);
    /* The first run starts from a fresh process: its peak is W1's (both
     * stores, populate included), before the HTTP runs add a server. */
    if (i == 0)
      w1_rss = peak_rss_bytes();
    rng_state = 42 + (uint64_t)i; /* the same work, over HTTP */
    one_run(&fs[i], docs, edits, 1);
    if (!fs[i].converged) {
      fprintf(stderr, "bench_sync: run %d did not converge\n", i);
      return 1;
    }
  }
  double sync_s = MEDIAN(sync_s), edits_s = MEDIAN(edits_s), raw_s = MEDIAN(raw_batch_s);
  double merge_ops = 2.0 * edits / sync_s, local = 2.0 * edits / edits_s;
  double bytes_per_edit = MEDIAN(sync_bytes) / (2.0 * edits);
  double raw_rmw = 2.0 * edits / MEDIAN(raw_rmw_s);
  long rss = peak_rss_bytes();
  if (json) {
    printf("{\"workload\":\"W1\",\"merge_ops_per_s\":%.0f,\"local_edits_per_s\":%.0f,"
           "\"local_edits_fast_single_per_s\":%.0f,\"local_edits_sync_single_per_s\":%.0f,"
           "\"delta_bytes_per_edit\":%.2f,\"initial_sync_bytes\":%.0f,\"sync_s\":%.4f,"
           "\"sync_cpu_s\":%.4f,"
           "\"raw_batch_s\":%.4f,\"raw_rmw_per_s\":%.0f,\"doc_bytes\":%.0f,\"peak_rss_bytes\":%ld,"
           "\"http_sync_s\":%.4f,\"http_small_syncs_per_s\":%.0f,\"http_small_p50_ms\":%.2f,"
           "\"http_small_p99_ms\":%.2f,\"w1_peak_rss_bytes\":%ld,\"runs\":%d}\n",
           merge_ops, local, MEDIAN(single_fast_per_s), MEDIAN(single_sync_per_s), bytes_per_edit,
           MEDIAN(initial_bytes), sync_s, MEDIAN(sync_cpu_s), raw_s, raw_rmw, MEDIAN(doc_bytes),
           rss, MEDIAN(http_sync_s), MEDIAN(small_syncs_per_s), MEDIAN(small_p50_ms),
           MEDIAN(small_p99_ms), w1_rss, runs);
    return 0;
  }
  printf("W1 end to end: %d docs, %d edits per side, two RocksDB stores (WAL on), median of %d\n\n",
         docs, edits, runs);
  printf("%-44s %14s\n", "figure", "value");
  printf("%-44s %14.0f\n", "local edits/s (batch, one fsync'd commit)", local);
  printf("%-44s %14.0f\n", "local edits/s (one action per commit, fast)",
         MEDIAN(single_fast_per_s));
  printf("%-44s %14.0f\n", "local edits/s (one action per commit, sync)",
         MEDIAN(single_sync_per_s));
  printf("%-44s %14.0f\n", "merge ops/s (one sync, both ways)", merge_ops);
  printf("%-44s %14.3f\n", "sync time, s", sync_s);
  printf("%-44s %14.3f\n", "sync CPU time of the calling thread, s", MEDIAN(sync_cpu_s));
  printf("%-44s %14.2f\n", "bytes exchanged per edit", bytes_per_edit);
  printf("%-44s %14.0f\n", "initial sync bytes (10k docs A->B)", MEDIAN(initial_bytes));
  printf("%-44s %14.0f\n", "stored document bytes (mean)", MEDIAN(doc_bytes));
  printf("%-44s %14.4f\n", "raw RocksDB WriteBatch of the docs, s", raw_s);
  printf("%-44s %14.0f\n", "raw RocksDB read-modify-writes/s", raw_rmw);
  printf("%-44s %14.2f\n", "sync time / raw write time", sync_s / raw_s);
  printf("%-44s %14.3f\n", "W1 sync over loopback HTTP, s", MEDIAN(http_sync_s));
  printf("%-44s %14.2f\n", "HTTP sync time / in-process sync time", MEDIAN(http_sync_s) / sync_s);
  printf("%-44s %14.0f\n", "small syncs/s over HTTP (1 edit each)", MEDIAN(small_syncs_per_s));
  printf("%-44s %14.2f\n", "small sync p50 latency, ms", MEDIAN(small_p50_ms));
  printf("%-44s %14.2f\n", "small sync p99 latency, ms", MEDIAN(small_p99_ms));
  printf("%-44s %14.1f\n", "peak RSS, first W1 run in process, MiB", (double)w1_rss / 1048576.0);
  printf("%-44s %14.1f\n", "peak RSS, whole bench process, MiB", (double)rss / 1048576.0);
  printf("\nRESULT workload=W1 merge_ops_per_s=%.0f local_edits_per_s=%.0f "
         "local_edits_sync_single_per_s=%.0f delta_bytes_per_edit=%.2f sync_s=%.4f sync_cpu_s=%.4f "
         "raw_batch_s=%.4f http_sync_s=%.4f http_small_syncs_per_s=%.0f peak_rss_bytes=%ld "
         "w1_peak_rss_bytes=%ld\n",
         merge_ops, local, MEDIAN(single_sync_per_s), bytes_per_edit, sync_s, MEDIAN(sync_cpu_s),
         raw_s, MEDIAN(http_sync_s), MEDIAN(small_syncs_per_s), rss, w1_rss);
  return 0;
}
