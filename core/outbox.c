/*
 * The outbox: one entry per local action not yet acknowledged upstream,
 * stored as runs. A record holds up to CS_OUTBOX_RUN_MAX entries of one
 * commit (a batch of 50,000 actions writes ~200 records, not 50,000), keyed
 * by its first entry's sequence number (u64 BE):
 *
 *   offset  size  field
 *   0       1     run version (3)
 *   1       4     entry count N (BE), 1..CS_OUTBOX_RUN_MAX
 *   then N times: varint sequence (the first entry's number, then each
 *                 one's step from the entry before, at least 1), varint
 *                 length L, L bytes of one entry record (below)
 *
 * Varints are LEB128 (7 bits a byte, low first, at most 10 bytes). Runs of
 * version 2 (earlier builds) are still read: their entries have a u64 BE
 * sequence number and a u32 BE length. So is a value whose first byte is 1:
 * a single entry record as still earlier builds stored it, whose sequence
 * number is its key.
 *
 * An acknowledgement deletes a record whose entries are all acknowledged and
 * rewrites, under the same key, one that keeps some. Entry records are
 * self-contained so that a rewrite copies them as they are.
 *
 * Entry records are binary, because sync scans the outbox after every
 * exchange to drop what the peer acknowledged and JSON parsing there
 * dominated a sync's cost. Version 2, written now:
 *
 *   1 byte version (2), 1 byte type (1 create, 2 update, 3 delete,
 *   4 resolve), 8 bytes origin replica id (BE), then varints: first dot
 *   counter, last - first, time (ms since the epoch), model name length
 *   M (at most 65,535) and M bytes, instance id length I (at most 65,535)
 *   and I bytes, data length D and D bytes of JSON (0: none).
 *
 * Version 1 (earlier builds) has fixed fields: version, type, origin, first,
 * last and time as u64 BE (34 bytes), u16 BE M and the model, u16 BE I and
 * the instance, u32 BE D and the data.
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

/* ---------------------------------------------------------------- varints */

static size_t varint_put(uint8_t *p, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    p[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  p[n++] = (uint8_t)v;
  return n;
}

/* false when the bytes end first or the value has more than 64 bits. */
static bool varint_get(uint64_t *out, const uint8_t **p, const uint8_t *end) {
  uint64_t v = 0;
  for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
    uint8_t b = *(*p)++;
    if (shift == 63 && b > 1)
      return false;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

/* ---------------------------------------------------------- entry records */

#define NAME_MAX_LEN 0xffffu

int cs__outbox_encode(cs_buf *out, const cs_outbox_rec *r) {
  uint8_t head[10 + 5 * 10];
  size_t ml = strlen(r->model), il = strlen(r->instance), dl = r->data ? strlen(r->data) : 0, n;
  int rc;

  if (ml > NAME_MAX_LEN || il > NAME_MAX_LEN || dl > 0xffffffffu || r->last < r->first)
    return cs__error(CS_ETOOBIG, "outbox record of '%s/%s' is too large", r->model, r->instance);
  head[0] = 2;
  head[1] = (uint8_t)r->type;
  cs__put_be64(head + 2, r->origin);
  n = 10;
  n += varint_put(head + n, r->first);
  n += varint_put(head + n, r->last - r->first);
  n += varint_put(head + n, r->time_ms);
  n += varint_put(head + n, ml);
  if ((rc = cs__buf_put(out, head, n)) != 0 || (rc = cs__buf_put(out, r->model, ml)) != 0)
    return rc;
  n = varint_put(head, il);
  if ((rc = cs__buf_put(out, head, n)) != 0 || (rc = cs__buf_put(out, r->instance, il)) != 0)
    return rc;
  n = varint_put(head, dl);
  if ((rc = cs__buf_put(out, head, n)) != 0)
    return rc;
  return dl ? cs__buf_put(out, r->data, dl) : 0;
}

static int decode_v1(cs_outbox_view *out, const uint8_t *p, size_t len) {
  size_t pos = 34, n;

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
  return 0;
bad:
  return cs__error(CS_ECORRUPT, "outbox record: length at offset %zu runs past its %zu bytes",
                   pos, len);
}

/* A varint length and that many bytes, at most `max`. */
static bool bytes_get(const char **out, size_t *out_len, const uint8_t **p, const uint8_t *end,
                      uint64_t max) {
  uint64_t n;
  if (!varint_get(&n, p, end) || n > max || n > (uint64_t)(end - *p))
    return false;
  *out = (const char *)*p;
  *out_len = (size_t)n;
  *p += n;
  return true;
}

static int decode_v2(cs_outbox_view *out, const uint8_t *p, size_t len) {
  const uint8_t *q = p + 10, *end = p + len;
  uint64_t span;

  out->type = p[1];
  out->origin = cs__get_be64(p + 2);
  if (!varint_get(&out->first, &q, end) || !varint_get(&span, &q, end) ||
      span > UINT64_MAX - out->first || !varint_get(&out->time_ms, &q, end) ||
      !bytes_get(&out->model, &out->model_len, &q, end, NAME_MAX_LEN) ||
      !bytes_get(&out->instance, &out->instance_len, &q, end, NAME_MAX_LEN) ||
      !bytes_get(&out->data, &out->data_len, &q, end, 0xffffffffu) || q != end)
    return cs__error(CS_ECORRUPT, "outbox record: damaged at offset %zu of its %zu bytes",
                     (size_t)(q - p), len);
  out->last = out->first + span;
  return 0;
}

int cs__outbox_decode(cs_outbox_view *out, const uint8_t *p, size_t len) {
  int rc;
  if (len < 10 || (p[0] != 1 && p[0] != 2) || (p[0] == 1 && len < 34) || p[1] < 1 || p[1] > 4)
    return cs__error(CS_ECORRUPT, "outbox record: bad header (%zu bytes, version %d)", len,
                     len ? p[0] : -1);
  if ((rc = p[0] == 1 ? decode_v1(out, p, len) : decode_v2(out, p, len)) != 0)
    return rc;
  if (out->first == 0 || out->last < out->first)
    return cs__error(CS_ECORRUPT, "outbox record: bad dot range %llu..%llu",
                     (unsigned long long)out->first, (unsigned long long)out->last);
  return 0;
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

#define RUN_VERSION 3

static int run_entry(cs_outbox_run *run, uint64_t seq, const void *rec, size_t len) {
  static const uint8_t head[5] = {RUN_VERSION, 0, 0, 0, 0};
  uint8_t h[20];
  size_t n, start;
  int rc;
  if (run->n == 0) {
    cs__buf_clear(&run->buf);
    run->first = run->last = seq;
    if ((rc = cs__buf_put(&run->buf, head, sizeof(head))) != 0)
      return rc;
  } else if (seq <= run->last) {
    return cs__error(CS_EINTERNAL, "outbox run: entry %llu after %llu",
                     (unsigned long long)seq, (unsigned long long)run->last);
  }
  n = varint_put(h, run->n ? seq - run->last : seq);
  n += varint_put(h + n, len);
  start = run->buf.size;
  if ((rc = cs__buf_put(&run->buf, h, n)) != 0 || (rc = cs__buf_put(&run->buf, rec, len)) != 0) {
    run->buf.size = start; /* the entry is not there */
    return rc;
  }
  run->last = seq;
  run->n++;
  return 0;
}

int cs__outbox_run_add(cs_outbox_run *run, uint64_t seq, const cs_outbox_rec *rec) {
  int rc;
  cs__buf_clear(&run->scratch);
  if ((rc = cs__outbox_encode(&run->scratch, rec)) != 0)
    return rc;
  return run_entry(run, seq, run->scratch.ptr, run->scratch.size);
}

int cs__outbox_run_add_raw(cs_outbox_run *run, uint64_t seq, const uint8_t *p, size_t len) {
  return run_entry(run, seq, p, len);
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
  cs_buf_dispose(&run->scratch);
  memset(run, 0, sizeof(*run));
}

int cs__outbox_cursor(cs_outbox_cursor *c, uint64_t key, const uint8_t *p, size_t len) {
  memset(c, 0, sizeof(*c));
  c->key = key;
  c->p = p;
  c->end = p + len;
  if (len >= 1 && p[0] == 1) {
    c->version = 1;
    c->left = 1;
    return 0;
  }
  if (len < 5 || (p[0] != 2 && p[0] != RUN_VERSION))
    return cs__error(CS_ECORRUPT, "outbox record %llu: bad run header (%zu bytes, version %d)",
                     (unsigned long long)key, len, len ? p[0] : -1);
  c->version = p[0];
  c->left = cs__get_be32(p + 1);
  if (c->left == 0 || c->left > CS_OUTBOX_RUN_MAX)
    return cs__error(CS_ECORRUPT, "outbox record %llu: run of %u entries",
                     (unsigned long long)key, c->left);
  c->p += 5;
  return 0;
}

int cs__outbox_next(cs_outbox_cursor *c, uint64_t *seq, const uint8_t **rec, size_t *len) {
  uint64_t s, n;
  if (c->left == 0) {
    if (c->p != c->end)
      return cs__error(CS_ECORRUPT, "outbox record %llu: %zu bytes after its entries",
                       (unsigned long long)c->key, (size_t)(c->end - c->p));
    return 0;
  }
  c->left--;
  if (c->version == 1) {
    *seq = c->key;
    *rec = c->p;
    *len = (size_t)(c->end - c->p);
    c->p = c->end;
    return 1;
  }
  if (c->version == 2) {
    if ((size_t)(c->end - c->p) < 12 ||
        (n = cs__get_be32(c->p + 8)) > (size_t)(c->end - c->p) - 12)
      goto past;
    s = cs__get_be64(c->p);
    c->p += 12;
  } else {
    const uint8_t *q = c->p;
    uint64_t step, base = c->started ? c->prev : 0;
    if (!varint_get(&step, &q, c->end) || !varint_get(&n, &q, c->end) ||
        n > (uint64_t)(c->end - q))
      goto past;
    if ((c->started && step == 0) || step > UINT64_MAX - base)
      return cs__error(CS_ECORRUPT, "outbox record %llu: entries out of order",
                       (unsigned long long)c->key);
    s = base + step;
    c->p = q;
  }
  if (s < c->key || (c->started && s <= c->prev))
    return cs__error(CS_ECORRUPT, "outbox record %llu: entry %llu below its key or out of order",
                     (unsigned long long)c->key, (unsigned long long)s);
  c->started = true;
  c->prev = s;
  *seq = s;
  *rec = c->p;
  *len = (size_t)n;
  c->p += n;
  return 1;
past:
  return cs__error(CS_ECORRUPT, "outbox record %llu: an entry runs past the record",
                   (unsigned long long)c->key);
}
