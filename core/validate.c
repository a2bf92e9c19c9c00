/*
 * What the codec cannot check about a peer's message: text is UTF-8, clocks
 * are within the allowed skew of ours, every action writes only entries under
 * its own dots (each used once), every whole state stays within its sender's
 * knowledge. The merge runs these on each part as it is decoded, before the
 * part changes anything; nothing is written unless all of it passed.
 */
#include <stdio.h>

#include "core/engine.h"

/* Dots an action may own beyond one per entry (a dot taken for an action
 * that names no entry, writes replaced within the action). */
#define CS_ACTION_SLACK_DOTS 4096

static size_t count_entries(const cs_doc *d) {
  size_t n = d->nexist;
  for (size_t f = 0; f < d->nfields; f++) {
    const cs_field *fl = &d->fields[f];
    if (fl->kind == CS_KIND_REG)
      n += fl->u.reg.len;
    else if (fl->kind == CS_KIND_SET)
      for (size_t e = 0; e < fl->u.set.len; e++)
        n += fl->u.set.elems[e].ndots;
  }
  return n;
}

static bool text_ok(const char *p, size_t len) {
  return cs__utf8_check(p, len) == len;
}

/* The first name or string of a document that is not UTF-8, or NULL. */
static const char *doc_bad_text(const cs_doc *d) {
  for (size_t f = 0; f < d->nfields; f++) {
    const cs_field *fl = &d->fields[f];
    if (!text_ok(fl->name, strlen(fl->name)))
      return "a field name";
    if (fl->kind == CS_KIND_REG) {
      for (size_t e = 0; e < fl->u.reg.len; e++)
        if (fl->u.reg.entries[e].val.type == CS_VAL_STR &&
            !text_ok(cs__val_data(&fl->u.reg.entries[e].val), fl->u.reg.entries[e].val.len))
          return "a string value";
    } else if (fl->kind == CS_KIND_SET) {
      for (size_t e = 0; e < fl->u.set.len; e++)
        if (fl->u.set.elems[e].val.type == CS_VAL_STR &&
            !text_ok(cs__val_data(&fl->u.set.elems[e].val), fl->u.set.elems[e].val.len))
          return "a string element";
    }
  }
  return NULL;
}

cs_hlc cs__doc_latest_stamp(const cs_doc *d) {
  cs_hlc latest = 0;
  for (size_t i = 0; i < d->nexist; i++)
    if (d->exist[i].hlc > latest)
      latest = d->exist[i].hlc;
  for (size_t f = 0; f < d->nfields; f++)
    if (d->fields[f].kind == CS_KIND_REG)
      for (size_t e = 0; e < d->fields[f].u.reg.len; e++)
        if (d->fields[f].u.reg.entries[e].hlc > latest)
          latest = d->fields[f].u.reg.entries[e].hlc;
  return latest;
}

/* An entry stamped beyond the skew limit would win every later write. */
static int stamp_error(const cs_store *s, uint64_t limit, cs_hlc latest, const char *model,
                       const char *what) {
  return cs__error(CS_ECLOCK,
                   "model '%s', %s: an entry is stamped %llu ms ahead of our clock (the limit is "
                   "%llu ms)",
                   model, what,
                   (unsigned long long)(CS_HLC_MS(latest) - (limit - s->opts.max_clock_skew_ms)),
                   (unsigned long long)s->opts.max_clock_skew_ms);
}

int cs__validate_own_dots(const cs_store *s, uint64_t issued, const cs_dotset *d,
                          const char *model, size_t action) {
  uint64_t claimed = cs__dotset_max(d, s->self);
  char what[48];
  for (size_t i = 0; i < d->extra_len; i++)
    if (d->extra[i].replica == s->self && d->extra[i].counter > claimed)
      claimed = d->extra[i].counter;
  if (CS__LIKELY(claimed <= issued))
    return 0;
  if (action == SIZE_MAX)
    snprintf(what, sizeof(what), "knowledge");
  else
    snprintf(what, sizeof(what), "action %zu", action);
  return cs__error(CS_ECORRUPT,
                   "model '%s', %s: claims dot %llu of this replica (%016llx), which has issued "
                   "%llu: a forged message, or this store is an older copy of itself",
                   model, what, (unsigned long long)claimed, (unsigned long long)s->self,
                   (unsigned long long)issued);
}

/* Is every entry of a whole state under a dot its sender's knowledge has?
 * The join relies on it: a local entry's dot is always in the local
 * context, which is how a small delta knows which entries it can remove. */
static bool state_within(const cs_doc *d, const cs_dotset *k) {
  for (size_t i = 0; i < d->nexist; i++)
    if (!cs__dotset_contains(k, d->exist[i].dot))
      return false;
  for (size_t f = 0; f < d->nfields; f++) {
    const cs_field *fl = &d->fields[f];
    if (fl->kind == CS_KIND_REG) {
      for (size_t e = 0; e < fl->u.reg.len; e++)
        if (!cs__dotset_contains(k, fl->u.reg.entries[e].dot))
          return false;
    } else if (fl->kind == CS_KIND_SET) {
      for (size_t e = 0; e < fl->u.set.len; e++)
        for (size_t q = 0; q < fl->u.set.elems[e].ndots; q++)
          if (!cs__dotset_contains(k, fl->u.set.elems[e].dots[q]))
            return false;
    }
  }
  return true;
}

/* Names are UTF-8 (a document shown as JSON could not hold them otherwise). */
int cs__validate_section(const cs_wire_model *wm) {
  if (!text_ok(wm->name, strlen(wm->name)))
    return cs__error(CS_ECORRUPT, "a model name is not UTF-8");
  for (size_t i = 0; i < wm->ninstances; i++)
    if (!text_ok(wm->instances[i], strlen(wm->instances[i])))
      return cs__error(CS_ECORRUPT, "model '%s': instance %zu's name is not UTF-8", wm->name, i);
  return 0;
}

/* Strings are UTF-8; whole states stay within their sender's knowledge and
 * the skew limit. */
int cs__validate_states(const cs_store *s, const cs_wire_model *wm, uint64_t limit) {
  const char *bad;
  for (size_t j = 0; j < wm->nstates; j++) {
    const char *inst = wm->instances[wm->states[j].instance];
    cs_hlc latest = cs__doc_latest_stamp(&wm->states[j].doc);
    if (CS_HLC_MS(latest) > limit) {
      char what[CS_WIRE_MAX_NAME + 16];
      snprintf(what, sizeof(what), "state of '%s'", inst);
      return stamp_error(s, limit, latest, wm->name, what);
    }
    if ((bad = doc_bad_text(&wm->states[j].doc)) != NULL)
      return cs__error(CS_ECORRUPT, "model '%s', state of '%s': %s is not UTF-8", wm->name, inst,
                       bad);
    if (!state_within(&wm->states[j].doc, &wm->knowledge))
      return cs__error(CS_ECORRUPT,
                       "model '%s', state of '%s': an entry under a dot the sender's knowledge "
                       "lacks",
                       wm->name, inst);
  }
  return 0;
}

uint64_t cs__stamp_limit(const cs_store *s) { return cs__now_ms() + s->opts.max_clock_skew_ms; }

int cs__validate_header(const cs_store *s, const cs_sync_msg *msg, uint64_t limit) {
  uint64_t now = limit - s->opts.max_clock_skew_ms;
  if (CS_HLC_MS(msg->clock) > limit)
    return cs__error(CS_ECLOCK,
                     "peer %016llx: its clock is %llu ms ahead of ours (the limit is %llu ms)",
                     (unsigned long long)msg->sender,
                     (unsigned long long)(CS_HLC_MS(msg->clock) - now),
                     (unsigned long long)s->opts.max_clock_skew_ms);
  return 0;
}

int cs__validate_action(const cs_store *s, const cs_wire_model *wm, size_t j,
                        const cs_wire_action *a, uint64_t limit) {
  uint64_t now = limit - s->opts.max_clock_skew_ms;
  const cs_doc *d = &a->doc;
  const char *bad;

  if ((bad = doc_bad_text(d)) != NULL)
    return cs__error(CS_ECORRUPT, "model '%s', action %zu: %s is not UTF-8", wm->name, j, bad);
  if (CS_HLC_MS(a->hlc) > limit)
    return cs__error(CS_ECLOCK,
                     "model '%s', action %zu (origin %016llx): stamped %llu ms ahead of our "
                     "clock (the limit is %llu ms)",
                     wm->name, j, (unsigned long long)a->origin,
                     (unsigned long long)(CS_HLC_MS(a->hlc) - now),
                     (unsigned long long)s->opts.max_clock_skew_ms);
  if (CS_HLC_MS(cs__doc_latest_stamp(d)) > limit) {
    char what[64];
    snprintf(what, sizeof(what), "action %zu", j);
    return stamp_error(s, limit, cs__doc_latest_stamp(d), wm->name, what);
  }
  /* Bound the range before walking it: a forged action could claim
   * 2^60 dots that a compact context makes look plausible. */
  size_t entries = count_entries(d);
  if (a->last < a->first || a->last - a->first >= entries + CS_ACTION_SLACK_DOTS)
    return cs__error(CS_ECORRUPT,
                     "model '%s', action %zu: %llu dots for %zu entries is not plausible",
                     wm->name, j, (unsigned long long)(a->last - a->first + 1), entries);
  for (uint64_t c = a->first; c <= a->last; c++)
    if (!cs__dotset_contains(&a->ctx, (cs_dot){a->origin, c}))
      return cs__error(CS_ECORRUPT, "model '%s', action %zu: context lacks its own dot %llu",
                       wm->name, j, (unsigned long long)c);
  /* Every entry under one of the action's own dots, each dot used once
   * (the join relies on a dot naming a single entry). */
  size_t span = (size_t)(a->last - a->first + 1);
  uint8_t few[64], *seen = few;
  if (span > 8 * sizeof(few) && (seen = cs__calloc((span + 7) / 8, 1)) == NULL)
    return CS_ENOMEM;
  if (seen == few)
    memset(few, 0, (span + 7) / 8);
  bool ok = true;
#define OWN_DOT(dt)                                                                                \
  ((dt).replica == a->origin && (dt).counter >= a->first && (dt).counter <= a->last &&           \
   !(seen[((dt).counter - a->first) / 8] & (1u << (((dt).counter - a->first) % 8))) &&            \
   (seen[((dt).counter - a->first) / 8] |= (uint8_t)(1u << (((dt).counter - a->first) % 8))))
  for (size_t e = 0; e < d->nexist && ok; e++)
    ok = OWN_DOT(d->exist[e].dot);
  for (size_t f = 0; f < d->nfields && ok; f++) {
    const cs_field *fl = &d->fields[f];
    if (fl->kind == CS_KIND_REG) {
      for (size_t e = 0; e < fl->u.reg.len && ok; e++)
        ok = OWN_DOT(fl->u.reg.entries[e].dot);
    } else if (fl->kind == CS_KIND_SET) {
      for (size_t e = 0; e < fl->u.set.len && ok; e++)
        for (size_t k = 0; k < fl->u.set.elems[e].ndots && ok; k++)
          ok = OWN_DOT(fl->u.set.elems[e].dots[k]);
    } else if (fl->kind == CS_KIND_CTR) {
      for (size_t e = 0; e < fl->u.ctr.len && ok; e++)
        ok = fl->u.ctr.entries[e].replica == a->origin;
    }
  }
#undef OWN_DOT
  if (seen != few)
    cs__free(seen);
  if (!ok)
    return cs__error(CS_ECORRUPT,
                     "model '%s', action %zu (origin %016llx, dots %llu..%llu): writes an entry "
                     "under a dot that is not its own, or under one dot twice",
                     wm->name, j, (unsigned long long)a->origin, (unsigned long long)a->first,
                     (unsigned long long)a->last);
  return 0;
}
