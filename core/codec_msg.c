/* The sync message decoder (docs/wire-format.md section 7): model sections,
 * instance tables, action groups and states, on top of core/codec_dec.c. */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>

#include "core/codec_dec.h"

#define TRY(x) CS__TRY(x)

/*
 * The duplicate check below hashes names a peer chose: with a fixed hash it
 * could send names that all collide and make the check quadratic. SipHash
 * (libsodium's crypto_shorthash) under a key drawn once per process leaves
 * it nothing to aim at.
 */
static unsigned char name_key[crypto_shorthash_KEYBYTES];
static pthread_once_t name_key_once = PTHREAD_ONCE_INIT;

static void name_key_init(void) {
  if (sodium_init() >= 0)
    randombytes_buf(name_key, sizeof(name_key));
}

static uint64_t name_hash(const char *s) {
  unsigned char h[crypto_shorthash_BYTES];
  uint64_t v;
  crypto_shorthash(h, (const unsigned char *)s, strlen(s), name_key);
  memcpy(&v, h, sizeof(v));
  return v;
}

/* The instance table. Its names go into the allocation of the table (one
 * for the whole section, read in two passes over the names). `unique`:
 * refuse a name that appears twice (a peek leaves it to the full decode). */
static int dec_instances(cs__dec *d, cs_wire_model *m, bool unique) {
  const uint8_t *start, *p;
  size_t n, bytes = 0;
  uint32_t *seen = NULL, len;
  char *at;
  int rc = 0;
  TRY(cs__dec_count(d, &n, 2, "instance table"));
  start = d->p;
  for (size_t i = 0; i < n; i++) {
    TRY(cs__dec_name(d, &p, &len, "instance name"));
    bytes += len + 1;
  }
  d->p = start;
  m->instances_inline = true;
  if (n == 0)
    goto done;
  if (!(m->instances = cs__malloc(n * sizeof(char *) + bytes))) {
    rc = CS_ENOMEM;
    goto done;
  }
  at = (char *)(m->instances + n);
  for (size_t i = 0; i < n; i++) {
    TRY(cs__dec_name(d, &p, &len, "instance name"));
    m->instances[i] = memcpy(at, p, len);
    at[len] = '\0';
    at += len + 1;
  }
  m->ninstances = n;
  /* Names must be unique: each goes into a hash table of indexes (at most
   * half full) that its equal would already be in. */
  if (unique && n > 1) {
    size_t cap = 4;
    pthread_once(&name_key_once, name_key_init);
    while (cap < 2 * n)
      cap *= 2;
    if (!(seen = cs__calloc(cap, sizeof(uint32_t)))) {
      rc = CS_ENOMEM;
      goto done;
    }
    for (size_t i = 0; i < n; i++) {
      const char *name = m->instances[i];
      size_t k = name_hash(name) & (cap - 1);
      for (; seen[k]; k = (k + 1) & (cap - 1))
        if (strcmp(m->instances[seen[k] - 1], name) == 0) {
          rc = cs__dec_fail(d, "instance table: duplicate name '%.200s'", name);
          goto done;
        }
      seen[k] = (uint32_t)i + 1;
    }
  }
done:
  cs__free(seen);
  return rc;
}

static int dec_actions(cs__dec *d, cs_wire_model *m, const cs_msg_sink *sink) {
  size_t ngroups, cap = 0;
  cs_wire_action one;
  uint64_t inst_next = 0;
  long prev_o = -1;
  int rc = 0;
  TRY(cs__dec_count(d, &ngroups, 6, "action groups"));
  for (size_t g = 0; g < ngroups; g++) {
    uint32_t oridx = 0;
    size_t na;
    uint64_t prev_last = 0;
    TRY(cs__dec_ridx(d, &oridx, "action group origin"));
    if ((long)oridx <= prev_o) {
      rc = cs__dec_fail(d, "action groups: origin index %u not above %ld (unsorted or duplicate)",
                        oridx, prev_o);
      goto done;
    }
    prev_o = oridx;
    TRY(cs__dec_count(d, &na, 3, "actions of a group"));
    if (na == 0) {
      rc = cs__dec_fail(d, "action group of origin index %u is empty", oridx);
      goto done;
    }
    if (!sink) {
      TRY(cs__array_grow((void **)&m->actions, &cap, m->nactions + na, sizeof(cs_wire_action)));
      memset(&m->actions[m->nactions], 0, na * sizeof(cs_wire_action));
    }
    for (size_t k = 0; k < na; k++) {
      cs_wire_action *a = sink ? &one : &m->actions[m->nactions];
      uint64_t inst;
      if (sink)
        memset(&one, 0, sizeof(one));
      d->action = (long)m->nactions;
      m->nactions++;
      TRY(cs__dec_uint(d, &inst, "action instance"));
      if (inst >= CS__INST_ONE && inst < CS__INST_ESCAPE) {
        uint64_t lo;
        TRY(cs__dec_uint(d, &lo, "action instance"));
        if (lo > 127) {
          rc = cs__dec_fail(d, "instance reference: low part %llu above 127",
                            (unsigned long long)lo);
          goto done;
        }
        inst = CS__INST_ONE + ((inst - CS__INST_ONE) << 7) + lo;
      } else if (inst == CS__INST_ESCAPE) {
        uint64_t x;
        TRY(cs__dec_uint(d, &x, "action instance"));
        if (x > UINT64_MAX - CS__INST_PAIR_END) {
          rc = cs__dec_fail(d, "instance reference overflows");
          goto done;
        }
        inst = CS__INST_PAIR_END + x;
      } else if (inst > CS__INST_ESCAPE) {
        rc = cs__dec_fail(d, "instance reference: bad lead item %llu", (unsigned long long)inst);
        goto done;
      }
      /* first-use order: 0 = the next new index, k <= next = k back, else absolute */
      inst = inst <= inst_next ? inst_next - inst : inst;
      if (inst >= m->ninstances) {
        rc = cs__dec_fail(d, "instance index %llu out of range (table has %zu)",
                          (unsigned long long)inst, m->ninstances);
        goto done;
      }
      a->instance = (uint32_t)inst;
      if (inst >= inst_next)
        inst_next = inst + 1;
      rc = cs__dec_action(d, a, prev_last, oridx);
      prev_last = a->last;
      if (sink) {
        if (rc == 0 && sink->action)
          rc = sink->action(sink->arg, m, m->nactions - 1, a);
        cs__action_pool_put(d->pool, a); /* its arrays, for the next one */
      }
      if (rc)
        goto done;
    }
  }
  d->action = -1;
done:
  return rc;
}

static int dec_states(cs__dec *d, cs_wire_model *m) {
  size_t n;
  int rc = 0;
  TRY(cs__dec_count(d, &n, 3, "states"));
  if (n && !(m->states = cs__calloc(n, sizeof(cs_wire_state)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    cs_wire_state *st = &m->states[i];
    cs__dot_prev pv = {false, 0, 0};
    uint64_t inst;
    d->state = (long)i;
    m->nstates = i + 1;
    TRY(cs__dec_uint(d, &inst, "state instance"));
    if (inst >= m->ninstances) {
      rc = cs__dec_fail(d, "instance index %llu out of range (table has %zu)",
                        (unsigned long long)inst, m->ninstances);
      goto done;
    }
    st->instance = (uint32_t)inst;
    if (i && strcmp(m->instances[m->states[i - 1].instance], m->instances[inst]) >= 0) {
      rc = cs__dec_fail(d, "states unsorted or duplicate at instance '%.200s'", m->instances[inst]);
      goto done;
    }
    TRY(cs__dec_doc(d, &st->doc, &pv));
  }
  d->state = -1;
done:
  return rc;
}

int cs__codec_decode_msg(cs_sync_msg *out, const uint8_t *p, size_t len) {
  return cs__codec_decode_msg_sink(out, p, len, NULL);
}

static int decode_msg(cs_sync_msg *out, const uint8_t *p, size_t len, const cs_msg_sink *sink,
                      bool run) {
  cs__dec d;
  uint64_t v;
  size_t n;
  int rc;
  memset(out, 0, sizeof(*out));
  cs__dec_init(&d, p, len);
  /* Streamed actions are dropped one by one: their arrays go to a pool,
   * the sink's or one for this decode. */
  if (sink && !(d.pool = sink->pool)) {
    if (!(d.pool = cs__calloc(1, sizeof(*d.pool)))) {
      rc = CS_ENOMEM;
      goto done;
    }
    d.own_pool = true;
  }
  TRY(cs__dec_frame(&d, len, 0, run ? "log run" : "sync message"));
  if (run && p[1] == CS__WIRE_RUN) {
    d.end = p + len;
    d.item = 1;
    out->type = CS_MSG_SYNC_REQUEST;
    goto body;
  }
  /* The checksum guards everything else: verify it before reading further. */
  if (len < 2 + CS__WIRE_SUM_LEN) {
    rc = cs__error(CS_ECORRUPT,
                   "truncated: sync message of %zu bytes has no checksum at offset %zu", len, len);
    goto done;
  }
  {
    uint8_t sum[CS__WIRE_SUM_LEN];
    crypto_generichash(sum, sizeof(sum), p, len - CS__WIRE_SUM_LEN, NULL, 0);
    if (sodium_memcmp(sum, p + len - CS__WIRE_SUM_LEN, sizeof(sum)) != 0) {
      rc = cs__error(CS_ECORRUPT, "sync message checksum mismatch at offset %zu",
                     len - CS__WIRE_SUM_LEN);
      goto done;
    }
  }
  d.end = p + len - CS__WIRE_SUM_LEN;
  d.item = 1;
  if (p[1] < CS_MSG_SYNC_REQUEST || p[1] > CS_MSG_PULL_RESPONSE) {
    rc = cs__dec_fail(&d, "unknown message type %u", p[1]);
    goto done;
  }
  out->type = p[1];
body:
  d.use_cur = true;
  TRY(cs__dec_uint(&d, &out->sender, "sender"));
  TRY(cs__dec_uint(&d, &out->clock, "clock"));
  TRY(cs__dec_uint(&d, &out->cursor, "cursor"));
  TRY(cs__dec_uint(&d, &v, "flags"));
  if (v & ~(uint64_t)CS_MSG_F_STATES) {
    rc = cs__dec_fail(&d, "flags: unknown bits 0x%llx", (unsigned long long)v);
    goto done;
  }
  out->flags = (uint32_t)v;
  TRY(cs__dec_tables(&d));
  if (sink && sink->header)
    TRY(sink->header(sink->arg, out));
  d.hlc = out->clock;
  TRY(cs__dec_count(&d, &n, 6, "model sections"));
  if (n && !(out->models = cs__calloc(n, sizeof(cs_wire_model)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    cs_wire_model *m = &out->models[i];
    out->nmodels = i + 1;
    d.model = NULL;
    TRY(cs__dec_name_dup(&d, &m->name, "model name"));
    if (i && strcmp(out->models[i - 1].name, m->name) >= 0) {
      rc = cs__dec_fail(&d, "model '%.200s': models unsorted or duplicate", m->name);
      goto done;
    }
    d.model = m->name;
    TRY(cs__dec_dotset(&d, &m->knowledge, "knowledge"));
    TRY(dec_instances(&d, m, true));
    TRY(cs__dotcur_plan(&d.cur, m->ninstances, d.nreps));
    if (sink && sink->section)
      TRY(sink->section(sink->arg, m));
    TRY(dec_actions(&d, m, sink));
    TRY(dec_states(&d, m));
    if (sink && sink->section_end)
      TRY(sink->section_end(sink->arg, m));
    cs__dotcur_dispose(&d.cur);
  }
  d.model = NULL;
  TRY(cs__dec_end(&d));
done:
  if (rc)
    cs__sync_msg_dispose(out);
  cs__dec_dispose(&d);
  return rc;
}

int cs__codec_decode_msg_sink(cs_sync_msg *out, const uint8_t *p, size_t len,
                              const cs_msg_sink *sink) {
  return decode_msg(out, p, len, sink, false);
}

int cs__codec_decode_run_sink(cs_sync_msg *out, const uint8_t *p, size_t len,
                              const cs_msg_sink *sink) {
  return decode_msg(out, p, len, sink, true);
}

void cs__run_peek_dispose(cs_run_peek *pk) {
  for (size_t i = 0; i < pk->t.nfields; i++)
    cs__free(pk->t.fields[i]);
  cs__free((void *)pk->t.fields);
  cs__free((void *)pk->t.reps);
  cs__free(pk->instances); /* the names live in it */
  memset(pk, 0, sizeof(*pk));
}

/* The header of a section's first action: its instance reference (skipped)
 * and, when its range does not start at dot 1, the range prefix. */
static int peek_first_dot(cs__dec *d, uint64_t *first) {
  uint64_t v, gap;
  int rc = 0;
  TRY(cs__dec_uint(d, &v, "action instance"));
  if (v > CS__INST_ESCAPE) {
    rc = cs__dec_fail(d, "instance reference: bad lead item %llu", (unsigned long long)v);
    goto done;
  }
  if (v >= CS__INST_ONE)
    TRY(cs__dec_uint(d, &v, "action instance"));
  TRY(cs__dec_uint(d, &v, "action tag"));
  *first = 1;
  if (v == CS__CODE_RANGE) {
    TRY(cs__dec_uint(d, &gap, "action range"));
    if (gap == UINT64_MAX) {
      rc = cs__dec_fail(d, "action range: dot counter overflows");
      goto done;
    }
    *first = gap + 1; /* the first action of a group follows dot 0 */
  }
done:
  return rc;
}

int cs__codec_peek_run(cs_run_peek *out, const uint8_t *p, size_t len) {
  cs__dec d;
  cs_wire_model wm;
  uint64_t sender, v;
  size_t n;
  uint32_t oridx;
  char **fields = NULL;
  int rc = 0;

  memset(out, 0, sizeof(*out));
  memset(&wm, 0, sizeof(wm));
  cs__dec_init(&d, p, len);
  TRY(cs__dec_frame(&d, len, 0, "log run"));
  if (p[1] == CS__WIRE_RUN)
    d.end = p + len;
  else if (len < 2 + CS__WIRE_SUM_LEN || p[1] < CS_MSG_SYNC_REQUEST ||
           p[1] > CS_MSG_PULL_RESPONSE) {
    rc = cs__error(CS_ECORRUPT, "log run: not a sync message of %zu bytes", len);
    goto done;
  } else
    d.end = p + len - CS__WIRE_SUM_LEN;
  d.item = 1;
  TRY(cs__dec_uint(&d, &sender, "sender"));
  TRY(cs__dec_uint(&d, &v, "clock"));
  TRY(cs__dec_uint(&d, &v, "cursor"));
  TRY(cs__dec_uint(&d, &v, "flags"));
  TRY(cs__dec_tables(&d));
  TRY(cs__dec_count(&d, &n, 6, "model sections"));
  if (n != 1)
    goto done;
  {
    const uint8_t *name;
    uint32_t name_len;
    TRY(cs__dec_name(&d, &name, &name_len, "model name"));
  }
  TRY(cs__dec_uint(&d, &v, "knowledge"));
  if (v != 0)
    goto done;
  TRY(dec_instances(&d, &wm, false));
  TRY(cs__dec_count(&d, &n, 6, "action groups"));
  if (n != 1)
    goto done;
  TRY(cs__dec_ridx(&d, &oridx, "action group origin"));
  if (d.reps[oridx] != sender)
    goto done;
  TRY(cs__dec_count(&d, &out->t.nactions, 3, "actions of a group"));
  if (out->t.nactions == 0) {
    rc = cs__dec_fail(&d, "action group of origin index %u is empty", oridx);
    goto done;
  }
  TRY(peek_first_dot(&d, &out->first));
  if (d.nflds && !(fields = cs__calloc(d.nflds, sizeof(char *)))) {
    rc = CS_ENOMEM;
    goto done;
  }
  for (size_t i = 0; i < d.nflds; i++)
    if (!(fields[i] = cs__strndup((const char *)d.flds[i], d.fld_lens[i]))) {
      rc = CS_ENOMEM;
      goto done;
    }
  out->simple = true;
  out->t.origin = sender;
  if (d.reps != d.reps_small)
    out->t.reps = d.reps; /* taken */
  else if ((out->t.reps = cs__malloc(d.nreps * sizeof(uint64_t))) != NULL)
    memcpy((uint64_t *)out->t.reps, d.reps, d.nreps * sizeof(uint64_t));
  else {
    rc = CS_ENOMEM;
    goto done;
  }
  out->t.nreps = d.nreps;
  d.reps = NULL;
  out->t.fields = fields;
  out->t.nfields = d.nflds;
  fields = NULL;
  out->instances = wm.instances;
  out->ninstances = wm.ninstances;
  wm.instances = NULL;
  wm.ninstances = 0;
done:
  if (fields) {
    for (size_t i = 0; i < d.nflds; i++)
      cs__free(fields[i]);
    cs__free(fields);
  }
  cs__free(wm.instances); /* the names live in it */
  if (rc || !out->simple)
    cs__run_peek_dispose(out);
  cs__dec_dispose(&d);
  return rc;
}
