/*
 * cs_store: cosmicsync as an application uses it, through the public API only:
 * two RocksDB-backed stores (write-ahead log on), local edits with cs_batch_*,
 * deltas exchanged with cs_sync over an in-process peer (cs_peer_local), so the
 * figures include encoding, signing, decoding, merging and the atomic write.
 *
 *   cs_store <fast|sync> <w1|w3> <opfile> <scratch-dir>     prints one JSON line
 *
 * fast = CS_DURABILITY_FAST (WAL, no fsync), sync = CS_DURABILITY_SYNC (fsync).
 * Local edits are committed in batches of CS_BENCH_BATCH actions (default 1000).
 * W2 needs one store per client (1,549 RocksDB databases): not run here.
 */
#include <cosmicsync.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "opfile.h"

#define MODEL "UserProfile"

static const char *mode_name;

static void fail(const char *what, int rc) {
  printf("{\"contender\":\"cosmicsync-store-%s\",\"ok\":false,\"error\":\"%s: %s\"}\n", mode_name,
         what, rc ? cs_errmsg() : "");
  exit(1);
}
#define CHECK(call)                                                                                \
  do {                                                                                             \
    int rc_ = (call);                                                                              \
    if (rc_ != 0) fail(#call, rc_);                                                                \
  } while (0)

static int cmp_str(const void *x, const void *y) {
  return strcmp(*(const char *const *)x, *(const char *const *)y);
}

static int one_op(cs_batch *b, const bench_op *op) {
  switch (op->kind) {
  case 'S':
    return op->vtype == 'i' ? cs_batch_set_int(b, MODEL, op->doc_name, op->field, op->ival)
                            : cs_batch_set_str(b, MODEL, op->doc_name, op->field, op->val);
  case 'A': return cs_batch_set_add(b, MODEL, op->doc_name, op->field, op->val);
  default: return cs_batch_set_remove(b, MODEL, op->doc_name, op->field, op->val);
  }
}

/* Applies the ops of one replica in batches of `batch` actions. */
static void apply(cs_store *s, const bench_phase *ph, uint32_t replica, size_t batch) {
  cs_batch *b = NULL;
  size_t in_batch = 0;
  for (size_t i = 0; i < ph->len; i++) {
    if (ph->ops[i].replica != replica) continue;
    if (!b) CHECK(cs_batch_begin(&b, s));
    CHECK(one_op(b, &ph->ops[i]));
    if (++in_batch == batch) {
      CHECK(cs_batch_commit(b));
      b = NULL;
      in_batch = 0;
    }
  }
  if (b) CHECK(cs_batch_commit(b));
}

static cs_store *open_store(const char *dir, const char *name, cs_durability dur) {
  char path[4096], cmd[4200];
  snprintf(path, sizeof path, "%s/%s-%s", dir, name, mode_name);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd) != 0) fail("rm", 0);
  cs_store_options o = CS_STORE_OPTIONS_INIT;
  o.durability = dur;
  cs_store *s = NULL;
  CHECK(cs_store_open(&s, path, &o));
  cs_field_def defs[] = {{"interests", CS_FIELD_SET, CS_POLICY_SURFACE},
                         {"members", CS_FIELD_SET, CS_POLICY_SURFACE}};
  CHECK(cs_define_model(s, MODEL, defs, 2));
  return s;
}

/* Both stores show every instance the same way. */
static int same_data(cs_store *a, cs_store *b, uint32_t ndocs, const bench_opfile *f) {
  char **seen = calloc(ndocs ? ndocs : 1, sizeof(char *));
  for (size_t p = 0; p < f->nphases; p++)
    for (size_t i = 0; i < f->phases[p].len; i++)
      seen[f->phases[p].ops[i].doc] = (char *)f->phases[p].ops[i].doc_name;
  int same = 1;
  for (uint32_t d = 0; d < ndocs && same; d++) {
    if (!seen[d]) continue;
    cs_buf x = CS_BUF_INIT, y = CS_BUF_INIT;
    int rx = cs_get_local_data(&x, a, MODEL, seen[d]);
    int ry = cs_get_local_data(&y, b, MODEL, seen[d]);
    same = rx == ry && x.size == y.size && (x.size == 0 || memcmp(x.ptr, y.ptr, x.size) == 0);
    cs_buf_dispose(&x);
    cs_buf_dispose(&y);
  }
  free(seen);
  return same;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: cs_store <fast|sync> <w1|w3> <opfile> <scratch-dir>\n");
    return 2;
  }
  mode_name = argv[1];
  const char *wl = argv[2];
  cs_durability dur = strcmp(mode_name, "sync") == 0 ? CS_DURABILITY_SYNC : CS_DURABILITY_FAST;
  if (strcmp(wl, "w2") == 0) {
    printf("{\"contender\":\"cosmicsync-store-%s\",\"workload\":\"w2\",\"ok\":false,"
           "\"error\":\"not run: B3.1 would need one RocksDB store per client\"}\n",
           mode_name);
    return 0;
  }
  size_t batch = 1000;
  if (getenv("CS_BENCH_BATCH")) batch = (size_t)strtoul(getenv("CS_BENCH_BATCH"), NULL, 10);
  if (batch == 0) batch = 1;
  bench_opfile f;
  if (bench_opfile_load(&f, argv[3]) != 0) return 1;
  const bench_phase *init = bench_opfile_phase(&f, "init");
  const bench_phase *edit = bench_opfile_phase(&f, "edit");

  double t0 = bench_now_ms();
  cs_store *a = open_store(argv[4], "A", dur);
  cs_store *b = open_store(argv[4], "B", dur);
  apply(a, init, 0, batch);

  /* B is new: its first sync brings A's whole state. */
  cs_peer *to_a = NULL, *to_b = NULL;
  CHECK(cs_peer_local(&to_a, a));
  CHECK(cs_peer_local(&to_b, b));
  cs_sync_result r0 = CS_SYNC_RESULT_INIT;
  double t = bench_now_ms();
  CHECK(cs_sync(&r0, b, to_a));
  double load_ms = bench_now_ms() - t;
  size_t state_bytes = r0.bytes_received;
  cs_sync_result_dispose(&r0);

  t = bench_now_ms();
  apply(a, edit, 0, batch);
  apply(b, edit, 1, batch);
  double local_ms = bench_now_ms() - t;

  /* One exchange, both directions, merged durably on both sides. */
  cs_sync_result r1 = CS_SYNC_RESULT_INIT;
  t = bench_now_ms();
  CHECK(cs_sync(&r1, a, to_b));
  double merge_ms = bench_now_ms() - t;
  size_t delta_bytes = r1.bytes_sent + r1.bytes_received;
  cs_sync_result_dispose(&r1);
  double total_ms = bench_now_ms() - t0;

  int converged = same_data(a, b, f.ndocs, &f);
  int add_wins = -1;
  if (strcmp(wl, "w3") == 0 && init->len > 0) {
    /* Every initially added element is in the set on B after the exchange. */
    cs_buf x = CS_BUF_INIT;
    add_wins = cs_get_local_data(&x, b, MODEL, init->ops[0].doc_name) == 0;
    /* Every JSON string of the document, sorted, then each element looked up. */
    size_t n = 0, cap = 1024;
    char **tok = malloc(cap * sizeof(char *));
    for (char *p = add_wins ? x.ptr : NULL; p && (p = strchr(p, '"')) != NULL;) {
      char *end = strchr(p + 1, '"');
      if (!end) break;
      *end = '\0';
      if (n == cap) tok = realloc(tok, (cap *= 2) * sizeof(char *));
      tok[n++] = p + 1;
      p = end + 1;
    }
    qsort(tok, n, sizeof(char *), cmp_str);
    for (size_t i = 0; add_wins && i < init->len; i++) {
      const char *key = init->ops[i].val;
      add_wins = bsearch(&key, tok, n, sizeof(char *), cmp_str) != NULL;
    }
    free(tok);
    cs_buf_dispose(&x);
  }
  size_t edits = edit->len;
  printf("{\"contender\":\"cosmicsync-store-%s\",\"workload\":\"%s\",\"ok\":true", mode_name, wl);
  printf(",\"edits\":%zu,\"local_ms\":%.4f,\"encode_ms\":0,\"merge_ms\":%.4f,\"load_ms\":%.4f", edits,
         local_ms, merge_ms, load_ms);
  printf(",\"total_ms\":%.4f,\"delta_bytes\":%zu,\"state_bytes\":%zu,\"bytes_per_edit\":%.4f",
         total_ms, delta_bytes, state_bytes, (double)delta_bytes / edits);
  printf(",\"merge_ops_s\":%.1f,\"local_ops_s\":%.1f", edits / (merge_ms / 1e3),
         edits / (local_ms / 1e3));
  printf(",\"converged\":%s", converged ? "true" : "false");
  if (add_wins >= 0) printf(",\"add_wins\":%s", add_wins ? "true" : "false");
  printf(",\"rss_kib\":%ld,\"batch\":%zu,\"set_model\":\"native add-wins OR-set field\"}\n",
         bench_peak_rss_kib(), batch);
  cs_peer_free(to_a);
  cs_peer_free(to_b);
  cs_store_close(a);
  cs_store_close(b);
  bench_opfile_dispose(&f);
  return 0;
}
