/*
 * In-memory join throughput on W1-style deltas.
 *
 * 10,000 documents of 8 scalar fields (strings and ints) and an `interests`
 * set of about 5 elements, replicated on two replicas. Each replica makes
 * 50,000 random edits (80% field set, 10% set add, 10% set remove of an
 * existing element), each one delta. The timed part joins each side's deltas
 * into the other (100,000 delta joins, each followed by the knowledge join);
 * building the states and deltas is not timed. Median of 5 runs.
 *
 * Usage: bench_crdt_merge [docs] [edits_per_replica] [runs]
 * Output: a table, then one line `RESULT name=crdt_merge_w1 ...` to parse.
 * Wall time is the figure asked for; CPU time is printed beside it because a
 * shared machine's load moves wall time a lot.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crdt/crdt.h"

#define NFIELDS 8
#define NINTERESTS 24

static const char *const field_names[NFIELDS] = {"age",  "bio",   "city",  "email",
                                                 "name", "phone", "score", "zip"};
static const char *const interests[NINTERESTS] = {
    "art",         "baking", "chess",  "climbing", "cycling", "dance",  "film",   "gaming",
    "gardens",     "hiking", "jazz",   "knitting", "maps",    "music",  "opera",  "painting",
    "photography", "poetry", "robots", "running",  "sailing", "skiing", "tennis", "travel"};

typedef struct replica {
  cs_replica id;
  cs_dotset ctx;
  cs_doc *docs;
  cs_clock clock;
} replica;

typedef struct edit {
  size_t doc;
  cs_delta delta;
} edit;

static uint64_t rng_state = 42;
static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void die(const char *what, int rc) {
  fprintf(stderr, "bench_crdt_merge: %s failed: %d %s\n", what, rc, cs_errmsg());
  exit(1);
}

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Field i is a string for even i, an int for odd i. */
static void field_value(cs_val *out, int field) {
  char buf[32];
  int rc;
  if (field % 2) {
    *out = cs__val_int((int64_t)(rnd() % 100000));
    return;
  }
  snprintf(buf, sizeof buf, "value-%llu", (unsigned long long)(rnd() % 100000));
  if ((rc = cs__val_str(out, buf, strlen(buf))))
    die("cs__val_str", rc);
}

static void apply(replica *r, size_t doc, const cs_delta *d) {
  int rc;
  if ((rc = cs__doc_join(&r->docs[doc], &r->ctx, &d->doc, &d->ctx)))
    die("cs__doc_join", rc);
  if ((rc = cs__dotset_join(&r->ctx, &d->ctx)))
    die("cs__dotset_join", rc);
}

static void populate(replica *a, size_t ndocs) {
  for (size_t k = 0; k < ndocs; k++) {
    cs_delta d;
    uint64_t first, last;
    int rc;
    cs__delta_init(&d, &a->ctx, a->id, cs__clock_tick(&a->clock, 1700000000000ull));
    if ((rc = cs__delta_exist(&d, &a->docs[k], true)))
      die("cs__delta_exist", rc);
    for (int f = 0; f < NFIELDS; f++) {
      cs_val v;
      field_value(&v, f);
      if ((rc = cs__delta_reg_set(&d, &a->docs[k], field_names[f], &v)))
        die("cs__delta_reg_set", rc);
      cs__val_dispose(&v);
    }
    for (int i = 0; i < 5; i++) {
      cs_val v;
      const char *s = interests[rnd() % NINTERESTS];
      cs__val_str(&v, s, strlen(s));
      if ((rc = cs__delta_set_add(&d, &a->docs[k], "interests", &v)))
        die("cs__delta_set_add", rc);
      cs__val_dispose(&v);
    }
    cs__delta_finish(&d, &first, &last);
    apply(a, k, &d);
    cs__delta_dispose(&d);
  }
}

static void clone(replica *dst, const replica *src, size_t ndocs, cs_replica id) {
  dst->id = id;
  dst->clock = src->clock;
  memset(&dst->ctx, 0, sizeof dst->ctx);
  cs__dotset_copy(&dst->ctx, &src->ctx);
  dst->docs = calloc(ndocs, sizeof *dst->docs);
  for (size_t k = 0; k < ndocs; k++)
    if (cs__doc_copy(&dst->docs[k], &src->docs[k]))
      die("cs__doc_copy", -1);
}

static void dispose(replica *r, size_t ndocs) {
  for (size_t k = 0; k < ndocs; k++)
    cs__doc_dispose(&r->docs[k]);
  free(r->docs);
  cs__dotset_dispose(&r->ctx);
}

/* Makes n random edits on r, applied locally, kept as deltas. */
static void make_edits(edit *out, replica *r, size_t ndocs, size_t n, uint64_t *counts) {
  for (size_t i = 0; i < n; i++) {
    size_t k = (size_t)(rnd() % ndocs);
    cs_doc *doc = &r->docs[k];
    unsigned p = (unsigned)(rnd() % 100);
    uint64_t first, last;
    cs_delta *d = &out[i].delta;
    int rc = 0;
    out[i].doc = k;
    cs__delta_init(d, &r->ctx, r->id, cs__clock_tick(&r->clock, 1700000000000ull + i));
    if (p < 80) {
      cs_val v;
      int f = (int)(rnd() % NFIELDS);
      field_value(&v, f);
      rc = cs__delta_reg_set(d, doc, field_names[f], &v);
      cs__val_dispose(&v);
      counts[0]++;
    } else {
      cs_field *set = cs__doc_field(doc, "interests");
      if (p < 90 || !set || set->u.set.len == 0) {
        cs_val v;
        const char *s = interests[rnd() % NINTERESTS];
        cs__val_str(&v, s, strlen(s));
        rc = cs__delta_set_add(d, doc, "interests", &v);
        cs__val_dispose(&v);
        counts[1]++;
      } else {
        rc = cs__delta_set_remove(d, doc, "interests",
                                  &set->u.set.elems[rnd() % set->u.set.len].val);
        counts[2]++;
      }
    }
    if (rc)
      die("mutator", rc);
    cs__delta_finish(d, &first, &last);
    apply(r, k, d);
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  /* --json anywhere: one JSON object instead of the table (cosmicsync bench). */
  bool json = false;
  int nargs = 0;
  char *args[3] = {NULL, NULL, NULL};
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = true;
    else if (nargs < 3)
      args[nargs++] = argv[i];
  }
  size_t ndocs = args[0] ? strtoul(args[0], NULL, 10) : 10000;
  size_t nedits = args[1] ? strtoul(args[1], NULL, 10) : 50000;
  int runs = args[2] ? atoi(args[2]) : 5;
  replica base = {0}, a, b;
  edit *ea, *eb;
  uint64_t counts[3] = {0, 0, 0};
  double times[64], cpu[64];
  bool converged = true;

  if (runs < 1 || runs > 64 || ndocs == 0) {
    fprintf(stderr, "usage: bench_crdt_merge [docs] [edits_per_replica] [runs<=64]\n");
    return 2;
  }
  base.id = 0xA11CEull;
  base.clock.max_skew_ms = 60000;
  base.docs = calloc(ndocs, sizeof *base.docs);
  populate(&base, ndocs);
  clone(&a, &base, ndocs, 0xA11CEull);
  clone(&b, &base, ndocs, 0xB0Bull);
  ea = calloc(nedits, sizeof *ea);
  eb = calloc(nedits, sizeof *eb);
  make_edits(ea, &a, ndocs, nedits, counts);
  make_edits(eb, &b, ndocs, nedits, counts);

  for (int run = 0; run < runs; run++) {
    replica x, y;
    double t0, t1, c0, c1;
    clone(&x, &a, ndocs, a.id);
    clone(&y, &b, ndocs, b.id);
    c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    t0 = clock_s(CLOCK_MONOTONIC);
    /* Each side joins the other's deltas against its own knowledge. */
    for (size_t i = 0; i < nedits; i++)
      apply(&y, ea[i].doc, &ea[i].delta);
    for (size_t i = 0; i < nedits; i++)
      apply(&x, eb[i].doc, &eb[i].delta);
    t1 = clock_s(CLOCK_MONOTONIC);
    c1 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    times[run] = t1 - t0;
    cpu[run] = c1 - c0;
    if (run == 0) {
      converged = cs__dotset_equal(&x.ctx, &y.ctx);
      for (size_t k = 0; k < ndocs && converged; k++)
        converged = cs__doc_equal(&x.docs[k], &y.docs[k]);
    }
    dispose(&x, ndocs);
    dispose(&y, ndocs);
  }
  qsort(times, (size_t)runs, sizeof times[0], cmp_double);
  qsort(cpu, (size_t)runs, sizeof cpu[0], cmp_double);
  {
    double med = times[runs / 2], cmed = cpu[runs / 2], ops = (double)(2 * nedits);
    if (json) {
      printf("{\"workload\":\"W1-merge-in-memory\",\"docs\":%zu,\"edits_per_replica\":%zu,"
             "\"merge_ops_per_s\":%.0f,\"merge_ops_per_cpu_s\":%.0f,\"runs\":%d,"
             "\"converged\":%s}\n",
             ndocs, nedits, ops / med, ops / cmed, runs, converged ? "true" : "false");
      goto out;
    }
    printf("crdt merge benchmark (W1-style deltas, in memory)\n");
    printf("  documents            %zu (8 scalar fields + interests set)\n", ndocs);
    printf("  edits per replica    %zu (field set %llu, set add %llu, set remove %llu in total)\n",
           nedits, (unsigned long long)counts[0], (unsigned long long)counts[1],
           (unsigned long long)counts[2]);
    printf("  delta joins per run  %.0f\n", ops);
    printf("  runs                 %d (min %.4f s, median %.4f s, max %.4f s)\n", runs, times[0],
           med, times[runs - 1]);
    printf("  throughput (median)  %.0f delta joins/s (%.1f ns each)\n", ops / med,
           med / ops * 1e9);
    printf("  CPU time (median)    %.4f s: %.0f delta joins per CPU second\n", cmed, ops / cmed);
    printf("  replicas converged   %s\n", converged ? "yes" : "NO");
    printf("RESULT name=crdt_merge_w1 docs=%zu edits_per_replica=%zu runs=%d ops=%.0f "
           "median_s=%.6f ops_per_s=%.0f cpu_median_s=%.6f ops_per_cpu_s=%.0f converged=%d\n",
           ndocs, nedits, runs, ops, med, ops / med, cmed, ops / cmed, converged ? 1 : 0);
  }
out:
  for (size_t i = 0; i < nedits; i++) {
    cs__delta_dispose(&ea[i].delta);
    cs__delta_dispose(&eb[i].delta);
  }
  free(ea);
  free(eb);
  dispose(&a, ndocs);
  dispose(&b, ndocs);
  dispose(&base, ndocs);
  return converged ? 0 : 1;
}
