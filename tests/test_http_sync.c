/*
 * The engine over real HTTP on 127.0.0.1: topologies, refusals that leave the
 * server unchanged, a server killed mid-sync, and a bounded load test.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/engine.h"
#include "tests/helpers/testutil.h"

static char *dir;
static void setup(void) { dir = tu_tempdir(); }
static void teardown(void) {
  tu_rmrf(dir);
  free(dir);
}
TestSuite(http_sync, .init = setup, .fini = teardown, .timeout = 300);

static const char *const all[] = {"*"};

static cs_server *serve(cs_store *s) {
  cs_server_options o = CS_SERVER_OPTIONS_INIT;
  cs_server *srv;
  o.port = 0;
  cr_assert_eq(cs_server_start(&srv, s, &o), 0, "%s", cs_errmsg());
  return srv;
}

static void trust(cs_store *server, cs_store *client, const char *const *rd, size_t nr,
                  const char *const *wr, size_t nw) {
  char key[65];
  cs_store_public_key(key, client);
  cr_assert_eq(cs_trust(server, key, rd, nr, wr, nw), 0, "%s", cs_errmsg());
}

static cs_peer *http_peer(cs_store *client, cs_server *srv) {
  char url[64];
  cs_peer *p;
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)cs_server_port(srv));
  cr_assert_eq(cs_peer_http(&p, client, url, NULL), 0, "%s", cs_errmsg());
  return p;
}

static void must_sync(cs_store *s, cs_peer *p) {
  int rc = cs_sync(NULL, s, p);
  cr_assert_eq(rc, 0, "sync: %s", cs_errmsg());
}

static void expect_same(cs_store *a, cs_store *b, const char *model, const char *inst) {
  char *x = tu_get(a, model, inst), *y = tu_get(b, model, inst);
  cr_expect_str_eq(x, y, "%s/%s", model, inst);
  free(x);
  free(y);
}

Test(http_sync, hub_and_two_clients_converge) {
  cs_store *hub = tu_open(dir, "hub"), *a = tu_open(dir, "a"), *b = tu_open(dir, "b");
  trust(hub, a, all, 1, all, 1);
  trust(hub, b, all, 1, all, 1);
  cs_server *srv = serve(hub);
  cs_peer *pa = http_peer(a, srv), *pb = http_peer(b, srv);
  tu_act(a, CS_ACTION_CREATE, "UserProfile", "profile_123",
         "{\"city\":\"Berlin\",\"interests\":[\"hiking\",\"climbing\"]}");
  must_sync(a, pa);
  must_sync(b, pb);
  tu_act(a, CS_ACTION_UPDATE, "UserProfile", "profile_123",
         "{\"interests\":{\"$add\":[\"photography\"]},\"city\":\"Lisbon\"}");
  tu_act(b, CS_ACTION_UPDATE, "UserProfile", "profile_123",
         "{\"interests\":{\"$remove\":[\"hiking\"]},\"city\":\"Paris\"}");
  must_sync(a, pa);
  must_sync(b, pb);
  must_sync(a, pa);
  expect_same(a, b, "UserProfile", "profile_123");
  expect_same(a, hub, "UserProfile", "profile_123");
  cr_expect_eq(tu_conflicts(a, NULL), 1);
  cr_expect_eq(tu_conflicts(hub, NULL), 1);
  cs_peer_free(pa);
  cs_peer_free(pb);
  cs_server_stop(srv);
  cs_store_close(hub);
  cs_store_close(a);
  cs_store_close(b);
}

/* Two threads syncing one store through one HTTP peer, as a scheduler's
 * thread and the app's own cs_sync do. */
typedef struct shared_peer_run {
  cs_store *store;
  cs_peer *peer;
  const char *instance;
  int failures;
  char first_error[256];
} shared_peer_run;

static void *sync_many(void *arg) {
  shared_peer_run *r = arg;
  for (int i = 0; i < 20; i++) {
    char json[32];
    snprintf(json, sizeof(json), "{\"n\":%d}", i);
    cs_action act = {i == 0 ? CS_ACTION_CREATE : CS_ACTION_UPDATE, "M", r->instance, json};
    if (cs_queue_offline_action(r->store, &act) != 0 || cs_sync(NULL, r->store, r->peer) != 0) {
      if (r->failures++ == 0)
        snprintf(r->first_error, sizeof(r->first_error), "%s", cs_errmsg());
    }
  }
  return NULL;
}

Test(http_sync, one_peer_shared_by_two_threads) {
  cs_store *hub = tu_open(dir, "hub"), *a = tu_open(dir, "a");
  trust(hub, a, all, 1, all, 1);
  cs_server *srv = serve(hub);
  cs_peer *p = http_peer(a, srv);
  shared_peer_run r1 = {a, p, "one", 0, ""}, r2 = {a, p, "two", 0, ""};
  pthread_t t1, t2;
  cr_assert_eq(pthread_create(&t1, NULL, sync_many, &r1), 0);
  cr_assert_eq(pthread_create(&t2, NULL, sync_many, &r2), 0);
  pthread_join(t1, NULL);
  pthread_join(t2, NULL);
  cr_expect_eq(r1.failures + r2.failures, 0, "%s%s", r1.first_error, r2.first_error);
  must_sync(a, p);
  expect_same(a, hub, "M", "one");
  expect_same(a, hub, "M", "two");
  cs_peer_free(p);
  cs_server_stop(srv);
  cs_store_close(hub);
  cs_store_close(a);
}

Test(http_sync, mesh_of_three_servers_converges) {
  cs_store *s[3];
  cs_server *srv[3];
  char name[8], inst[8], data[64];
  for (int i = 0; i < 3; i++) {
    snprintf(name, sizeof(name), "m%d", i);
    s[i] = tu_open(dir, name);
  }
  for (int i = 0; i < 3; i++) {
    for (int j = 0; j < 3; j++)
      if (i != j)
        trust(s[i], s[j], all, 1, all, 1);
    srv[i] = serve(s[i]);
    snprintf(inst, sizeof(inst), "d%d", i);
    snprintf(data, sizeof(data), "{\"n\":{\"$inc\":%d},\"tags\":[\"t%d\"]}", i + 1, i);
    tu_act(s[i], CS_ACTION_CREATE, "Doc", inst, data);
    tu_act(s[i], CS_ACTION_UPDATE, "Doc", "shared", "{\"n\":{\"$inc\":1}}");
  }
  /* each server syncs with the next, around the ring, twice */
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < 3; i++) {
      cs_peer *p = http_peer(s[i], srv[(i + 1) % 3]);
      must_sync(s[i], p);
      cs_peer_free(p);
    }
  for (int i = 1; i < 3; i++) {
    expect_same(s[0], s[i], "Doc", "shared");
    expect_same(s[0], s[i], "Doc", "d0");
    expect_same(s[0], s[i], "Doc", "d2");
  }
  char *j = tu_get(s[1], "Doc", "shared");
  cr_expect_str_eq(j, "{\"n\":3}", "increments add up across the mesh: %s", j);
  free(j);
  for (int i = 0; i < 3; i++) {
    cs_server_stop(srv[i]);
    cs_store_close(s[i]);
  }
}

Test(http_sync, client_alternating_two_hubs_converges) {
  cs_store *h1 = tu_open(dir, "h1"), *h2 = tu_open(dir, "h2"), *c = tu_open(dir, "c"),
           *d = tu_open(dir, "d");
  trust(h1, c, all, 1, all, 1);
  trust(h2, c, all, 1, all, 1);
  trust(h2, d, all, 1, all, 1);
  cs_server *s1 = serve(h1), *s2 = serve(h2);
  cs_peer *c1 = http_peer(c, s1), *c2 = http_peer(c, s2), *d2 = http_peer(d, s2);
  for (int i = 0; i < 6; i++) {
    char data[64];
    snprintf(data, sizeof(data), "{\"tags\":{\"$add\":[\"c%d\"]},\"n\":{\"$inc\":1}}", i);
    tu_act(c, CS_ACTION_UPDATE, "Doc", "x", data);
    snprintf(data, sizeof(data), "{\"tags\":{\"$add\":[\"d%d\"]},\"n\":{\"$inc\":1}}", i);
    tu_act(d, CS_ACTION_UPDATE, "Doc", "x", data);
    must_sync(c, i % 2 ? c2 : c1);
    must_sync(d, d2);
  }
  must_sync(c, c1);
  must_sync(c, c2);
  must_sync(d, d2);
  must_sync(c, c1);
  expect_same(c, d, "Doc", "x");
  expect_same(c, h1, "Doc", "x");
  expect_same(c, h2, "Doc", "x");
  char *j = tu_get(h1, "Doc", "x");
  cr_expect(strstr(j, "\"n\":12") != NULL, "nothing lost or doubled: %s", j);
  free(j);
  cs_peer_free(c1);
  cs_peer_free(c2);
  cs_peer_free(d2);
  cs_server_stop(s1);
  cs_server_stop(s2);
  cs_store_close(h1);
  cs_store_close(h2);
  cs_store_close(c);
  cs_store_close(d);
}

Test(http_sync, refusals_leave_the_server_unchanged) {
  cs_store *hub = tu_open(dir, "hub"), *ok = tu_open(dir, "ok"), *ro = tu_open(dir, "ro"),
           *stranger = tu_open(dir, "stranger");
  const char *const profiles[] = {"UserProfile"};
  trust(hub, ok, all, 1, all, 1);
  trust(hub, ro, all, 1, profiles, 1); /* may write UserProfile only */
  cs_server *srv = serve(hub);
  cs_peer *pok = http_peer(ok, srv), *pro = http_peer(ro, srv), *pst = http_peer(stranger, srv);
  tu_act(ok, CS_ACTION_CREATE, "UserProfile", "p", "{\"x\":1}");
  must_sync(ok, pok);
  uint64_t before = tu_fingerprint_data(hub);

  /* unknown key */
  tu_act(stranger, CS_ACTION_CREATE, "UserProfile", "evil", "{\"x\":666}");
  cr_expect_eq(cs_sync(NULL, stranger, pst), CS_EAUTH, "%s", cs_errmsg());
  cr_expect(strstr(cs_errmsg(), "unknown key") != NULL, "%s", cs_errmsg());
  cr_expect_eq(tu_fingerprint_data(hub), before, "an unknown key changed the hub");

  /* a key without write permission on a model: the whole batch is refused */
  tu_act(ro, CS_ACTION_CREATE, "UserProfile", "fine", "{\"x\":2}");
  tu_act(ro, CS_ACTION_CREATE, "Secret", "s", "{\"x\":3}");
  int rc = cs_sync(NULL, ro, pro);
  cr_expect_eq(rc, CS_EAUTH, "got %d: %s", rc, cs_errmsg());
  cr_expect(strstr(cs_errmsg(), "may not write model 'Secret'") != NULL, "%s", cs_errmsg());
  cr_expect_eq(tu_fingerprint_data(hub), before, "a refused batch was partly applied");

  /* a clock far ahead: refused, nothing applied */
  ok->clock.last = CS_HLC_MAKE(cs__now_ms() + 3600 * 1000, 0);
  tu_act(ok, CS_ACTION_UPDATE, "UserProfile", "p", "{\"x\":99}");
  rc = cs_sync(NULL, ok, pok);
  cr_expect_eq(rc, CS_ECLOCK, "got %d: %s", rc, cs_errmsg());
  cr_expect(strstr(cs_errmsg(), "ahead") != NULL, "%s", cs_errmsg());
  cr_expect_eq(tu_fingerprint_data(hub), before, "a skewed action changed the hub");

  /* malformed msgpack, correctly signed by a trusted key */
  cs_http_client *raw;
  cs_http_client_options co = CS_HTTP_CLIENT_OPTIONS_INIT;
  char url[64];
  cs_buf resp = CS_BUF_INIT;
  int status = 0;
  static const uint8_t junk[] = {0x01, 0x01, 0xdf, 0x01, 0x00, 0x00, 0x00};
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)cs_server_port(srv));
  cr_assert_eq(cs__http_client_new(&raw, url, &ok->key, &co), 0);
  rc = cs__http_post(&resp, &status, raw, "/v1/sync", junk, sizeof(junk));
  cr_expect_eq(rc, CS_ECORRUPT, "got %d: %s", rc, cs_errmsg());
  cr_expect_eq(status, 400);
  cr_expect_eq(tu_fingerprint_data(hub), before, "malformed input changed the hub");
  cs__http_client_free(raw);
  cs_buf_dispose(&resp);

  cs_peer_free(pok);
  cs_peer_free(pro);
  cs_peer_free(pst);
  cs_server_stop(srv);
  cs_store_close(hub);
  cs_store_close(ok);
  cs_store_close(ro);
  cs_store_close(stranger);
}

/* A hub in a child process, so that it can be killed mid-sync. */
static pid_t spawn_hub(const char *path, const char *client_key, uint16_t *port) {
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    cs_store *h;
    cs_server *srv;
    cs_server_options o = CS_SERVER_OPTIONS_INIT;
    cs_store_options so = CS_STORE_OPTIONS_INIT;
    o.port = 0;
    close(fds[0]);
    if (cs_store_open(&h, path, &so) || cs_trust(h, client_key, all, 1, all, 1) ||
        cs_server_start(&srv, h, &o))
      _exit(3);
    uint16_t p = cs_server_port(srv);
    if (write(fds[1], &p, sizeof(p)) != sizeof(p))
      _exit(4);
    for (;;)
      pause();
  }
  close(fds[1]);
  cr_assert_eq(read(fds[0], port, sizeof(*port)), (ssize_t)sizeof(*port), "hub did not start");
  close(fds[0]);
  return pid;
}

/* A peer that notes when the sync's first exchange begins, so that a kill
 * can wait for it: a kill before it tests nothing. */
typedef struct spy_peer {
  cs_peer base;
  cs_peer *inner;
  volatile sig_atomic_t started;
} spy_peer;

static int spy_exchange(cs_peer *self, cs_buf *resp, const char *path, const uint8_t *req,
                        size_t len) {
  spy_peer *sp = (spy_peer *)self;
  sp->started = 1;
  __sync_synchronize();
  return sp->inner->exchange(sp->inner, resp, path, req, len);
}

struct kill_arg {
  pid_t pid;
  struct timespec ts;
  spy_peer *spy;
};

static void *kill_later(void *arg) {
  struct kill_arg *ka = arg;
  struct timespec tick = {0, 200000};
  /* the first request is on its way (5 s at most) */
  for (int i = 0; i < 25000 && !ka->spy->started; i++) {
    nanosleep(&tick, NULL);
    __sync_synchronize();
  }
  nanosleep(&ka->ts, NULL);
  kill(ka->pid, SIGKILL);
  return NULL;
}

Test(http_sync, server_killed_mid_sync_loses_and_doubles_nothing) {
  cs_store *c = tu_open(dir, "c");
  char key[65], path[512], url[64];
  uint16_t port;
  cs_store_public_key(key, c);
  snprintf(path, sizeof(path), "%s/hub", dir);
  /* many actions, so that the kill lands while the hub is busy; each kill
   * waits for the sync's first request, then a delay that varies; rounds go
   * on until three kills cut a sync short */
  int rounds = 0, mid = 0;
  for (int round = 0; round < 15 && mid < 3; round++, rounds++) {
    cs_batch *b;
    cr_assert_eq(cs_batch_begin(&b, c), 0);
    for (int i = 0; i < 3000; i++) {
      char inst[16];
      snprintf(inst, sizeof(inst), "d%d", i % 300);
      cr_assert_eq(cs_batch_counter_add(b, "Doc", inst, "n", 1), 0);
    }
    cr_assert_eq(cs_batch_commit(b), 0);
    pid_t pid = spawn_hub(path, key, &port);
    cs_peer *p;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)port);
    cr_assert_eq(cs_peer_http(&p, c, url, NULL), 0);
    spy_peer spy = {{CS_PEER_VERSION, spy_exchange, NULL}, p, 0};
    struct kill_arg ka = {pid, {0, (long)((round * 7) % 30) * 1000000L}, &spy};
    pthread_t killer;
    /* kill the hub from another thread while the sync runs */
    pthread_create(&killer, NULL, kill_later, &ka);
    int rc = cs_sync(NULL, c, &spy.base);
    pthread_join(killer, NULL);
    waitpid(pid, NULL, 0);
    cr_expect(rc == 0 || rc == CS_ENETWORK || rc == CS_ETIMEOUT, "round %d: %d %s", round, rc,
              cs_errmsg());
    mid += rc != 0; /* the kill came after the first request began */
    cs_peer_free(p);
  }
  fprintf(stderr, "server_killed_mid_sync: %d of %d kills cut a sync short\n", mid, rounds);
  cr_expect_geq(mid, 1, "no kill cut a sync short in %d rounds", rounds);
  /* a hub that stays up: everything arrives exactly once */
  pid_t pid = spawn_hub(path, key, &port);
  cs_peer *p;
  snprintf(url, sizeof(url), "http://127.0.0.1:%u", (unsigned)port);
  cr_assert_eq(cs_peer_http(&p, c, url, NULL), 0);
  must_sync(c, p);
  cs_peer_free(p);
  kill(pid, SIGTERM);
  waitpid(pid, NULL, 0);
  cs_store *hub = tu_open(dir, "hub");
  for (int d = 0; d < 300; d += 37) {
    char inst[16];
    snprintf(inst, sizeof(inst), "d%d", d);
    char *j = tu_get(hub, "Doc", inst);
    char want[32];
    snprintf(want, sizeof(want), "{\"n\":%d}", 10 * rounds);
    cr_expect_str_eq(j, want, "%s: %d rounds of ten increments: %s", inst, rounds, j);
    free(j);
  }
  size_t pending;
  cr_assert_eq(cs_outbox_count(&pending, c), 0);
  cr_expect_eq(pending, 0);
  cs_store_close(hub);
  cs_store_close(c);
}

/* ---------------------------------------------------------------- load */

typedef struct loader {
  cs_store *store;
  cs_peer *peer;
  int id, syncs, failures;
  double *lat;
  size_t nlat, cap;
  double until;
} loader;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *load_run(void *arg) {
  loader *l = arg;
  char data[64];
  while (now_s() < l->until) {
    snprintf(data, sizeof(data), "{\"n\":{\"$inc\":1},\"last\":%d}", l->id);
    cs_action a = {CS_ACTION_UPDATE, "Load", "counter", data};
    if (cs_queue_offline_action(l->store, &a) != 0)
      l->failures++;
    double t0 = now_s();
    if (cs_sync(NULL, l->store, l->peer) != 0)
      l->failures++;
    else {
      l->syncs++;
      if (l->nlat == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 256;
        l->lat = realloc(l->lat, l->cap * sizeof(double));
      }
      l->lat[l->nlat++] = now_s() - t0;
    }
  }
  return NULL;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

Test(http_sync, many_clients_at_once_end_identical, .timeout = 600) {
  const char *secs_env = getenv("CS_LOAD_SECONDS");
  int n = tu_scale(50), seconds = secs_env ? atoi(secs_env) : tu_scale(30) > 3 ? 10 : 3;
  cs_store *hub = tu_open(dir, "hub");
  loader *ls = calloc((size_t)n, sizeof(loader));
  pthread_t *th = calloc((size_t)n, sizeof(pthread_t));
  cs_server *srv;
  char name[16];
  for (int i = 0; i < n; i++) {
    snprintf(name, sizeof(name), "c%d", i);
    ls[i].store = tu_open(dir, name);
    ls[i].id = i;
    trust(hub, ls[i].store, all, 1, all, 1);
  }
  srv = serve(hub);
  for (int i = 0; i < n; i++)
    ls[i].peer = http_peer(ls[i].store, srv);
  double t0 = now_s();
  for (int i = 0; i < n; i++) {
    ls[i].until = t0 + seconds;
    pthread_create(&th[i], NULL, load_run, &ls[i]);
  }
  int syncs = 0, failures = 0;
  size_t nlat = 0;
  for (int i = 0; i < n; i++) {
    pthread_join(th[i], NULL);
    syncs += ls[i].syncs;
    failures += ls[i].failures;
    nlat += ls[i].nlat;
  }
  double elapsed = now_s() - t0;
  double *lat = malloc((nlat ? nlat : 1) * sizeof(double));
  for (int i = 0, k = 0; i < n; i++)
    for (size_t j = 0; j < ls[i].nlat; j++)
      lat[k++] = ls[i].lat[j];
  qsort(lat, nlat, sizeof(double), cmp_d);
  fprintf(stderr,
          "http_sync load: %d clients, %.1f s, %d syncs (%.0f/s), p50 %.1f ms, p99 %.1f ms, %d "
          "failures\n",
          n, elapsed, syncs, syncs / elapsed, nlat ? lat[nlat / 2] * 1000 : 0,
          nlat ? lat[nlat * 99 / 100] * 1000 : 0, failures);
  cr_expect_eq(failures, 0);
  /* quiesce: every client syncs twice more; then all hold the same state */
  for (int round = 0; round < 2; round++)
    for (int i = 0; i < n; i++)
      must_sync(ls[i].store, ls[i].peer);
  char *want = tu_get(hub, "Load", "counter");
  json_t *j = json_loads(want, 0, NULL);
  int edits = 0;
  for (int i = 0; i < n; i++)
    edits += ls[i].syncs + ls[i].failures; /* every loop iteration queued one increment */
  cr_expect_eq(json_integer_value(json_object_get(j, "n")), edits, "increments: %s", want);
  json_decref(j);
  for (int i = 0; i < n; i++) {
    char *got = tu_get(ls[i].store, "Load", "counter");
    cr_expect_str_eq(got, want, "client %d", i);
    free(got);
  }
  free(want);
  cs_server_stop(srv);
  for (int i = 0; i < n; i++) {
    cs_peer_free(ls[i].peer);
    cs_store_close(ls[i].store);
    free(ls[i].lat);
  }
  cs_store_close(hub);
  free(lat);
  free(ls);
  free(th);
}

/* Trust over real sockets: a key given in upper case is the same key, and
 * a key revoked while the hub runs is refused at its next request. */
Test(http_sync, a_key_is_one_record_whatever_its_case_and_untrust_revokes_it) {
  cs_store *hub = tu_open(dir, "hub"), *c = tu_open(dir, "c");
  char key[65], upper[65];
  cs_store_public_key(key, c);
  for (int i = 0; i < 65; i++)
    upper[i] = (char)(key[i] >= 'a' && key[i] <= 'f' ? key[i] - 32 : key[i]);
  cr_assert_eq(cs_trust(hub, upper, all, 1, all, 1), 0, "%s", cs_errmsg());
  cs_server *srv = serve(hub);
  cs_peer *p = http_peer(c, srv);
  tu_act(c, CS_ACTION_UPDATE, "Note", "n1", "{\"v\":1}");
  must_sync(c, p);
  expect_same(c, hub, "Note", "n1");
  cr_assert_eq(cs_untrust(hub, key), 0, "%s", cs_errmsg());
  tu_act(c, CS_ACTION_UPDATE, "Note", "n1", "{\"v\":2}");
  cr_expect_eq(cs_sync(NULL, c, p), CS_EAUTH);
  cr_expect(strstr(cs_errmsg(), "unknown key") != NULL, "%s", cs_errmsg());
  cr_expect_eq(cs_untrust(hub, upper), CS_ENOTFOUND, "%s", cs_errmsg());
  cr_expect_eq(cs_untrust(hub, "xyz"), CS_EINVAL);
  char *got = tu_get(hub, "Note", "n1");
  cr_expect_str_eq(got, "{\"v\":1}", "a revoked key wrote");
  free(got);
  cs_peer_free(p);
  cs_server_stop(srv);
  cs_store_close(hub);
  cs_store_close(c);
}
