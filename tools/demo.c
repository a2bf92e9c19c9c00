/*
 * demo: the guided scenario. A hub server on loopback and two devices (a phone
 * and a laptop), each a store in a temporary directory, all in this process.
 * Both devices edit one profile offline, sync through the hub, see the merge
 * and the one true conflict, resolve it, and end in the same state as the hub.
 * Exits 0 only when the three end states are really identical.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MODEL "UserProfile"
#define INSTANCE "profile_123"

typedef struct demo {
  cli_ctx *ctx;
  int color;
  int step;
  int failures;
  char base[PATH_MAX];
  cs_store *hub, *phone, *laptop;
  cs_server *server;
  cs_peer *to_hub_phone, *to_hub_laptop;
  char url[64];
} demo;

/* ---- output ---- */

static const char *c_on(const demo *d, const char *code) { return d->color ? code : ""; }
static const char *c_off(const demo *d) { return d->color ? "\033[0m" : ""; }
#define BOLD "\033[1m"
#define DIM "\033[2m"
#define GREEN "\033[32m"
#define RED "\033[31m"
#define CYAN "\033[36m"

static void step(demo *d, const char *title, const char *why) {
  printf("\n%s%d. %s%s\n", c_on(d, BOLD), ++d->step, title, c_off(d));
  if (why)
    printf("   %s%s%s\n", c_on(d, DIM), why, c_off(d));
}

static void say(demo *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(demo *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("   ");
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  (void)d;
}

static void show(demo *d, const char *who, const char *json) {
  printf("   %s%-7s%s %s\n", c_on(d, CYAN), who, c_off(d), json);
}

static void check(demo *d, int ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void check(demo *d, int ok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  printf("   %s%s%s ", c_on(d, ok ? GREEN : RED), ok ? "ok " : "FAILED", c_off(d));
  vprintf(fmt, ap);
  printf("\n");
  va_end(ap);
  if (!ok)
    d->failures++;
}

/* Reports a failed library call; returns its exit code. */
static int fail(demo *d, int rc, const char *what) {
  fflush(stdout);
  return cli_lib_error(d->ctx, rc, what);
}

/* ---- reading state ---- */

static int local(demo *d, cs_buf *out, cs_store *s) {
  cs_buf_dispose(out);
  int rc = cs_get_local_data(out, s, MODEL, INSTANCE);
  return rc < 0 ? fail(d, rc, MODEL " " INSTANCE) : 0;
}

static int show_local(demo *d, const char *who, cs_store *s) {
  cs_buf b = CS_BUF_INIT;
  int rc = local(d, &b, s);
  if (rc == 0)
    show(d, who, b.ptr);
  cs_buf_dispose(&b);
  return rc;
}

static int show_queue(demo *d, const char *who, cs_store *s) {
  cs_buf b = CS_BUF_INIT;
  int rc = cs_get_queued_actions(&b, s);
  if (rc < 0)
    return fail(d, rc, "outbox");
  json_t *arr = json_loads(b.ptr ? b.ptr : "[]", 0, NULL);
  cs_buf_dispose(&b);
  size_t i;
  json_t *a;
  printf("   %s%s%s queue (%zu action%s):\n", c_on(d, CYAN), who, c_off(d),
         json_array_size(arr), json_array_size(arr) == 1 ? "" : "s");
  json_array_foreach(arr, i, a) {
    char *s1 = json_dumps(a, JSON_COMPACT);
    printf("     %s\n", s1 ? s1 : "?");
    free(s1);
  }
  json_decref(arr);
  return 0;
}

/* Whether the instance's "interests" are exactly the given set. */
static int interests_are(demo *d, cs_store *s, const char *const *want, size_t nwant,
                         char *shown, size_t len) {
  cs_buf b = CS_BUF_INIT;
  if (local(d, &b, s) != 0)
    return 0;
  json_t *o = json_loads(b.ptr, 0, NULL);
  cs_buf_dispose(&b);
  json_t *arr = json_object_get(o, "interests");
  char *txt = arr ? json_dumps(arr, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  snprintf(shown, len, "%s", txt ? txt : "(none)");
  free(txt);
  int ok = json_is_array(arr) && json_array_size(arr) == nwant;
  for (size_t i = 0; ok && i < nwant; i++) {
    int found = 0;
    size_t k;
    json_t *e;
    json_array_foreach(arr, k, e) found |= json_is_string(e) && !strcmp(json_string_value(e), want[i]);
    ok = found;
  }
  json_decref(o);
  return ok;
}

static int conflicts_of(demo *d, cs_store *s, json_t **out) {
  cs_buf b = CS_BUF_INIT;
  int rc = cs_list_conflicts(&b, s);
  if (rc < 0)
    return fail(d, rc, "conflicts");
  *out = json_loads(b.ptr && b.size ? b.ptr : "[]", 0, NULL);
  cs_buf_dispose(&b);
  if (!json_is_array(*out)) {
    json_decref(*out);
    *out = json_array();
  }
  return 0;
}

/* ---- actions ---- */

static int put(demo *d, cs_store *s, cs_action_type type, const char *json) {
  cs_action a = {type, MODEL, INSTANCE, json};
  int rc = cs_queue_offline_action(s, &a);
  return rc < 0 ? fail(d, rc, MODEL " " INSTANCE) : 0;
}

static int sync_with_hub(demo *d, const char *who, cs_store *s, cs_peer *p) {
  cs_sync_result r = CS_SYNC_RESULT_INIT;
  int rc = cs_sync(&r, s, p);
  if (rc < 0) {
    char what[64];
    snprintf(what, sizeof(what), "%s syncing with the hub", who);
    return fail(d, rc, what);
  }
  say(d, "%s%-7s%s <-> hub: sent %zu, received %zu, %zu open conflict%s", c_on(d, CYAN), who,
      c_off(d), r.sent, r.received, r.conflict_count, r.conflict_count == 1 ? "" : "s");
  cs_sync_result_dispose(&r);
  return 0;
}

static int open_store(demo *d, cs_store **out, const char *name) {
  char path[PATH_MAX + 16];
  snprintf(path, sizeof(path), "%s/%s", d->base, name);
  cs_store_options o = CS_STORE_OPTIONS_INIT;
  o.durability = CS_DURABILITY_FAST; /* throwaway stores */
  int rc = cs_store_open(out, path, &o);
  return rc < 0 ? fail(d, rc, path) : 0;
}

static int define_schema(demo *d, cs_store *s) {
  const cs_field_def f[] = {{"name", CS_FIELD_REGISTER, CS_POLICY_SURFACE},
                            {"city", CS_FIELD_REGISTER, CS_POLICY_SURFACE},
                            {"interests", CS_FIELD_SET, CS_POLICY_SURFACE}};
  int rc = cs_define_model(s, MODEL, f, 3);
  return rc < 0 ? fail(d, rc, "define " MODEL) : 0;
}

/* ---- the scenario ---- */

static int setup(demo *d) {
  int rc;
  step(d, "Start a hub and two devices",
       "Three replicas, each its own store: a hub server on loopback, a phone, a laptop.");
  const char *tmp = getenv("TMPDIR");
  snprintf(d->base, sizeof(d->base), "%s/cosmicsync-demo-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
  if (!mkdtemp(d->base)) {
    d->base[0] = '\0';
    return cli_fail(d->ctx, CLI_EXIT_INTERNAL, "cannot create a temporary directory");
  }
  if ((rc = open_store(d, &d->hub, "hub")) || (rc = open_store(d, &d->phone, "phone")) ||
      (rc = open_store(d, &d->laptop, "laptop")))
    return rc;
  if ((rc = define_schema(d, d->hub)) || (rc = define_schema(d, d->phone)) ||
      (rc = define_schema(d, d->laptop)))
    return rc;
  say(d, "model %s: name (register), city (register), interests (set)", MODEL);

  char kp[65], kl[65], kh[65];
  if ((rc = cs_store_public_key(kp, d->phone)) < 0 || (rc = cs_store_public_key(kl, d->laptop)) < 0 ||
      (rc = cs_store_public_key(kh, d->hub)) < 0)
    return fail(d, rc, "public key");
  const char *all[] = {"*"};
  if ((rc = cs_trust(d->hub, kp, all, 1, all, 1)) < 0 ||
      (rc = cs_trust(d->hub, kl, all, 1, all, 1)) < 0)
    return fail(d, rc, "trust");
  say(d, "the hub trusts the phone  %.16s... and the laptop %.16s...", kp, kl);

  cs_server_options so = CS_SERVER_OPTIONS_INIT;
  so.listen_host = "127.0.0.1";
  so.port = 0;
  if ((rc = cs_server_start(&d->server, d->hub, &so)) < 0) {
    d->server = NULL;
    return fail(d, rc, "hub server");
  }
  snprintf(d->url, sizeof(d->url), "http://127.0.0.1:%u", (unsigned)cs_server_port(d->server));
  say(d, "hub listening on %s (key %.16s...)", d->url, kh);

  cs_http_peer_options ho = CS_HTTP_PEER_OPTIONS_INIT;
  ho.server_key = kh;
  if ((rc = cs_peer_http(&d->to_hub_phone, d->phone, d->url, &ho)) < 0 ||
      (rc = cs_peer_http(&d->to_hub_laptop, d->laptop, d->url, &ho)) < 0)
    return fail(d, rc, "peer");
  return 0;
}

static int initial_profile(demo *d) {
  int rc;
  step(d, "The phone creates the profile and both devices sync",
       "So that both devices start from the same state.");
  if ((rc = put(d, d->phone, CS_ACTION_CREATE,
                "{\"name\":\"Ada\",\"city\":\"Berlin\",\"interests\":[\"hiking\",\"climbing\"]}")))
    return rc;
  if ((rc = show_queue(d, "phone", d->phone)))
    return rc;
  if ((rc = sync_with_hub(d, "phone", d->phone, d->to_hub_phone)) ||
      (rc = sync_with_hub(d, "laptop", d->laptop, d->to_hub_laptop)))
    return rc;
  cs_buf a = CS_BUF_INIT, b = CS_BUF_INIT;
  if (!(rc = local(d, &a, d->phone)) && !(rc = local(d, &b, d->laptop))) {
    show(d, "phone", a.ptr);
    show(d, "laptop", b.ptr);
    check(d, strcmp(a.ptr, b.ptr) == 0, "both devices hold the same profile");
  }
  cs_buf_dispose(&a);
  cs_buf_dispose(&b);
  return rc;
}

static int offline_edits(demo *d) {
  int rc;
  step(d, "Both devices edit offline",
       "Each edit applies at once on its device (optimistic UI) and waits in its queue.");
  say(d, "phone : adds \"photography\" to interests, moves to Munich");
  if ((rc = put(d, d->phone, CS_ACTION_UPDATE,
                "{\"interests\":{\"$add\":[\"photography\"]},\"city\":\"Munich\"}")))
    return rc;
  say(d, "laptop: removes \"hiking\" from interests, moves to Hamburg");
  if ((rc = put(d, d->laptop, CS_ACTION_UPDATE,
                "{\"interests\":{\"$remove\":[\"hiking\"]},\"city\":\"Hamburg\"}")))
    return rc;
  if ((rc = show_local(d, "phone", d->phone)) || (rc = show_local(d, "laptop", d->laptop)))
    return rc;
  if ((rc = show_queue(d, "phone", d->phone)) || (rc = show_queue(d, "laptop", d->laptop)))
    return rc;
  return 0;
}

static int sync_round(demo *d, const char *why) {
  int rc;
  step(d, "Back online: sync through the hub", why);
  if ((rc = sync_with_hub(d, "phone", d->phone, d->to_hub_phone)) ||
      (rc = sync_with_hub(d, "laptop", d->laptop, d->to_hub_laptop)) ||
      (rc = sync_with_hub(d, "phone", d->phone, d->to_hub_phone)))
    return rc;
  return 0;
}

static int merged_interests(demo *d) {
  step(d, "The interests merged without a conflict",
       "A set merges adds and removes from both sides: climbing stays, hiking is gone, "
       "photography is in.");
  const char *want[] = {"climbing", "photography"};
  struct {
    const char *who;
    cs_store *s;
  } r[] = {{"phone", d->phone}, {"laptop", d->laptop}, {"hub", d->hub}};
  for (size_t i = 0; i < 3; i++) {
    char shown[256];
    int ok = interests_are(d, r[i].s, want, 2, shown, sizeof(shown));
    check(d, ok, "%-7s interests %s", r[i].who, shown);
  }
  return 0;
}

/* Shows the conflict. The user then chooses the sibling that is not the
 * visible pick, so that the resolution visibly changes something. */
static int show_conflict(demo *d, char *id, size_t idlen, size_t *pick, char *chosen,
                         size_t chosenlen) {
  int rc;
  step(d, "The one real conflict: city",
       "Both devices changed city to different values without seeing each other. Every "
       "replica shows the same deterministic pick and keeps both siblings.");
  json_t *cp = NULL, *cl = NULL;
  if ((rc = conflicts_of(d, d->phone, &cp)) || (rc = conflicts_of(d, d->laptop, &cl))) {
    json_decref(cp);
    return rc;
  }
  check(d, json_array_size(cp) == 1, "the phone has %zu open conflict(s)", json_array_size(cp));
  check(d, json_array_size(cl) == 1, "the laptop has %zu open conflict(s)", json_array_size(cl));
  json_t *c = json_array_get(cp, 0);
  const char *cid = json_string_value(json_object_get(c, "id"));
  const char *lid = json_string_value(json_object_get(json_array_get(cl, 0), "id"));
  snprintf(id, idlen, "%s", cid ? cid : "");
  *pick = 0;
  if (c) {
    const char *field = json_string_value(json_object_get(c, "field"));
    check(d, field && !strcmp(field, "city"), "conflict %s on field %s", cid ? cid : "?",
          field ? field : "?");
    check(d, cid && lid && !strcmp(cid, lid), "both devices name it the same way");
    json_t *visible = json_object_get(c, "visible");
    char *vis = json_dumps(visible, JSON_ENCODE_ANY);
    say(d, "visible now: %s (last writer wins until someone decides)", vis ? vis : "?");
    free(vis);
    json_t *sib = json_object_get(c, "siblings");
    check(d, json_array_size(sib) == 2, "%zu siblings:", json_array_size(sib));
    size_t i;
    json_t *s;
    json_array_foreach(sib, i, s) {
      char *txt = json_dumps(s, JSON_COMPACT);
      say(d, "  [%zu] %s", i, txt ? txt : "?");
      free(txt);
    }
    for (i = json_array_size(sib); i-- > 0;)
      if (!json_equal(json_object_get(json_array_get(sib, i), "value"), visible))
        *pick = i;
    json_t *pv = json_object_get(json_array_get(sib, *pick), "value");
    if (json_is_string(pv))
      snprintf(chosen, chosenlen, "%s", json_string_value(pv));
  }
  json_decref(cp);
  json_decref(cl);
  return id[0] ? 0 : cli_fail(d->ctx, CLI_EXIT_STATE, "demo: no conflict to resolve");
}

static int resolve(demo *d, const char *id, size_t pick, const char *chosen) {
  int rc;
  step(d, "The user resolves it once, on the phone",
       "The resolution is a write that supersedes both siblings; syncing clears the conflict "
       "everywhere.");
  say(d, "the user keeps \"%s\": resolve %s --pick %zu", chosen, id, pick);
  cs_resolution r = {CS_RESOLVE_PICK, pick, NULL};
  if ((rc = cs_resolve_conflict(d->phone, id, &r)) < 0)
    return fail(d, rc, "resolve");
  if ((rc = sync_with_hub(d, "phone", d->phone, d->to_hub_phone)) ||
      (rc = sync_with_hub(d, "laptop", d->laptop, d->to_hub_laptop)))
    return rc;
  struct {
    const char *who;
    cs_store *s;
  } r3[] = {{"phone", d->phone}, {"laptop", d->laptop}, {"hub", d->hub}};
  for (size_t i = 0; i < 3; i++) {
    json_t *c = NULL;
    if ((rc = conflicts_of(d, r3[i].s, &c)))
      return rc;
    check(d, json_array_size(c) == 0, "%-7s open conflicts: %zu", r3[i].who, json_array_size(c));
    json_decref(c);
  }
  return 0;
}

static int final_state(demo *d, const char *chosen) {
  int rc;
  step(d, "Final state on all three replicas", "Compared byte for byte.");
  cs_buf a = CS_BUF_INIT, b = CS_BUF_INIT, h = CS_BUF_INIT;
  if (!(rc = local(d, &a, d->phone)) && !(rc = local(d, &b, d->laptop)) &&
      !(rc = local(d, &h, d->hub))) {
    show(d, "phone", a.ptr);
    show(d, "laptop", b.ptr);
    show(d, "hub", h.ptr);
    int same = !strcmp(a.ptr, b.ptr) && !strcmp(a.ptr, h.ptr);
    check(d, same, same ? "identical on phone, laptop and hub" : "the replicas differ");
    json_t *o = json_loads(a.ptr, 0, NULL);
    const char *city = json_string_value(json_object_get(o, "city"));
    check(d, city && !strcmp(city, chosen), "city is the chosen \"%s\"", chosen);
    json_decref(o);
  }
  cs_buf_dispose(&a);
  cs_buf_dispose(&b);
  cs_buf_dispose(&h);
  return rc;
}

static void teardown(demo *d) {
  if (d->to_hub_phone)
    cs_peer_free(d->to_hub_phone);
  if (d->to_hub_laptop)
    cs_peer_free(d->to_hub_laptop);
  if (d->server) {
    cs_server_stop(d->server);
    say(d, "hub server stopped");
  }
  if (d->hub)
    cs_store_close(d->hub);
  if (d->phone)
    cs_store_close(d->phone);
  if (d->laptop)
    cs_store_close(d->laptop);
  if (d->base[0] && cli_remove_tree(d->base) != 0)
    fprintf(stderr, "cosmicsync: demo: could not remove %s\n", d->base);
}

int cmd_demo(cli_ctx *ctx, int argc, char **argv) {
  const char *pos[1];
  int n = 0;
  cli_opt opts[] = {{"color", 0, NULL, 0}, {"no-color", 0, NULL, 0}};
  int rc = cli_parse(ctx, argc, argv, opts, 2, pos, &n, 0);
  if (rc != 0)
    return rc;
  demo d;
  memset(&d, 0, sizeof(d));
  d.ctx = ctx;
  d.color = opts[0].seen || (ctx->stdout_tty && !opts[1].seen && !getenv("NO_COLOR"));
  printf("%scosmicsync demo%s: two devices edit one profile offline and converge.\n",
         c_on(&d, BOLD), c_off(&d));

  char id[256] = "", chosen[128] = "";
  size_t pick = 0;
  if (!(rc = setup(&d)) && !(rc = initial_profile(&d)) && !(rc = offline_edits(&d)) &&
      !(rc = sync_round(&d, "phone, laptop, phone: each sends its queue and takes what it "
                            "lacks.")) &&
      !(rc = merged_interests(&d)) && !(rc = show_conflict(&d, id, sizeof(id), &pick, chosen, sizeof(chosen))) &&
      !(rc = resolve(&d, id, pick, chosen)))
    rc = final_state(&d, chosen);
  printf("\n");
  teardown(&d);
  if (rc == 0 && d.failures)
    rc = CLI_EXIT_STATE;
  if (rc == 0)
    printf("%sThe demo ran to the end: all replicas agree.%s\n", c_on(&d, GREEN), c_off(&d));
  else
    printf("%sThe demo stopped: %d check(s) failed%s.%s\n", c_on(&d, RED), d.failures,
           rc && !d.failures ? " and an error occurred (see stderr)" : "", c_off(&d));
  return rc;
}
