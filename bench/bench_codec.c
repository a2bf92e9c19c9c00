/*
 * Codec benchmark on workload W1: 10,000 UserProfile documents (8 scalar
 * fields and an `interests` set) created by a seed replica; two replicas then
 * make 50,000 random edits each (80% field sets, 10% set adds, 10% set
 * removes) with the CRDT mutators. Each side's delta is its 50,000 actions in
 * ONE sync message. Reports bytes per edit, encode/decode throughput (median
 * of 5 runs, thread CPU time), the full-state message of the 10,000 documents, and msgpack-c's
 * own pack/unpack speed on comparable data for reference.
 *
 * Usage: bench_codec [seed]   (CS_SEED also works). Timings are printed, not
 * asserted.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/codec.h"

#define NDOCS 10000
#define NEDITS 50000
#define RUNS 5

static const char *const k_fields[8] = {"age",   "city",   "country", "name",
                                        "score", "status", "theme",   "verified"};
static const char *const k_cities[] = {"Oslo",   "Lima",  "Paris",   "Berlin", "Tokyo", "Austin",
                                       "Cairo",  "Delhi", "Quito",   "Lagos",  "Perth", "Madrid",
                                       "Dublin", "Seoul", "Nairobi", "Toronto"};
static const char *const k_countries[] = {"NO", "PE", "FR", "DE", "JP", "US", "EG", "IN",
                                          "EC", "NG", "AU", "ES", "IE", "KR", "KE", "CA"};
static const char *const k_names[] = {"Ada",   "Bruno", "Chloe", "Dmitri", "Emma",  "Farid",
                                      "Grace", "Hiro",  "Ines",  "Jonas",  "Kofi",  "Lena",
                                      "Mateo", "Nora",  "Omar",  "Priya",  "Quinn", "Rosa"};
static const char *const k_status[] = {"online", "away", "busy", "offline"};
static const char *const k_themes[] = {"dark", "light", "system"};
static const char *const k_interests[] = {
    "music", "chess", "hiking", "cooking", "travel", "reading", "cycling", "gaming",
    "yoga",  "photo", "movies", "running", "coding", "art",     "dance",   "garden",
    "tea",   "jazz",  "climb",  "swim",    "poetry", "film",    "birds",   "sailing"};
#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t rng_state;
static uint64_t rnd(void) {
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
static uint64_t below(uint64_t n) {
  return rnd() % n;
}

/* Thread CPU time, not wall time: the benchmark shares its machine with
 * builds and tests, and time spent preempted is not codec time. */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static _Noreturn void die(const char *what, int rc) {
  fprintf(stderr, "bench_codec: %s failed: %d %s\n", what, rc, cs_errmsg());
  exit(1);
}

/* A random value for scalar field f (as the UI would write it). */
static void field_value(cs_val *v, int f) {
  const char *s = NULL;
  memset(v, 0, sizeof(*v));
  switch (f) {
  case 0:
    *v = cs__val_int(13 + (int64_t)below(87));
    return;
  case 1:
    s = k_cities[below(N_OF(k_cities))];
    break;
  case 2:
    s = k_countries[below(N_OF(k_countries))];
    break;
  case 3:
    s = k_names[below(N_OF(k_names))];
    break;
  case 4:
    *v = cs__val_int((int64_t)below(10000));
    return;
  case 5:
    s = k_status[below(N_OF(k_status))];
    break;
  case 6:
    s = k_themes[below(N_OF(k_themes))];
    break;
  default:
    v->type = CS_VAL_BOOL;
    v->u.b = below(2);
    return;
  }
  if (cs__val_str(v, s, strlen(s)) != 0)
    die("value", CS_ENOMEM);
}

typedef struct replica {
  cs_replica id;
  cs_clock clock;
  uint64_t ms;
  cs_dotset ctx;
  cs_doc *docs;
  cs_wire_action *log;
  size_t nlog;
} replica;

static char g_names[NDOCS][16];

/* One action on doc i: runs the mutator, logs the delta, applies it. */
static void act(replica *r, uint32_t i, int kind) {
  cs_delta d;
  cs_val v;
  cs_hlc hlc;
  uint64_t first, last;
  int rc = 0;
  cs_wire_action *a;

  r->ms += below(3); /* bursts of edits: several per millisecond */
  hlc = cs__clock_tick(&r->clock, r->ms);
  if ((rc = cs__delta_init(&d, &r->ctx, r->id, hlc)) != 0)
    die("delta_init", rc);
  if (kind == 0) { /* create */
    rc = cs__delta_exist(&d, &r->docs[i], true);
    for (int f = 0; f < 8 && !rc; f++) {
      field_value(&v, f);
      rc = cs__delta_reg_set(&d, &r->docs[i], k_fields[f], &v);
      cs__val_dispose(&v);
    }
    for (int k = 0; k < 3 && !rc; k++) {
      const char *s = k_interests[below(N_OF(k_interests))];
      cs__val_str(&v, s, strlen(s));
      rc = cs__delta_set_add(&d, &r->docs[i], "interests", &v);
      cs__val_dispose(&v);
    }
  } else if (kind == 1) { /* field set */
    int f = (int)below(8);
    field_value(&v, f);
    rc = cs__delta_reg_set(&d, &r->docs[i], k_fields[f], &v);
    cs__val_dispose(&v);
  } else if (kind == 2) { /* set add */
    const char *s = k_interests[below(N_OF(k_interests))];
    cs__val_str(&v, s, strlen(s));
    rc = cs__delta_set_add(&d, &r->docs[i], "interests", &v);
    cs__val_dispose(&v);
  } else { /* set remove: an element present, when there is one */
    const cs_field *fl = cs__doc_field(&r->docs[i], "interests");
    const char *s = k_interests[below(N_OF(k_interests))];
    if (fl && fl->kind == CS_KIND_SET && fl->u.set.len) {
      rc = cs__val_copy(&v, &fl->u.set.elems[below(fl->u.set.len)].val);
    } else {
      rc = cs__val_str(&v, s, strlen(s));
    }
    if (!rc)
      rc = cs__delta_set_remove(&d, &r->docs[i], "interests", &v);
    cs__val_dispose(&v);
  }
  if (rc || (rc = cs__delta_finish(&d, &first, &last)) != 0)
    die("mutator", rc);
  if ((rc = cs__doc_join(&r->docs[i], &r->ctx, &d.doc, &d.ctx)) != 0 ||
      (rc = cs__dotset_join(&r->ctx, &d.ctx)) != 0)
    die("join", rc);
  a = &r->log[r->nlog++];
  memset(a, 0, sizeof(*a));
  a->instance = i; /* a document number until the message is built */
  a->origin = r->id;
  a->first = first;
  a->last = last;
  a->hlc = hlc;
  a->doc = d.doc; /* moved */
  a->ctx = d.ctx;
  memset(&d.doc, 0, sizeof(d.doc));
  memset(&d.ctx, 0, sizeof(d.ctx));
  cs__delta_dispose(&d);
}

static void replica_init(replica *r, cs_replica id, uint64_t ms, size_t nlog) {
  memset(r, 0, sizeof(*r));
  r->id = id;
  r->ms = ms;
  r->clock.max_skew_ms = 60000;
  r->docs = calloc(NDOCS, sizeof(cs_doc));
  r->log = calloc(nlog, sizeof(cs_wire_action));
}

/* The sync message carrying r's log (moved into it; instance table in first
 * reference order, as the engine builds it). */
static void delta_msg(cs_sync_msg *m, replica *r, const cs_dotset *knowledge) {
  cs_wire_model *wm = calloc(1, sizeof(*wm));
  int32_t *idx = malloc(NDOCS * sizeof(int32_t));
  memset(m, 0, sizeof(*m));
  for (size_t i = 0; i < NDOCS; i++)
    idx[i] = -1;
  m->type = CS_MSG_SYNC_REQUEST;
  m->sender = r->id;
  m->clock = r->clock.last;
  m->models = wm;
  m->nmodels = 1;
  wm->name = cs__strdup("UserProfile");
  cs__dotset_copy(&wm->knowledge, knowledge);
  wm->instances = calloc(NDOCS, sizeof(char *));
  wm->actions = r->log;
  wm->nactions = r->nlog;
  for (size_t k = 0; k < r->nlog; k++) {
    uint32_t doc = wm->actions[k].instance;
    if (idx[doc] < 0) {
      idx[doc] = (int32_t)wm->ninstances;
      wm->instances[wm->ninstances++] = cs__strdup(g_names[doc]);
    }
    wm->actions[k].instance = (uint32_t)idx[doc];
  }
  r->log = NULL;
  r->nlog = 0;
  free(idx);
}

/* The full-state message of r's documents (instances sorted by name). */
static void state_msg(cs_sync_msg *m, const replica *r) {
  cs_wire_model *wm = calloc(1, sizeof(*wm));
  memset(m, 0, sizeof(*m));
  m->type = CS_MSG_SYNC_RESPONSE;
  m->flags = CS_MSG_F_STATES;
  m->sender = r->id;
  m->clock = r->clock.last;
  m->models = wm;
  m->nmodels = 1;
  wm->name = cs__strdup("UserProfile");
  cs__dotset_copy(&wm->knowledge, &r->ctx);
  wm->instances = calloc(NDOCS, sizeof(char *));
  wm->states = calloc(NDOCS, sizeof(cs_wire_state));
  for (size_t i = 0; i < NDOCS; i++) {
    wm->instances[i] = cs__strdup(g_names[i]); /* zero-padded: already sorted */
    wm->states[i].instance = (uint32_t)i;
    cs__doc_copy(&wm->states[i].doc, &r->docs[i]);
  }
  wm->ninstances = wm->nstates = NDOCS;
}

/* Bytes of a value in its msgpack form (the payload no encoding can drop). */
static size_t val_size(const cs_val *v) {
  switch (v->type) {
  case CS_VAL_INT: {
    int64_t i = v->u.i;
    if (i >= -32 && i < 128)
      return 1;
    if (i >= -128 && i < 256)
      return 2;
    if (i >= -32768 && i < 65536)
      return 3;
    return i >= INT32_MIN && i <= (int64_t)UINT32_MAX ? 5 : 9;
  }
  case CS_VAL_DOUBLE:
    return 9;
  case CS_VAL_STR:
    return v->len + (v->len < 32 ? 1 : v->len < 256 ? 2 : 3);
  case CS_VAL_BYTES:
    return v->len + (v->len < 256 ? 2 : 3);
  default:
    return 1;
  }
}

static size_t payload_bytes(const cs_wire_model *wm) {
  size_t n = 0;
  for (size_t k = 0; k < wm->nactions; k++) {
    const cs_doc *d = &wm->actions[k].doc;
    for (size_t f = 0; f < d->nfields; f++) {
      const cs_field *fl = &d->fields[f];
      if (fl->kind == CS_KIND_REG)
        for (size_t i = 0; i < fl->u.reg.len; i++)
          n += val_size(&fl->u.reg.entries[i].val);
      else if (fl->kind == CS_KIND_SET)
        for (size_t i = 0; i < fl->u.set.len; i++)
          n += val_size(&fl->u.set.elems[i].val);
    }
  }
  return n;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(double *v) {
  qsort(v, RUNS, sizeof(double), cmp_double);
  return v[RUNS / 2];
}

typedef struct timing {
  size_t bytes;
  double enc_s, dec_s;
} timing;

static timing time_codec(const cs_sync_msg *m) {
  double enc[RUNS], dec[RUNS];
  timing t;
  cs_buf b = CS_BUF_INIT;
  int rc;
  for (int k = 0; k < RUNS; k++) {
    cs_sync_msg back;
    double t0;
    cs__buf_clear(&b);
    t0 = now_s();
    if ((rc = cs__codec_encode_msg(&b, m)) != 0)
      die("encode", rc);
    enc[k] = now_s() - t0;
    if (getenv("CS_BENCH_VERBOSE"))
      fprintf(stderr, "encode run %d: %.2f ms\n", k, enc[k] * 1e3);
    t0 = now_s();
    if ((rc = cs__codec_decode_msg(&back, (const uint8_t *)b.ptr, b.size)) != 0)
      die("decode", rc);
    dec[k] = now_s() - t0;
    cs__sync_msg_dispose(&back);
  }
  t.bytes = b.size;
  t.enc_s = median(enc);
  t.dec_s = median(dec);
  cs_buf_dispose(&b);
  return t;
}

/* msgpack-c alone: packs n records shaped like the delta records (ints and a
 * short string) into an sbuffer, then unpacks them, as a reference speed. */
static void msgpack_reference(size_t n, double *pack_mbs, double *unpack_mbs, size_t *bytes) {
  double pk[RUNS], up[RUNS];
  msgpack_sbuffer sb;
  for (int k = 0; k < RUNS; k++) {
    msgpack_packer p;
    msgpack_unpacked u;
    size_t off = 0, items = 0;
    double t0;
    uint64_t s = 42;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&p, &sb, msgpack_sbuffer_write);
    t0 = now_s();
    for (size_t i = 0; i < n; i++) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      msgpack_pack_uint64(&p, (s >> 33) % NDOCS);
      msgpack_pack_uint64(&p, (s >> 20) & 63);
      msgpack_pack_uint64(&p, 8);
      if (i & 1)
        msgpack_pack_int64(&p, (int64_t)((s >> 40) % 10000));
      else {
        msgpack_pack_str(&p, 5);
        msgpack_pack_str_body(&p, "Paris", 5);
      }
      msgpack_pack_uint64(&p, 1);
      msgpack_pack_uint64(&p, 2);
      msgpack_pack_uint64(&p, (s >> 24) % 120000);
    }
    pk[k] = now_s() - t0;
    msgpack_unpacked_init(&u);
    t0 = now_s();
    while (msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS)
      items++;
    up[k] = now_s() - t0;
    msgpack_unpacked_destroy(&u);
    *bytes = sb.size;
    msgpack_sbuffer_destroy(&sb);
    if (items != n * 7)
      die("msgpack reference", CS_EINTERNAL);
  }
  *pack_mbs = (double)*bytes / median(pk) / 1e6;
  *unpack_mbs = (double)*bytes / median(up) / 1e6;
}

int main(int argc, char **argv) {
  const char *env = getenv("CS_SEED"), *seed_arg = NULL;
  bool json = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--json") == 0)
      json = true; /* one JSON object per workload part (cosmicsync bench) */
    else
      seed_arg = argv[i];
  }
  uint64_t seed = seed_arg ? strtoull(seed_arg, NULL, 0) : env ? strtoull(env, NULL, 0) : 1;
  replica seedr, side[2];
  cs_sync_msg dm[2], sm;
  timing td[2], ts;
  double pack_mbs, unpack_mbs;
  size_t ref_bytes;
  uint64_t t0 = 1764000000000ull;

  rng_state = seed;
  for (size_t i = 0; i < NDOCS; i++)
    snprintf(g_names[i], sizeof(g_names[i]), "profile_%05zu", i);

  /* The seed replica creates every document; both sides start from it. */
  replica_init(&seedr, 0x5eed5eed00000001ull, t0, NDOCS);
  for (uint32_t i = 0; i < NDOCS; i++)
    act(&seedr, i, 0);
  for (int s = 0; s < 2; s++) {
    replica_init(&side[s], s ? 0xb0b0b0b0b0b0b0b0ull : 0xa11ce0000000a11cull, t0 + 60000, NEDITS);
    cs__dotset_copy(&side[s].ctx, &seedr.ctx);
    for (size_t i = 0; i < NDOCS; i++)
      cs__doc_copy(&side[s].docs[i], &seedr.docs[i]);
    for (size_t e = 0; e < NEDITS; e++) {
      uint64_t p = below(100);
      act(&side[s], (uint32_t)below(NDOCS), p < 80 ? 1 : p < 90 ? 2 : 3);
    }
  }
  for (int s = 0; s < 2; s++) {
    cs_dotset k;
    cs__dotset_copy(&k, &side[s].ctx);
    delta_msg(&dm[s], &side[s], &k);
    cs__dotset_dispose(&k);
    td[s] = time_codec(&dm[s]);
  }
  state_msg(&sm, &side[0]);
  ts = time_codec(&sm);
  msgpack_reference(NEDITS, &pack_mbs, &unpack_mbs, &ref_bytes);

  if (json) {
    printf("{\"workload\":\"W1-codec\",\"delta_bytes_per_edit\":%.3f,\"full_state_bytes\":%zu,"
           "\"encode_mbps\":%.1f,\"encode_deltas_per_s\":%.0f,\"decode_mbps\":%.1f,"
           "\"decode_deltas_per_s\":%.0f,\"msgpack_pack_mbps\":%.1f,\"msgpack_unpack_mbps\":%.1f}\n",
           (double)td[0].bytes / NEDITS, ts.bytes, td[0].bytes / td[0].enc_s / 1e6,
           NEDITS / td[0].enc_s, td[0].bytes / td[0].dec_s / 1e6, NEDITS / td[0].dec_s, pack_mbs,
           unpack_mbs);
    goto out;
  }
  printf("codec benchmark, workload W1 (seed %llu): %d docs, %d edits per side, median of %d "
         "(thread CPU time)\n",
         (unsigned long long)seed, NDOCS, NEDITS, RUNS);
  printf("%-22s %12s %10s %12s %12s %12s %12s\n", "message", "bytes", "B/edit", "enc MB/s",
         "enc op/s", "dec MB/s", "dec op/s");
  for (int s = 0; s < 2; s++)
    printf("%-22s %12zu %10.2f %12.1f %12.0f %12.1f %12.0f\n", s ? "delta side B" : "delta side A",
           td[s].bytes, (double)td[s].bytes / NEDITS, td[s].bytes / td[s].enc_s / 1e6,
           NEDITS / td[s].enc_s, td[s].bytes / td[s].dec_s / 1e6, NEDITS / td[s].dec_s);
  printf("%-22s %12zu %10s %12.1f %12.0f %12.1f %12.0f\n", "full state (docs)", ts.bytes, "-",
         ts.bytes / ts.enc_s / 1e6, NDOCS / ts.enc_s, ts.bytes / ts.dec_s / 1e6, NDOCS / ts.dec_s);
  printf("%-22s %12zu %10s %12.1f %12s %12.1f %12s\n", "msgpack-c raw (ref)", ref_bytes, "-",
         pack_mbs, "-", unpack_mbs, "-");
  printf("value payload (msgpack) of the edits: %.2f bytes per edit; the rest is structure\n",
         (double)payload_bytes(&dm[0].models[0]) / NEDITS);
  for (int s = 0; s < 2; s++)
    printf("RESULT bench=codec workload=W1 side=%c seed=%llu edits=%d bytes=%zu "
           "bytes_per_edit=%.3f value_bytes_per_edit=%.3f encode_mbps=%.1f "
           "encode_deltas_per_s=%.0f decode_mbps=%.1f decode_deltas_per_s=%.0f\n",
           s ? 'B' : 'A', (unsigned long long)seed, NEDITS, td[s].bytes,
           (double)td[s].bytes / NEDITS, (double)payload_bytes(&dm[s].models[0]) / NEDITS,
           td[s].bytes / td[s].enc_s / 1e6, NEDITS / td[s].enc_s, td[s].bytes / td[s].dec_s / 1e6,
           NEDITS / td[s].dec_s);
  printf("RESULT bench=codec workload=W1 part=full_state docs=%d bytes=%zu bytes_per_doc=%.1f "
         "encode_mbps=%.1f decode_mbps=%.1f\n",
         NDOCS, ts.bytes, (double)ts.bytes / NDOCS, ts.bytes / ts.enc_s / 1e6,
         ts.bytes / ts.dec_s / 1e6);
  printf("RESULT bench=codec part=msgpack_reference bytes=%zu pack_mbps=%.1f unpack_mbps=%.1f\n",
         ref_bytes, pack_mbs, unpack_mbs);
out:

  for (int s = 0; s < 2; s++) {
    cs__sync_msg_dispose(&dm[s]);
    for (size_t i = 0; i < NDOCS; i++)
      cs__doc_dispose(&side[s].docs[i]);
    free(side[s].docs);
    cs__dotset_dispose(&side[s].ctx);
  }
  cs__sync_msg_dispose(&sm);
  for (size_t i = 0; i < seedr.nlog; i++)
    cs__wire_action_dispose(&seedr.log[i]);
  for (size_t i = 0; i < NDOCS; i++)
    cs__doc_dispose(&seedr.docs[i]);
  free(seedr.docs);
  free(seedr.log);
  cs__dotset_dispose(&seedr.ctx);
  return 0;
}
