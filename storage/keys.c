/*
 * Key layouts (docs/storage-format.md): names are a u16 big-endian length and
 * the bytes, numbers are u64 big-endian, so that RocksDB's bytewise order
 * groups a model's keys together and orders counters numerically.
 */
#include "storage/storage.h"

static const char *const cf_names[CS_CF__COUNT] = {
    [CS_CF_META] = "meta",     [CS_CF_DOCS] = "docs",           [CS_CF_LOG] = "log",
    [CS_CF_OUTBOX] = "outbox", [CS_CF_CONFLICTS] = "conflicts", [CS_CF_BASELINE] = "baseline",
    [CS_CF_PEERS] = "peers",   [CS_CF_CHANGES] = "changes",
};

const char *cs__cf_name(cs_cf cf) {
  if ((unsigned)cf >= CS_CF__COUNT)
    return "?";
  return cf_names[cf];
}

int cs__key_name(cs_buf *key, const char *name) {
  size_t len = strlen(name);
  uint8_t hdr[2];
  int rc;

  if (len > UINT16_MAX)
    return cs__error(CS_ETOOBIG, "key name of %zu bytes: at most %u allowed", len,
                     (unsigned)UINT16_MAX);
  hdr[0] = (uint8_t)(len >> 8);
  hdr[1] = (uint8_t)len;
  if ((rc = cs__buf_put(key, hdr, 2)) != 0)
    return rc;
  return cs__buf_put(key, name, len);
}

int cs__key_u64(cs_buf *key, uint64_t v) {
  uint8_t b[8];
  cs__put_be64(b, v);
  return cs__buf_put(key, b, 8);
}

int cs__key_doc(cs_buf *key, const char *model, const char *instance) {
  int rc = cs__key_name(key, model);
  if (rc == 0)
    rc = cs__key_name(key, instance);
  return rc;
}

int cs__key_log(cs_buf *key, const char *model, uint64_t origin, uint64_t first) {
  int rc = cs__key_name(key, model);
  if (rc == 0)
    rc = cs__key_u64(key, origin);
  if (rc == 0)
    rc = cs__key_u64(key, first);
  return rc;
}

int cs__key_change(cs_buf *key, const char *model, uint64_t cursor) {
  int rc = cs__key_name(key, model);
  if (rc == 0)
    rc = cs__key_u64(key, cursor);
  return rc;
}

int cs__key_peer(cs_buf *key, uint64_t peer, const char *model) {
  int rc = cs__key_u64(key, peer);
  if (rc == 0)
    rc = cs__key_name(key, model);
  return rc;
}

int cs__key_read_name(char **out, const uint8_t *key, size_t klen, size_t *pos) {
  size_t p = *pos, len;
  char *s;

  *out = NULL;
  if (p > klen || klen - p < 2)
    return cs__error(CS_ECORRUPT, "key of %zu bytes: name length truncated at offset %zu", klen, p);
  len = ((size_t)key[p] << 8) | key[p + 1];
  if (klen - p - 2 < len)
    return cs__error(CS_ECORRUPT,
                     "key of %zu bytes: name at offset %zu claims %zu bytes, %zu remain", klen, p,
                     len, klen - p - 2);
  if (memchr(key + p + 2, '\0', len))
    return cs__error(CS_ECORRUPT, "key of %zu bytes: name at offset %zu contains a NUL byte", klen,
                     p);
  if (!(s = cs__strndup((const char *)key + p + 2, len)))
    return CS_ENOMEM;
  *out = s;
  *pos = p + 2 + len;
  return 0;
}

int cs__key_read_u64(uint64_t *out, const uint8_t *key, size_t klen, size_t *pos) {
  size_t p = *pos;

  *out = 0;
  if (p > klen || klen - p < 8)
    return cs__error(CS_ECORRUPT, "key of %zu bytes: u64 at offset %zu truncated", klen, p);
  *out = cs__get_be64(key + p);
  *pos = p + 8;
  return 0;
}
