/*
 * cs_mem: the cosmicsync CRDT core alone, in memory, replaying a comparison
 * workload. No storage, no engine: a replica is one cs_doc per instance plus
 * the model's causal context (knowledge). Every edit is one action: a delta made
 * with the mutators, joined locally and kept for the exchange. With
 * CS_BENCH_CODEC the exchanged actions and the full state are encoded as real
 * sync messages (core/codec.h) and decoded on the other side, so the byte counts
 * are wire bytes and the merge time includes the strict decode.
 *
 *   cs_mem <w1|w2|w3> <opfile>      prints one JSON line
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crdt/crdt.h"
#include "opfile.h"
#if CS_BENCH_CODEC
#include "core/codec.h"
#endif

#define BASE_MS 1764000000000ull
#define MODEL "UserProfile"

static void die(const char *what, int rc) {
  fprintf(stderr, "cs_mem: %s failed (%d)\n", what, rc);
  exit(1);
}
#define CHECK(call)                                                                                \
  do {                                                                                             \
    int rc_ = (call);                                                                              \
    if (rc_ != 0) die(#call, rc_);                                                                 \
  } while (0)

/* An action as kept by its author until the exchange (the outbox). */
typedef struct action {
  uint32_t doc;
  cs_replica origin;
  uint64_t first, last;
  cs_hlc hlc;
  cs_doc doc_delta;
  cs_dotset ctx;
} action;

typedef struct replica {
  cs_replica id;
  cs_clock clock;
  cs_dotset ctx; /* model knowledge */
  cs_doc *docs;
  uint32_t ndocs;
  action *log;
  size_t nlog, caplog;
  int record;
} replica;

static void replica_init(replica *r, cs_replica id, uint32_t ndocs) {
  memset(r, 0, sizeof *r);
  r->id = id;
  r->clock.max_skew_ms = 60000;
  r->ndocs = ndocs;
  r->docs = calloc(ndocs ? ndocs : 1, sizeof(cs_doc));
  if (!r->docs) die("calloc", -1);
}

static void log_clear(replica *r) {
  for (size_t i = 0; i < r->nlog; i++) {
    cs__doc_dispose(&r->log[i].doc_delta);
    cs__dotset_dispose(&r->log[i].ctx);
  }
  r->nlog = 0;
}

static void replica_dispose(replica *r) {
  log_clear(r);
  free(r->log);
  for (uint32_t i = 0; i < r->ndocs; i++) cs__doc_dispose(&r->docs[i]);
  free(r->docs);
  cs__dotset_dispose(&r->ctx);
}

static int mutate(cs_delta *d, const cs_doc *doc, const bench_op *op) {
  cs_val v;
  int rc;
  if (op->kind == 'S' && op->vtype == 'i') v = cs__val_int(op->ival);
  else if ((rc = cs__val_str(&v, op->val, op->val_len)) != 0) return rc;
  switch (op->kind) {
  case 'S': rc = cs__delta_reg_set(d, doc, op->field, &v); break;
  case 'A': rc = cs__delta_set_add(d, doc, op->field, &v); break;
  default: rc = cs__delta_set_remove(d, doc, op->field, &v); break;
  }
  cs__val_dispose(&v);
  return rc;
}

/* One local action on one document: ops[0..n) all touch ops[0].doc. */
static void local_action(replica *r, const bench_op *ops, size_t n, int create) {
  cs_doc *doc = &r->docs[ops[0].doc];
  cs_delta d;
  uint64_t first, last;
  CHECK(cs__delta_init(&d, &r->ctx, r->id, cs__clock_tick(&r->clock, BASE_MS)));
  if (create && cs__doc_empty(doc)) CHECK(cs__delta_exist(&d, doc, true));
  for (size_t i = 0; i < n; i++) CHECK(mutate(&d, doc, &ops[i]));
  CHECK(cs__delta_finish(&d, &first, &last));
  CHECK(cs__doc_join(doc, &r->ctx, &d.doc, &d.ctx));
  CHECK(cs__dotset_join(&r->ctx, &d.ctx));
  if (r->record) {
    if (r->nlog == r->caplog) {
      r->caplog = r->caplog ? 2 * r->caplog : 1024;
      r->log = realloc(r->log, r->caplog * sizeof(action));
      if (!r->log) die("realloc", -1);
    }
    action *a = &r->log[r->nlog++];
    a->doc = ops[0].doc;
    a->origin = r->id;
    a->first = first;
    a->last = last;
    a->hlc = d.hlc;
    a->doc_delta = d.doc; /* moved */
    a->ctx = d.ctx;
    memset(&d.doc, 0, sizeof d.doc);
    memset(&d.ctx, 0, sizeof d.ctx);
  }
  cs__delta_dispose(&d);
}

/* Joins one received action (or state) into a replica, then its context. */
static void join_into(replica *r, uint32_t doc, const cs_doc *delta, const cs_dotset *ctx) {
  CHECK(cs__doc_join(&r->docs[doc], &r->ctx, delta, ctx));
  CHECK(cs__dotset_join(&r->ctx, ctx));
}

static int replicas_equal(const replica *a, const replica *b) {
  if (!cs__dotset_equal(&a->ctx, &b->ctx)) return 0;
  for (uint32_t i = 0; i < a->ndocs; i++)
    if (!cs__doc_equal(&a->docs[i], &b->docs[i])) return 0;
  return 1;
}

/* A document with any entry (W2 writes a field without a create). */
static int has_data(const cs_doc *d) { return d->nfields > 0 || d->nexist > 0; }

/* ---- instance names ---- */

static char **names; /* document number -> instance name */
static uint32_t nnames;

static void names_init(const bench_opfile *f) {
  nnames = f->ndocs;
  names = calloc(nnames ? nnames : 1, sizeof(char *));
  if (!names) die("calloc", -1);
  for (size_t p = 0; p < f->nphases; p++)
    for (size_t i = 0; i < f->phases[p].len; i++) {
      const bench_op *op = &f->phases[p].ops[i];
      if (!names[op->doc]) names[op->doc] = strdup(op->doc_name);
    }
  for (uint32_t i = 0; i < nnames; i++)
    if (!names[i]) {
      char tmp[32];
      snprintf(tmp, sizeof tmp, "unused_%u", i);
      names[i] = strdup(tmp);
    }
}

#if CS_BENCH_CODEC
static uint32_t doc_of_name(const char *name) {
  size_t n = strlen(name);
  while (n > 0 && name[n - 1] >= '0' && name[n - 1] <= '9') n--;
  return (uint32_t)strtoul(name + n, NULL, 10);
}

static int cmp_doc_name(const void *x, const void *y) {
  return strcmp(names[*(const uint32_t *)x], names[*(const uint32_t *)y]);
}

/* The message's instance table: the documents it names, sorted by name.
 * table[k] is a document number; slot[doc] its index in the table. */
typedef struct table {
  uint32_t *docs;
  char **names;
  uint32_t n;
  uint32_t *slot;
} table;

static void table_build(table *t, const uint8_t *used) {
  t->docs = malloc(sizeof(uint32_t) * (nnames ? nnames : 1));
  t->slot = malloc(sizeof(uint32_t) * (nnames ? nnames : 1));
  t->names = malloc(sizeof(char *) * (nnames ? nnames : 1));
  if (!t->docs || !t->slot || !t->names) die("malloc", -1);
  t->n = 0;
  for (uint32_t i = 0; i < nnames; i++)
    if (used[i]) t->docs[t->n++] = i;
  qsort(t->docs, t->n, sizeof(uint32_t), cmp_doc_name);
  for (uint32_t k = 0; k < t->n; k++) {
    t->slot[t->docs[k]] = k;
    t->names[k] = names[t->docs[k]];
  }
}

static void table_dispose(table *t) {
  free(t->docs);
  free(t->slot);
  free(t->names);
}

/* Encodes a message over borrowed pointers (only its arrays are ours). Actions
 * come from r's log (sorted by first dot: one origin, logged in order); states,
 * when `states` is set, are every document of r that is not empty. */
static void encode(cs_buf *out, const replica *r, uint8_t type, int states) {
  uint8_t *used = calloc(nnames ? nnames : 1, 1);
  if (!used) die("calloc", -1);
  if (states) {
    for (uint32_t i = 0; i < r->ndocs; i++) used[i] = has_data(&r->docs[i]);
  } else {
    for (size_t i = 0; i < r->nlog; i++) used[r->log[i].doc] = 1;
  }
  table t;
  table_build(&t, used);
  cs_wire_model m;
  memset(&m, 0, sizeof m);
  m.name = (char *)MODEL;
  m.knowledge = r->ctx;
  m.instances = t.names;
  m.ninstances = t.n;
  cs_wire_action *acts = NULL;
  cs_wire_state *sts = NULL;
  if (states) {
    sts = calloc(t.n ? t.n : 1, sizeof(cs_wire_state));
    if (!sts) die("calloc", -1);
    for (uint32_t k = 0; k < t.n; k++) {
      sts[k].instance = k;
      sts[k].doc = r->docs[t.docs[k]];
    }
    m.states = sts;
    m.nstates = t.n;
  } else {
    acts = calloc(r->nlog ? r->nlog : 1, sizeof(cs_wire_action));
    if (!acts) die("calloc", -1);
    for (size_t i = 0; i < r->nlog; i++) {
      acts[i].instance = t.slot[r->log[i].doc];
      acts[i].origin = r->log[i].origin;
      acts[i].first = r->log[i].first;
      acts[i].last = r->log[i].last;
      acts[i].hlc = r->log[i].hlc;
      acts[i].doc = r->log[i].doc_delta;
      acts[i].ctx = r->log[i].ctx;
    }
    m.actions = acts;
    m.nactions = r->nlog;
  }
  cs_sync_msg msg;
  memset(&msg, 0, sizeof msg);
  msg.type = type;
  msg.sender = r->id;
  msg.clock = r->clock.last;
  msg.flags = states ? CS_MSG_F_STATES : 0;
  msg.models = &m;
  msg.nmodels = 1;
  CHECK(cs__codec_encode_msg(out, &msg));
  free(acts);
  free(sts);
  table_dispose(&t);
  free(used);
}

/* Decodes a message and joins its actions and states into r. */
static void receive(replica *r, const cs_buf *bytes) {
  cs_sync_msg msg;
  CHECK(cs__codec_decode_msg(&msg, (const uint8_t *)bytes->ptr, bytes->size));
  for (size_t k = 0; k < msg.nmodels; k++) {
    const cs_wire_model *m = &msg.models[k];
    for (size_t i = 0; i < m->nactions; i++) {
      const cs_wire_action *a = &m->actions[i];
      join_into(r, doc_of_name(m->instances[a->instance]), &a->doc, &a->ctx);
    }
    /* States join against the sender's knowledge, then the context once. */
    for (size_t i = 0; i < m->nstates; i++)
      CHECK(cs__doc_join(&r->docs[doc_of_name(m->instances[m->states[i].instance])], &r->ctx,
                         &m->states[i].doc, &m->knowledge));
    if (m->nstates) CHECK(cs__dotset_join(&r->ctx, &m->knowledge));
  }
  cs__sync_msg_dispose(&msg);
}
#endif

typedef struct figures {
  double encode_ms, merge_ms, load_ms, encode_state_ms;
  long long delta_bytes, state_bytes; /* -1: not measured (no codec) */
} figures;

/* Full state of `from` into the empty replica `to`. */
static void transfer_state(figures *fg, replica *to, const replica *from) {
#if CS_BENCH_CODEC
  cs_buf buf = CS_BUF_INIT;
  double t = bench_now_ms();
  encode(&buf, from, CS_MSG_SYNC_RESPONSE, 1);
  fg->encode_state_ms = bench_now_ms() - t;
  fg->state_bytes = (long long)buf.size;
  t = bench_now_ms();
  receive(to, &buf);
  fg->load_ms = bench_now_ms() - t;
  cs_buf_dispose(&buf);
#else
  double t = bench_now_ms();
  for (uint32_t i = 0; i < from->ndocs; i++)
    if (has_data(&from->docs[i]))
      CHECK(cs__doc_join(&to->docs[i], &to->ctx, &from->docs[i], &from->ctx));
  CHECK(cs__dotset_join(&to->ctx, &from->ctx));
  fg->load_ms = bench_now_ms() - t;
  fg->encode_state_ms = 0;
  fg->state_bytes = -1;
#endif
}

/* Deltas both ways: each side's logged actions merged into the other. */
static void exchange(figures *fg, replica *a, replica *b) {
#if CS_BENCH_CODEC
  cs_buf ab = CS_BUF_INIT, ba = CS_BUF_INIT;
  double t = bench_now_ms();
  encode(&ab, a, CS_MSG_SYNC_REQUEST, 0);
  encode(&ba, b, CS_MSG_SYNC_RESPONSE, 0);
  fg->encode_ms = bench_now_ms() - t;
  fg->delta_bytes = (long long)(ab.size + ba.size);
  t = bench_now_ms();
  receive(b, &ab);
  receive(a, &ba);
  fg->merge_ms = bench_now_ms() - t;
  cs_buf_dispose(&ab);
  cs_buf_dispose(&ba);
#else
  double t = bench_now_ms();
  for (size_t i = 0; i < a->nlog; i++)
    join_into(b, a->log[i].doc, &a->log[i].doc_delta, &a->log[i].ctx);
  for (size_t i = 0; i < b->nlog; i++)
    join_into(a, b->log[i].doc, &b->log[i].doc_delta, &b->log[i].ctx);
  fg->merge_ms = bench_now_ms() - t;
  fg->encode_ms = 0;
  fg->delta_bytes = -1;
#endif
}

static void print_num(const char *key, long long v) {
  if (v < 0) printf(",\"%s\":null", key);
  else printf(",\"%s\":%lld", key, v);
}

static void print_result(const char *wl, const figures *fg, double local_ms, double total_ms,
                         size_t edits, int converged, int add_wins) {
  printf("{\"contender\":\"cosmicsync-mem\",\"workload\":\"%s\",\"ok\":true", wl);
  printf(",\"codec\":%s", CS_BENCH_CODEC ? "true" : "false");
  printf(",\"edits\":%zu,\"local_ms\":%.4f,\"encode_ms\":%.4f,\"merge_ms\":%.4f", edits, local_ms,
         fg->encode_ms, fg->merge_ms);
  printf(",\"load_ms\":%.4f,\"encode_state_ms\":%.4f,\"total_ms\":%.4f", fg->load_ms,
         fg->encode_state_ms, total_ms);
  print_num("delta_bytes", fg->delta_bytes);
  print_num("state_bytes", fg->state_bytes);
  if (fg->delta_bytes >= 0) printf(",\"bytes_per_edit\":%.4f", (double)fg->delta_bytes / edits);
  else printf(",\"bytes_per_edit\":null");
  printf(",\"merge_ops_s\":%.1f,\"local_ops_s\":%.1f", edits / (fg->merge_ms / 1e3),
         edits / (local_ms / 1e3));
  printf(",\"converged\":%s", converged ? "true" : "false");
  if (add_wins >= 0) printf(",\"add_wins\":%s", add_wins ? "true" : "false");
  printf(",\"rss_kib\":%ld,\"set_model\":\"native add-wins OR-set (dots + causal context)\"}\n",
         bench_peak_rss_kib());
}

/* W1 and W3: A builds, full state to B, both edit offline, deltas both ways. */
static int run_sync(const char *wl, const bench_opfile *f) {
  const bench_phase *init = bench_opfile_phase(f, "init");
  const bench_phase *edit = bench_opfile_phase(f, "edit");
  figures fg;
  memset(&fg, 0, sizeof fg);
  replica r[2];
  replica_init(&r[0], 1, f->ndocs);
  replica_init(&r[1], 2, f->ndocs);
  double t0 = bench_now_ms();
  /* Initial content: one action per document (creating a profile is one action). */
  for (size_t i = 0; i < init->len;) {
    size_t j = i;
    while (j < init->len && init->ops[j].doc == init->ops[i].doc &&
           init->ops[j].replica == init->ops[i].replica)
      j++;
    local_action(&r[init->ops[i].replica & 1], init->ops + i, j - i, 1);
    i = j;
  }
  transfer_state(&fg, &r[1], &r[0]);
  r[0].record = r[1].record = 1;
  double t = bench_now_ms();
  for (size_t i = 0; i < edit->len; i++) local_action(&r[edit->ops[i].replica & 1], &edit->ops[i], 1, 0);
  double local_ms = bench_now_ms() - t;
  exchange(&fg, &r[0], &r[1]);
  double total_ms = bench_now_ms() - t0;
  int converged = replicas_equal(&r[0], &r[1]);
  int add_wins = -1;
  if (strcmp(wl, "w3") == 0 && init->len > 0) {
    /* Every element added initially must still be present on both replicas. */
    add_wins = 1;
    for (int k = 0; k < 2; k++) {
      const cs_field *fld = cs__doc_field(&r[k].docs[init->ops[0].doc], init->ops[0].field);
      size_t present = 0;
      if (fld && fld->kind == CS_KIND_SET)
        for (size_t e = 0; e < fld->u.set.len; e++) present += fld->u.set.elems[e].ndots > 0;
      if (present != init->len) add_wins = 0;
    }
  }
  print_result(wl, &fg, local_ms, total_ms, edit->len, converged, add_wins);
  replica_dispose(&r[0]);
  replica_dispose(&r[1]);
  return 0;
}

/* W2 (B3.1): every client writes key "v" of one shared document; all their
 * actions are merged into one fresh replica (and, for the check, into a second
 * one in reverse order). */
static int run_w2(const bench_opfile *f) {
  const bench_phase *cl = bench_opfile_phase(f, "clients");
  figures fg;
  memset(&fg, 0, sizeof fg);
  size_t n = cl->len;
  replica *clients = calloc(n ? n : 1, sizeof(replica));
  if (!clients) die("calloc", -1);
  double t0 = bench_now_ms();
  double t = bench_now_ms();
  for (size_t i = 0; i < n; i++) {
    replica_init(&clients[i], 1000 + i, f->ndocs);
    clients[i].record = 1;
    local_action(&clients[i], &cl->ops[i], 1, 0);
  }
  double local_ms = bench_now_ms() - t;
  replica into[2];
  replica_init(&into[0], 1, f->ndocs);
  replica_init(&into[1], 2, f->ndocs);
#if CS_BENCH_CODEC
  cs_buf *msgs = calloc(n ? n : 1, sizeof(cs_buf));
  if (!msgs) die("calloc", -1);
  t = bench_now_ms();
  for (size_t i = 0; i < n; i++) {
    encode(&msgs[i], &clients[i], CS_MSG_SYNC_REQUEST, 0);
    fg.delta_bytes += (long long)msgs[i].size;
  }
  fg.encode_ms = bench_now_ms() - t;
  t = bench_now_ms();
  for (size_t i = 0; i < n; i++) receive(&into[0], &msgs[i]);
  fg.merge_ms = bench_now_ms() - t;
  for (size_t i = n; i-- > 0;) receive(&into[1], &msgs[i]);
  for (size_t i = 0; i < n; i++) cs_buf_dispose(&msgs[i]);
  free(msgs);
#else
  fg.delta_bytes = -1;
  t = bench_now_ms();
  for (size_t i = 0; i < n; i++)
    join_into(&into[0], clients[i].log[0].doc, &clients[i].log[0].doc_delta, &clients[i].log[0].ctx);
  fg.merge_ms = bench_now_ms() - t;
  for (size_t i = n; i-- > 0;)
    join_into(&into[1], clients[i].log[0].doc, &clients[i].log[0].doc_delta, &clients[i].log[0].ctx);
#endif
  int converged = replicas_equal(&into[0], &into[1]);
  /* The merged document's full state, loaded into a fresh replica. */
  replica loaded;
  replica_init(&loaded, 3, f->ndocs);
  figures st;
  memset(&st, 0, sizeof st);
  transfer_state(&st, &loaded, &into[0]);
  fg.state_bytes = st.state_bytes;
  fg.load_ms = st.load_ms;
  fg.encode_state_ms = st.encode_state_ms;
  int reload_equal = replicas_equal(&loaded, &into[0]);
  if (!converged || !reload_equal)
    fprintf(stderr, "cs_mem w2: merge orders %s, reload %s\n", converged ? "agree" : "DIFFER",
            reload_equal ? "equal" : "DIFFERS");
  converged = converged && reload_equal;
  double total_ms = bench_now_ms() - t0;
  print_result("w2", &fg, local_ms, total_ms, n, converged, -1);
  for (size_t i = 0; i < n; i++) replica_dispose(&clients[i]);
  free(clients);
  replica_dispose(&into[0]);
  replica_dispose(&into[1]);
  replica_dispose(&loaded);
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: cs_mem <w1|w2|w3> <opfile>\n");
    return 2;
  }
  bench_opfile f;
  if (bench_opfile_load(&f, argv[2]) != 0) return 1;
  names_init(&f);
  int rc = strcmp(argv[1], "w2") == 0 ? run_w2(&f) : run_sync(argv[1], &f);
  for (uint32_t i = 0; i < nnames; i++) free(names[i]);
  free(names);
  bench_opfile_dispose(&f);
  return rc;
}
