/* Shared test helpers: temporary stores, store fingerprints, JSON checks. */
#include "tests/helpers/testutil.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/engine.h"

char *tu_tempdir(void) {
  const char *base = getenv("TMPDIR");
  char tmpl[512];
  snprintf(tmpl, sizeof(tmpl), "%s/cs-test-XXXXXX", base && *base ? base : "/tmp");
  char *d = mkdtemp(tmpl);
  cr_assert_not_null(d, "mkdtemp in %s failed", base && *base ? base : "/tmp");
  return strdup(d);
}

void tu_rmrf(const char *path) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", path);
}

cs_store *tu_open(const char *dir, const char *name) {
  char path[512];
  cs_store_options o = CS_STORE_OPTIONS_INIT;
  cs_store *s = NULL;
  o.durability = CS_DURABILITY_FAST;
  snprintf(path, sizeof(path), "%s/%s", dir, name);
  int rc = cs_store_open(&s, path, &o);
  cr_assert_eq(rc, 0, "cs_store_open(%s): %s", path, cs_errmsg());
  return s;
}

char *tu_get(cs_store *s, const char *model, const char *instance) {
  cs_buf b = CS_BUF_INIT;
  int rc = cs_get_local_data(&b, s, model, instance);
  cr_assert_eq(rc, 0, "get %s/%s: %s", model, instance, cs_errmsg());
  return b.ptr;
}

json_t *tu_get_json(cs_store *s, const char *model, const char *instance) {
  char *t = tu_get(s, model, instance);
  json_t *j = json_loads(t, 0, NULL);
  cr_assert_not_null(j, "get %s/%s: not JSON: %s", model, instance, t);
  free(t);
  return j;
}

void tu_act(cs_store *s, cs_action_type t, const char *model, const char *instance,
            const char *json) {
  cs_action a = {t, model, instance, json};
  int rc = cs_queue_offline_action(s, &a);
  cr_assert_eq(rc, 0, "action on %s/%s (%s): %s", model, instance, json ? json : "", cs_errmsg());
}

void tu_sync(cs_store *a, cs_store *b) {
  cs_peer *p = NULL;
  cr_assert_eq(cs_peer_local(&p, b), 0);
  int rc = cs_sync(NULL, a, p);
  cr_assert_eq(rc, 0, "sync: %s", cs_errmsg());
  cs_peer_free(p);
}

/* A fingerprint of every record of every column family. */
static uint64_t fingerprint(cs_store *s, bool with_meta) {
  uint64_t h = 1469598103934665603ull;
  for (int cf = 0; cf < CS_CF__COUNT; cf++) {
    if (!with_meta && (cf == CS_CF_META || cf == CS_CF_PEERS))
      continue;
    cs_iter *it = NULL;
    cr_assert_eq(cs__iter_new(&it, s->db, (cs_cf)cf, NULL, 0, NULL, 0), 0);
    for (; cs__iter_valid(it); cs__iter_next(it)) {
      cs_bytes k = cs__iter_key(it), v = cs__iter_value(it);
      for (size_t i = 0; i < k.len; i++)
        h = (h ^ k.ptr[i]) * 1099511628211ull;
      h = (h ^ 0xfe) * 1099511628211ull;
      for (size_t i = 0; i < v.len; i++)
        h = (h ^ v.ptr[i]) * 1099511628211ull;
      h = (h ^ 0xff) * 1099511628211ull;
    }
    cs__iter_free(it);
  }
  return h;
}

uint64_t tu_fingerprint(cs_store *s) { return fingerprint(s, true); }

uint64_t tu_fingerprint_data(cs_store *s) { return fingerprint(s, false); }

size_t tu_conflicts(cs_store *s, char **out_json) {
  cs_buf b = CS_BUF_INIT;
  cr_assert_eq(cs_list_conflicts(&b, s), 0, "%s", cs_errmsg());
  json_t *arr = json_loads(b.ptr, 0, NULL);
  size_t n = json_array_size(arr);
  json_decref(arr);
  if (out_json)
    *out_json = b.ptr;
  else
    cs_buf_dispose(&b);
  return n;
}

int tu_scale(int normal) {
  const char *s = getenv("CS_TEST_SCALE");
  if (s && strcmp(s, "small") == 0)
    return normal / 10 > 0 ? normal / 10 : 1;
  return normal;
}

size_t tu_log_runs(cs_store *s) {
  cs_iter *it = NULL;
  size_t n = 0;
  cr_assert_eq(cs__iter_new(&it, s->db, CS_CF_LOG, NULL, 0, NULL, 0), 0);
  for (; cs__iter_valid(it); cs__iter_next(it))
    n++;
  cr_assert_eq(cs__iter_status(it), 0);
  cs__iter_free(it);
  return n;
}

static int canned_exchange(cs_peer *self, cs_buf *response, const char *path,
                           const uint8_t *request, size_t len) {
  tu_canned_peer *cp = (tu_canned_peer *)self;
  (void)path;
  (void)request;
  (void)len;
  cs__buf_clear(response);
  return cs__buf_put(response, cp->answer.ptr, cp->answer.size);
}

void tu_canned_init(tu_canned_peer *p) {
  memset(p, 0, sizeof(*p));
  p->base = (cs_peer){CS_PEER_VERSION, canned_exchange, NULL};
}
