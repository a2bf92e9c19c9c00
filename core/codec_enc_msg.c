/* The sync message encoder (docs/wire-format.md section 7): model sections,
 * instance tables, action groups (held, or read from a source in two passes)
 * and states, on top of the item writers of core/codec_enc.c. */
#include <sodium.h>
#include <stdlib.h>

#include "core/codec_enc.h"

typedef struct src_pass {
  cs__enc *e;
  const cs_wire_model *m;
  cs__src_groups *sg;
  size_t gi, left; /* writing: the next group, actions left in the current */
  uint64_t prev_last;
} src_pass;

/* Counts n more actions of `origin` into the section's groups. */
static int src_count(src_pass *sp, cs_replica origin, size_t n) {
  cs__src_groups *sg = sp->sg;
  if (sg->len == 0 || sg->g[sg->len - 1].origin != origin) {
    if (sg->len && sg->g[sg->len - 1].origin > origin)
      cs__enc_fail(sp->e, CS_EINVAL, "model '%s': actions not sorted by origin", sp->m->name);
    else if (cs__array_grow((void **)&sg->g, &sg->cap, sg->len + 1, sizeof(*sg->g)) != 0)
      sp->e->rc = CS_ENOMEM;
    else
      sg->g[sg->len++] = (cs__src_group){origin, 0};
  }
  if (!sp->e->rc)
    sg->g[sg->len - 1].n += n;
  return sp->e->rc;
}

static int src_collect(void *arg, const cs_wire_action *a) {
  src_pass *sp = arg;
  cs__enc_collect_action(sp->e, a);
  return src_count(sp, a->origin, 1);
}

static int src_collect_run(void *arg, const cs_run_tables *t) {
  src_pass *sp = arg;
  cs__enc_collect_run(sp->e, t);
  return src_count(sp, t->origin, t->nactions);
}

static int src_put(void *arg, const cs_wire_action *a) {
  src_pass *sp = arg;
  cs__enc *e = sp->e;
  if (sp->left == 0) {
    if (sp->gi == sp->sg->len || sp->sg->g[sp->gi].origin != a->origin) {
      cs__enc_fail(e, CS_EINTERNAL, "model '%s': the action source changed between passes",
                   sp->m->name);
      return e->rc;
    }
    sp->left = sp->sg->g[sp->gi++].n;
    sp->prev_last = 0;
    cs__enc_put_u(e, cs__enc_rep_idx(e, a->origin));
    cs__enc_put_u(e, sp->left);
  } else if (a->origin != sp->sg->g[sp->gi - 1].origin) {
    cs__enc_fail(e, CS_EINTERNAL, "model '%s': the action source changed between passes",
                 sp->m->name);
    return e->rc;
  }
  if (a->instance >= sp->m->ninstances)
    cs__enc_fail(e, CS_EINVAL, "model '%s': instance %u out of range (table has %zu)", sp->m->name,
                 a->instance, sp->m->ninstances);
  cs__enc_put_action(e, a, sp->prev_last, true);
  sp->prev_last = a->last;
  sp->left--;
  return e->rc;
}

static void src_run(cs__enc *e, const cs_wire_model *m, cs__src_groups *sg, cs_action_fn fn) {
  src_pass sp = {e, m, sg, 0, 0, 0};
  int rc = m->source->each(m->source->arg, fn, fn == src_collect ? src_collect_run : NULL, &sp);
  if (rc && !e->rc)
    e->rc = rc; /* the source's own failure, with its message */
  if (!e->rc && fn == src_put && (sp.gi != sg->len || sp.left != 0))
    cs__enc_fail(e, CS_EINTERNAL, "model '%s': the action source changed between passes", m->name);
}

static void put_model(cs__enc *e, const cs_wire_model *m, cs__src_groups *sg) {
  size_t i = 0;
  cs__enc_put_name(e, "model", m->name);
  cs__enc_put_dotset(e, &m->knowledge);
  cs__enc_put_u(e, m->ninstances);
  for (size_t k = 0; k < m->ninstances; k++)
    cs__enc_put_name(e, "instance", m->instances[k]);
  if (m->source) {
    cs__enc_put_u(e, sg->len);
    if (!e->rc)
      src_run(e, m, sg, src_put);
  }
  /* Actions grouped by origin: the origin once, then the actions in dot
   * order, each dot range relative to the previous one. */
  else {
    size_t groups = 0;
    for (size_t k = 0; k < m->nactions; k++)
      if (k == 0 || m->actions[k].origin != m->actions[k - 1].origin)
        groups++;
    cs__enc_put_u(e, groups);
  }
  while (i < m->nactions && !e->rc) {
    size_t j = i;
    uint64_t prev_last = 0;
    while (j < m->nactions && m->actions[j].origin == m->actions[i].origin)
      j++;
    if (i && m->actions[i - 1].origin > m->actions[i].origin) {
      cs__enc_fail(e, CS_EINVAL, "model '%s': actions not sorted by origin at %zu", m->name, i);
      return;
    }
    cs__enc_put_u(e, cs__enc_rep_idx(e, m->actions[i].origin));
    cs__enc_put_u(e, j - i);
    for (; i < j && !e->rc; i++) {
      if (m->actions[i].instance >= m->ninstances)
        cs__enc_fail(e, CS_EINVAL,
                     "model '%s', action %zu: instance %u out of range (table has %zu)", m->name, i,
                     m->actions[i].instance, m->ninstances);
      cs__enc_put_action(e, &m->actions[i], prev_last, true);
      prev_last = m->actions[i].last;
    }
  }
  cs__enc_put_u(e, m->nstates);
  for (size_t k = 0; k < m->nstates && !e->rc; k++) {
    const cs_wire_state *st = &m->states[k];
    cs__dot_prev pv = {false, 0, 0};
    if (st->instance >= m->ninstances) {
      cs__enc_fail(e, CS_EINVAL, "model '%s', state %zu: instance %u out of range (table has %zu)",
                   m->name, k, st->instance, m->ninstances);
      return;
    }
    if (k && strcmp(m->instances[m->states[k - 1].instance], m->instances[st->instance]) >= 0)
      cs__enc_fail(e, CS_EINVAL, "model '%s': states not sorted by instance at %zu", m->name, k);
    cs__enc_put_u(e, st->instance);
    cs__enc_put_doc(e, &st->doc, &pv);
  }
}

static int encode_msg(cs_buf *out, const cs_sync_msg *msg, bool run) {
  cs__enc e;
  size_t start = out->size;
  cs__enc_init(&e, out);
  e.use_cur = true;
  if (msg->type < CS_MSG_SYNC_REQUEST || msg->type > CS_MSG_PULL_RESPONSE)
    cs__enc_fail(&e, CS_EINVAL, "unknown message type %u", msg->type);
  else if (run && msg->type != CS_MSG_SYNC_REQUEST)
    cs__enc_fail(&e, CS_EINVAL, "a log run is a sync request, not type %u", msg->type);
  for (size_t i = 0; i < msg->nmodels && !e.rc; i++)
    if (msg->models[i].source) {
      e.own_names = true;
      if ((e.groups = cs__calloc(msg->nmodels, sizeof(cs__src_groups))) == NULL)
        e.rc = CS_ENOMEM;
      break;
    }
  for (size_t i = 0; i < msg->nmodels && !e.rc; i++) {
    const cs_wire_model *m = &msg->models[i];
    if (i && strcmp(msg->models[i - 1].name, m->name) >= 0)
      cs__enc_fail(&e, CS_EINVAL, "models not sorted: '%s' after '%s'", m->name,
                   msg->models[i - 1].name);
    cs__enc_collect_dotset(&e, &m->knowledge);
    for (size_t k = 0; k < m->nactions; k++)
      cs__enc_collect_action(&e, &m->actions[k]);
    if (m->source && !e.rc)
      src_run(&e, m, &e.groups[i], src_collect);
    for (size_t k = 0; k < m->nstates; k++)
      cs__enc_collect_doc(&e, &m->states[k].doc);
  }
  cs__enc_tables_finish(&e);
  if (e.nreps > CS__MAX_REPLICAS)
    cs__enc_fail(&e, CS_ETOOBIG, "%zu replicas in one message", e.nreps);
  cs__enc_put_frame(&e, run ? CS__WIRE_RUN : msg->type);
  cs__enc_put_u(&e, msg->sender);
  cs__enc_put_u(&e, msg->clock);
  cs__enc_put_u(&e, msg->cursor);
  cs__enc_put_u(&e, msg->flags);
  cs__enc_put_tables(&e);
  e.hlc = msg->clock;
  cs__enc_put_u(&e, msg->nmodels);
  for (size_t i = 0; i < msg->nmodels && !e.rc; i++) {
    int rc = cs__dotcur_plan(&e.cur, msg->models[i].ninstances, e.nreps);
    if (rc)
      e.rc = rc;
    else
      put_model(&e, &msg->models[i], e.groups ? &e.groups[i] : NULL);
    /* The dot cursor is per model section: instance indexes are. */
    cs__dotcur_dispose(&e.cur);
    e.inst_next = 0;
  }
  if (!e.rc && !run) {
    uint8_t sum[CS__WIRE_SUM_LEN];
    crypto_generichash(sum, sizeof(sum), (const uint8_t *)out->ptr + start, out->size - start, NULL,
                       0);
    if (cs__buf_put(out, sum, sizeof(sum)) != 0)
      e.rc = CS_ENOMEM;
  }
  if (e.groups) {
    for (size_t i = 0; i < msg->nmodels; i++)
      cs__free(e.groups[i].g);
    cs__free(e.groups);
  }
  return cs__enc_end(&e, start);
}

int cs__codec_encode_msg(cs_buf *out, const cs_sync_msg *msg) {
  return encode_msg(out, msg, false);
}

int cs__codec_encode_run(cs_buf *out, const cs_sync_msg *msg) {
  return encode_msg(out, msg, true);
}
