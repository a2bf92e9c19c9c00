/*
 * libFuzzer target: cs__codec_decode_msg. A mutated input would almost never
 * carry a valid BLAKE2b trailer, so the input is taken as a message without
 * its checksum and the checksum is appended before decoding: that way the
 * mutations reach the body parser. The raw input is decoded too (checksum
 * and frame checks). Each input is also decoded as a stream twice (the way
 * the engine merges, taking each action, and the way it serves a log run,
 * leaving each action to the decoder, which reuses its arrays): the actions,
 * put back in place, must make the very same message. And it is peeked at
 * as a log run (the way a sender collects its tables), which must agree
 * with the decode. A sync request's body is also read as a stored log run
 * (frame kind 19, no checksum), which must decode exactly when the sealed
 * message does, to what encodes back to the same bytes.
 */
#include <sodium.h>

#include "core/codec_enc.h"
#include "fuzz_common.h"

/* The actions a streamed decode hands over, per section. */
typedef struct action_list {
  cs_wire_action *a;
  size_t n, cap;
} action_list;

typedef struct gathered {
  action_list *s;
  size_t len, cap;
  bool copy; /* copy each action, leaving it to the decoder */
} gathered;

static int gather_section(void *arg, cs_wire_model *wm) {
  gathered *g = arg;
  (void)wm;
  if (cs__array_grow((void **)&g->s, &g->cap, g->len + 1, sizeof(*g->s)))
    return CS_ENOMEM;
  memset(&g->s[g->len++], 0, sizeof(*g->s));
  return 0;
}

static int gather_action(void *arg, cs_wire_model *wm, size_t index, cs_wire_action *a) {
  gathered *g = arg;
  action_list *l = &g->s[g->len - 1];
  (void)wm;
  if (index != l->n) {
    fprintf(stderr, "msg stream: action %zu handed over as %zu\n", l->n, index);
    abort();
  }
  if (cs__array_grow((void **)&l->a, &l->cap, l->n + 1, sizeof(cs_wire_action)))
    return CS_ENOMEM;
  if (g->copy) {
    cs_wire_action *c = &l->a[l->n];
    memset(c, 0, sizeof(*c));
    c->instance = a->instance;
    c->origin = a->origin;
    c->first = a->first;
    c->last = a->last;
    c->hlc = a->hlc;
    if (cs__doc_copy(&c->doc, &a->doc) != 0 || cs__dotset_copy(&c->ctx, &a->ctx) != 0) {
      cs__wire_action_dispose(c);
      return CS_ENOMEM;
    }
    l->n++;
    return 0;
  }
  l->a[l->n++] = *a;
  memset(a, 0, sizeof(*a)); /* moved */
  return 0;
}

/* Decodes as a stream: same verdict as the whole decode, same message. */
static void streamed(const uint8_t *data, size_t size, int whole_rc, bool copy) {
  gathered g = {NULL, 0, 0, copy};
  cs_msg_sink sink = {NULL, gather_section, gather_action, NULL, &g, NULL};
  cs_sync_msg m;
  int rc = cs__codec_decode_msg_sink(&m, data, size, &sink);
  if ((rc == 0) != (whole_rc == 0) && rc != CS_ENOMEM && whole_rc != CS_ENOMEM) {
    fprintf(stderr, "msg stream: code %d where the whole decode gave %d\n", rc, whole_rc);
    abort();
  }
  if (rc == 0) {
    cs_buf b = CS_BUF_INIT;
    if (g.len != m.nmodels) {
      fprintf(stderr, "msg stream: %zu sections for %zu models\n", g.len, m.nmodels);
      abort();
    }
    for (size_t i = 0; i < m.nmodels; i++) {
      if (g.s[i].n != m.models[i].nactions) {
        fprintf(stderr, "msg stream: %zu actions counted, %zu handed over\n", m.models[i].nactions,
                g.s[i].n);
        abort();
      }
      m.models[i].actions = g.s[i].a; /* the message owns them again */
      memset(&g.s[i], 0, sizeof(g.s[i]));
    }
    if (cs__codec_encode_msg(&b, &m) != 0) {
      fprintf(stderr, "msg stream: decoded message does not encode: %s\n", cs_errmsg());
      abort();
    }
    fuzz_check_same("msg stream", &b, data, size);
    cs_buf_dispose(&b);
    cs__sync_msg_dispose(&m);
  }
  for (size_t i = 0; i < g.len; i++) {
    for (size_t k = 0; k < g.s[i].n; k++)
      cs__wire_action_dispose(&g.s[i].a[k]);
    free(g.s[i].a);
  }
  free(g.s);
}

/* A message that decodes must peek as a log run too; when it has a run's
 * shape, the peek must tell what the decode found. */
static void peeked(const uint8_t *data, size_t size, const cs_sync_msg *m) {
  cs_run_peek pk;
  int rc = cs__codec_peek_run(&pk, data, size);
  if (rc == CS_ENOMEM)
    return;
  if (rc != 0) {
    fprintf(stderr, "msg peek: code %d on a message that decodes: %s\n", rc, cs_errmsg());
    abort();
  }
  if (pk.simple) {
    const cs_wire_model *wm = &m->models[0];
    bool same = m->nmodels == 1 && wm->nactions == pk.t.nactions && pk.t.origin == m->sender &&
                wm->actions[0].origin == m->sender && wm->actions[0].first == pk.first &&
                wm->ninstances == pk.ninstances;
    for (size_t i = 0; same && i < pk.ninstances; i++)
      same = strcmp(wm->instances[i], pk.instances[i]) == 0;
    /* and its tables are what the encoder collects from the actions */
    if (same) {
      cs_buf ob = CS_BUF_INIT;
      cs__enc e;
      cs__enc_init(&e, &ob);
      for (size_t i = 0; i < wm->nactions; i++)
        cs__enc_collect_action(&e, &wm->actions[i]);
      cs__enc_tables_finish(&e);
      if (!e.rc) {
        same = e.nreps == pk.t.nreps && e.nflds == pk.t.nfields;
        for (size_t i = 0; same && i < e.nreps; i++)
          same = e.rep_list[i] == pk.t.reps[i];
        for (size_t i = 0; same && i < e.nflds; i++)
          same = strcmp(e.fld_list[i], pk.t.fields[i]) == 0;
      }
      cs__enc_end(&e, 0);
      cs_buf_dispose(&ob);
    }
    if (!same) {
      fprintf(stderr, "msg peek: the run's summary differs from its decode\n");
      abort();
    }
  }
  cs__run_peek_dispose(&pk);
}

static int one(const uint8_t *data, size_t size) {
  cs_sync_msg m;
  int rc = cs__codec_decode_msg(&m, data, size);
  fuzz_check_rc("msg", rc);
  streamed(data, size, rc, false);
  streamed(data, size, rc, true);
  if (rc == 0)
    peeked(data, size, &m);
  if (rc == 0) {
    cs_buf b = CS_BUF_INIT;
    if (cs__codec_encode_msg(&b, &m) != 0) {
      fprintf(stderr, "msg: decoded message does not encode: %s\n", cs_errmsg());
      abort();
    }
    fuzz_check_same("msg", &b, data, size);
    cs_buf_dispose(&b);
    cs__sync_msg_dispose(&m);
  }
  return rc;
}

/* `data` (no checksum) as a stored run; sealed_rc: the sealed decode's. */
static void as_run(const uint8_t *data, size_t size, int sealed_rc) {
  cs_sync_msg m;
  uint8_t *run;
  int rc;
  if (size < 2 || data[1] != CS_MSG_SYNC_REQUEST || !(run = malloc(size)))
    return;
  memcpy(run, data, size);
  run[1] = 19;
  rc = cs__codec_decode_run_sink(&m, run, size, NULL);
  fuzz_check_rc("run", rc);
  if ((rc == 0) != (sealed_rc == 0) && rc != CS_ENOMEM && sealed_rc != CS_ENOMEM) {
    fprintf(stderr, "run: code %d where the sealed message gave %d\n", rc, sealed_rc);
    abort();
  }
  if (rc == 0) {
    cs_buf b = CS_BUF_INIT;
    peeked(run, size, &m);
    if (cs__codec_encode_run(&b, &m) != 0) {
      fprintf(stderr, "run: decoded run does not encode: %s\n", cs_errmsg());
      abort();
    }
    fuzz_check_same("run", &b, run, size);
    cs_buf_dispose(&b);
    cs__sync_msg_dispose(&m);
  }
  free(run);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *sealed = malloc(size + 16);
  if (!sealed)
    return 0;
  one(data, size);
  memcpy(sealed, data, size);
  crypto_generichash(sealed + size, 16, data, size, NULL, 0);
  as_run(data, size, one(sealed, size + 16));
  free(sealed);
  return 0;
}
