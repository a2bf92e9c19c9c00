/*
 * The outbox: one entry per local action not yet acknowledged upstream,
 * stored as runs. A record holds up to CS_OUTBOX_RUN_MAX entries of one
 * commit (a batch of 50,000 actions writes ~200 records, not 50,000), keyed
 * by its first entry's sequence number (u64 BE):
 *
 *   offset  size  field
 *   0       1     run version (2)
 *   1       4     entry count N (BE), 1..CS_OUTBOX_RUN_MAX
 *   then N times: u64 sequence number (BE, ascending), u32 length L (BE),
 *                 L bytes of one entry record (below)
 *
 * An acknowledgement deletes a record whose entries are all acknowledged and
 * rewrites, under the same key, one that keeps some. A value whose first
 * byte is 1 is a single entry record as earlier builds stored it; its
 * sequence number is its key.
 *
 * Entry records are binary, because sync scans the outbox after every
 * exchange to drop what the peer acknowledged and JSON parsing there
 * dominated a sync's cost:
 *
 *   offset  size  field
 *   0       1     record version (1)
 *   1       1     type: 1 create, 2 update, 3 delete, 4 resolve
 *   2       8     origin replica id (BE)
 *   10      8     first dot counter (BE)
 *   18      8     last dot counter (BE)
 *   26      8     time, ms since the epoch (BE)
 *   34      2     model name length M (BE), then M bytes
 *   36+M    2     instance id length I (BE), then I bytes
 *   38+M+I  4     data length D (BE), then D bytes of JSON (0: none)
 *
 * JSON ({"seq", "type", ...}) is made only when the outbox is listed.
 */
#include <jansson.h>

#include "core/engine.h"

static const char *const type_names[] = {"", "create", "update", "delete", "resolve"};

int cs__outbox_type(const char *name) {
  for (int i = 1; i < 5; i++)
    if (strcmp(type_names[i], name) == 0)
      return i;
  return 0;
}

int cs__outbox_encode(cs_buf *out, const cs_outbox_rec *r) {
  uint8_t head[34], len2[2], len4[4];
  size_t ml = strlen(r->model), il = strlen(r->instance), dl = r->data ? strlen(r->data) : 0;
  int rc;

  if (ml > 0xffff || il > 0xffff || dl > 0xffffffffu)
    return cs__error(CS_ETOOBIG, "outbox record of '%s/%s' is too large", r->model, r->instance);
  head[0] = 1;
  head[1] = (uint8_t)r->type;
  cs__put_be64(head + 2, r->origin);
  cs__put_be64(head + 10, r->first);
  cs__put_be64(head + 18, r->last);
  cs__put_be64(head + 26, r->time_ms);
  if ((rc = cs__buf_put(out, head, sizeof(head))) != 0)
    return rc;
  len2[0] = (uint8_t)(ml >> 8);
  len2[1] = (uint8_t)ml;
  if ((rc = cs__buf_put(out, len2, 2)) != 0 || (rc = cs__buf_put(out, r->model, ml)) != 0)
    return rc;
  len2[0] = (uint8_t)(il >> 8);
  len2[1] = (uint8_t)il;
  if ((rc = cs__buf_put(out, len2, 2)) != 0 || (rc = cs__buf_put(out, r->instance, il)) != 0)
    return rc;
  cs__put_be32(len4, (uint32_t)dl);
  if ((rc = cs__buf_put(out, len4, 4)) != 0)
    return rc;
  return dl ? cs__buf_put(out, r->data, dl) : 0;
}

int cs__outbox_decode(cs_outbox_view *out, const uint8_t *p, size_t len) {
  size_t pos = 34, n;

  if (len < 34 || p[0] != 1 || p[1] < 1 || p[1] > 4)
    return cs__error(CS_ECORRUPT, "outbox record: bad header (%zu bytes, version %d)", len,
                     len ? p[0] : -1);
  out->type = p[1];
  out->origin = cs__get_be64(p + 2);
  out->first = cs__get_be64(p + 10);
  out->last = cs__get_be64(p + 18);
  out->time_ms = cs__get_be64(p + 26);
  if (pos + 2 > len || pos + 2 + (n = (size_t)p[pos] << 8 | p[pos + 1]) > len)
    goto bad;
  out->model = (const char *)p + pos + 2;
  out->model_len = n;
  pos += 2 + n;
  if (pos + 2 > len || pos + 2 + (n = (size_t)p[pos] << 8 | p[pos + 1]) > len)
    goto bad;
  out->instance = (const char *)p + pos + 2;
  out->instance_len = n;
  pos += 2 + n;
  if (pos + 4 > len || pos + 4 + (n = cs__get_be32(p + pos)) != len)
    goto bad;
  out->data = (const char *)p + pos + 4;
  out->data_len = n;
  if (out->first == 0 || out->last < out->first)
    return cs__error(CS_ECORRUPT, "outbox record: bad dot range %llu..%llu",
                     (unsigned long long)out->first, (unsigned long long)out->last);
  return 0;
bad:
  return cs__error(CS_ECORRUPT, "outbox record: length at offset %zu runs past its %zu bytes",
                   pos, len);
}

/* One record as the JSON object cs_get_queued_actions lists. */
int cs__outbox_json(cs_buf *out, uint64_t seq, const uint8_t *p, size_t len) {
  cs_outbox_view v;
  json_t *o = NULL, *data = NULL;
  char origin[17];
  int rc;

  if ((rc = cs__outbox_decode(&v, p, len)) != 0)
    return cs__error_wrap(rc, "outbox entry %llu: ", (unsigned long long)seq);
  if (v.data_len)
    data = json_loadb(v.data, v.data_len, 0, NULL);
  snprintf(origin, sizeof(origin), "%016llx", (unsigned long long)v.origin);
  o = json_pack("{s:I, s:s, s:s%, s:s%, s:o?, s:I, s:s}", "seq", (json_int_t)seq, "type",
                type_names[v.type], "model", v.model, v.model_len, "instance", v.instance,
                v.instance_len, "data", data, "time", (json_int_t)v.time_ms, "origin", origin);
  if (!o)
    return cs__error(CS_ENOMEM, "out of memory listing the outbox");
  rc = cs__json_dump(out, o);
  json_decref(o);
  return rc;
}

int cs__outbox_iter(cs_iter **out, cs_store *s) {
  uint8_t lo[8];
  cs__put_be64(lo, s->outbox_head);
  return cs__iter_new(out, s->db, CS_CF_OUTBOX, lo, 8, NULL, 0);
}

int cs__outbox_load(cs_store *s) {
  cs_iter *it = NULL;
  int rc;

  s->outbox_head = 0;
  s->outbox_len = 0;
  if ((rc = cs__outbox_iter(&it, s)) != 0)
    return rc;
  for (; cs__iter_valid(it); cs__iter_next(it)) {
    cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
    cs_outbox_cursor c;
    if (k.len != 8) {
      rc = cs__error(CS_ECORRUPT, "outbox key of %zu bytes (expected 8)", k.len);
      break;
    }
    if ((rc = cs__outbox_cursor(&c, cs__get_be64(k.ptr), v.ptr, v.len)) != 0)
      break;
    if (s->outbox_len == 0)
      s->outbox_head = c.key;
    s->outbox_len += c.left;
  }
  if (rc == 0)
    rc = cs__iter_status(it);
  if (rc == 0 && s->outbox_len == 0)
    s->outbox_head = s->outbox_seq + 1;
  cs__iter_free(it);
  return rc;
}

/* ------------------------------------------------------------------ runs */

static int run_start(cs_outbox_run *run, uint64_t seq) {
  static const uint8_t head[5] = {2, 0, 0, 0, 0};
  if (run->n)
    return 0;
  cs__buf_clear(&run->buf);
  run->first = seq;
  return cs__buf_put(&run->buf, head, sizeof(head));
}

/* Appends the entry header; the caller appends the record and then calls
 * run_end with the header's offset. */
static int run_entry(cs_outbox_run *run, uint64_t seq, size_t *at) {
  uint8_t h[12] = {0};
  int rc;
  if ((rc = run_start(run, seq)) != 0)
    return rc;
  cs__put_be64(h, seq);
  *at = run->buf.size;
  return cs__buf_put(&run->buf, h, sizeof(h));
}

static void run_end(cs_outbox_run *run, size_t at) {
  cs__put_be32((uint8_t *)run->buf.ptr + at + 8, (uint32_t)(run->buf.size - at - 12));
  run->n++;
}

int cs__outbox_run_add(cs_outbox_run *run, uint64_t seq, const cs_outbox_rec *rec) {
  size_t at;
  int rc;
  if ((rc = run_entry(run, seq, &at)) != 0)
    return rc;
  if ((rc = cs__outbox_encode(&run->buf, rec)) != 0) {
    run->buf.size = at; /* the entry is not there */
    return rc;
  }
  run_end(run, at);
  return 0;
}

int cs__outbox_run_add_raw(cs_outbox_run *run, uint64_t seq, const uint8_t *p, size_t len) {
  size_t at;
  int rc;
  if ((rc = run_entry(run, seq, &at)) != 0)
    return rc;
  if ((rc = cs__buf_put(&run->buf, p, len)) != 0) {
    run->buf.size = at;
    return rc;
  }
  run_end(run, at);
  return 0;
}

void cs__outbox_run_put(cs_outbox_run *run, cs_wbatch *b, uint64_t key) {
  uint8_t k[8];
  if (!run->n)
    return;
  cs__put_be32((uint8_t *)run->buf.ptr + 1, run->n);
  cs__put_be64(k, key);
  cs__wbatch_put(b, CS_CF_OUTBOX, k, 8, run->buf.ptr, run->buf.size);
  run->n = 0;
}

void cs__outbox_run_dispose(cs_outbox_run *run) {
  cs_buf_dispose(&run->buf);
  memset(run, 0, sizeof(*run));
}

int cs__outbox_cursor(cs_outbox_cursor *c, uint64_t key, const uint8_t *p, size_t len) {
  memset(c, 0, sizeof(*c));
  c->key = key;
  c->p = p;
  c->end = p + len;
  if (len >= 1 && p[0] == 1) {
    c->single = true;
    c->left = 1;
    return 0;
  }
  if (len < 5 || p[0] != 2)
    return cs__error(CS_ECORRUPT, "outbox record %llu: bad run header (%zu bytes, version %d)",
                     (unsigned long long)key, len, len ? p[0] : -1);
  c->left = cs__get_be32(p + 1);
  if (c->left == 0 || c->left > CS_OUTBOX_RUN_MAX)
    return cs__error(CS_ECORRUPT, "outbox record %llu: run of %u entries",
                     (unsigned long long)key, c->left);
  c->p += 5;
  return 0;
}

int cs__outbox_next(cs_outbox_cursor *c, uint64_t *seq, const uint8_t **rec, size_t *len) {
  size_t n;
  uint64_t s;
  if (c->left == 0) {
    if (c->p != c->end)
      return cs__error(CS_ECORRUPT, "outbox record %llu: %zu bytes after its entries",
                       (unsigned long long)c->key, (size_t)(c->end - c->p));
    return 0;
  }
  c->left--;
  if (c->single) {
    *seq = c->key;
    *rec = c->p;
    *len = (size_t)(c->end - c->p);
    c->p = c->end;
    return 1;
  }
  if ((size_t)(c->end - c->p) < 12 || (n = cs__get_be32(c->p + 8)) > (size_t)(c->end - c->p) - 12)
    return cs__error(CS_ECORRUPT, "outbox record %llu: an entry runs past the record",
                     (unsigned long long)c->key);
  s = cs__get_be64(c->p);
  if (s < c->key)
    return cs__error(CS_ECORRUPT, "outbox record %llu: entry %llu below its key",
                     (unsigned long long)c->key, (unsigned long long)s);
  *seq = s;
  *rec = c->p + 12;
  *len = n;
  c->p += 12 + n;
  return 1;
}
