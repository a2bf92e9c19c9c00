/* The scheduler at its edges: delays that do not fit in 64 bits, the
 * backoff cap under jitter, and stopping from the status callback. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "core/engine.h"
#include "tests/helpers/testutil.h"

static char *dir;
static cs_store *a, *b;
static cs_peer *inner;

static void setup(void) {
  dir = tu_tempdir();
  a = tu_open(dir, "a");
  b = tu_open(dir, "b");
  cr_assert_eq(cs_peer_local(&inner, b), 0);
}
static void teardown(void) {
  cs_peer_free(inner);
  cs_store_close(a);
  cs_store_close(b);
  tu_rmrf(dir);
  free(dir);
}

TestSuite(engine_scheduler, .init = setup, .fini = teardown);

/* A peer that fails while `failing` is set, and counts its exchanges. */
typedef struct flaky_peer {
  cs_peer base;
  bool failing;
  int exchanges;
} flaky_peer;

static int flaky_exchange(cs_peer *self, cs_buf *resp, const char *path, const uint8_t *req,
                          size_t len) {
  flaky_peer *fp = (flaky_peer *)self;
  fp->exchanges++;
  if (fp->failing)
    return cs__error(CS_ENETWORK, "simulated network failure");
  return inner->exchange(inner, resp, path, req, len);
}

static flaky_peer flaky(bool failing) {
  flaky_peer fp = {{CS_PEER_VERSION, flaky_exchange, NULL}, failing, 0};
  return fp;
}

static cs_scheduler *scheduler(cs_peer *p, uint64_t interval, uint64_t base, uint64_t max,
                               double jitter) {
  cs_scheduler_options o = CS_SCHEDULER_OPTIONS_INIT;
  cs_scheduler *s;
  o.interval_ms = interval;
  o.backoff_base_ms = base;
  o.backoff_max_ms = max;
  o.jitter = jitter;
  cr_assert_eq(cs_scheduler_new(&s, a, p, &o, NULL, NULL), 0, "%s", cs_errmsg());
  return s;
}

static uint64_t next_attempt(cs_scheduler *s) {
  cs_sync_status st;
  cs_scheduler_status(&st, s);
  return st.next_attempt_ms;
}

Test(engine_scheduler, an_interval_past_the_end_of_time_means_never) {
  flaky_peer fp = flaky(false);
  cs_scheduler *s = scheduler(&fp.base, UINT64_MAX, 100, 1000, 0);
  uint64_t t = cs__mono_ms();
  cr_assert_eq(cs_scheduler_tick(s, t), 0);
  cr_expect_eq(next_attempt(s), UINT64_MAX);
  int before = fp.exchanges;
  for (int i = 1; i <= 5; i++)
    cr_assert_eq(cs_scheduler_tick(s, t + (uint64_t)i), 0);
  cr_expect_eq(fp.exchanges, before, "no sync is due");
  /* Near the end of the clock, an ordinary interval does not wrap either. */
  cs_scheduler_free(s);
  s = scheduler(&fp.base, 60000, 100, 1000, 0);
  cr_assert_eq(cs_scheduler_tick(s, UINT64_MAX - 1000), 0);
  cr_expect_eq(next_attempt(s), UINT64_MAX);
  fp.failing = true;
  cs_scheduler_notify_online(s);
  cr_assert_eq(cs_scheduler_tick(s, UINT64_MAX - 10), CS_ENETWORK);
  cr_expect_eq(next_attempt(s), UINT64_MAX);
  cs_scheduler_free(s);
}

Test(engine_scheduler, the_backoff_never_wraps_to_zero) {
  flaky_peer fp = flaky(true);
  cs_scheduler *s = scheduler(&fp.base, 60000, 3, UINT64_MAX, 0);
  uint64_t t = cs__mono_ms(), prev = 0;
  for (int i = 0; i < 80; i++) {
    cr_assert_eq(cs_scheduler_tick(s, t), CS_ENETWORK);
    uint64_t next = next_attempt(s);
    cr_assert_gt(next, t, "failure %d: retry at once", i + 1);
    if (next == UINT64_MAX)
      break;
    cr_assert_geq(next - t, prev, "failure %d: the delay shrank", i + 1);
    prev = next - t;
    t = next;
  }
  cr_expect_eq(next_attempt(s), UINT64_MAX, "doubling reaches the cap");
  cs_scheduler_free(s);
}

Test(engine_scheduler, jitter_stays_under_the_cap) {
  flaky_peer fp = flaky(true);
  cs_scheduler *s = scheduler(&fp.base, 60000, 1000, 10000, 0.5);
  uint64_t t = cs__mono_ms(), lo = UINT64_MAX, hi = 0;
  for (int i = 0; i < 200; i++) {
    cr_assert_eq(cs_scheduler_tick(s, t), CS_ENETWORK);
    uint64_t d = next_attempt(s) - t;
    if (i >= 10) { /* past the doubling: the cap with jitter */
      lo = d < lo ? d : lo;
      hi = d > hi ? d : hi;
    }
    cr_assert_leq(d, 10000, "failure %d: %llu ms is past the cap", i + 1, (unsigned long long)d);
    cr_assert_geq(d, 1);
    t = next_attempt(s);
  }
  cr_expect_lt(lo, 9000, "jitter spreads the delays (%llu..%llu)", (unsigned long long)lo,
               (unsigned long long)hi);
  cs_scheduler_free(s);
}

Test(engine_scheduler, jitter_that_is_not_a_number_is_refused) {
  cs_scheduler_options o = CS_SCHEDULER_OPTIONS_INIT;
  cs_scheduler *s = NULL;
  o.jitter = NAN;
  cr_expect_eq(cs_scheduler_new(&s, a, inner, &o, NULL, NULL), CS_EINVAL);
  cr_expect_null(s);
  o.jitter = 1.5;
  cr_expect_eq(cs_scheduler_new(&s, a, inner, &o, NULL, NULL), CS_EINVAL);
  o.jitter = -0.1;
  cr_expect_eq(cs_scheduler_new(&s, a, inner, &o, NULL, NULL), CS_EINVAL);
}

Test(engine_scheduler, on_connection_the_status_shows_an_attempt_due_now) {
  flaky_peer fp = flaky(false);
  cs_scheduler *s = scheduler(&fp.base, 3600000, 100, 1000, 0);
  cr_assert_eq(cs_scheduler_tick(s, cs__mono_ms()), 0);
  cr_expect_gt(next_attempt(s), cs__mono_ms() + 3000000);
  cs_scheduler_notify_online(s);
  cr_expect_leq(next_attempt(s), cs__mono_ms());
  cs_scheduler_free(s);
}

/* A status callback that stops its scheduler once a sync succeeded, then
 * takes its time to return. */
typedef struct stopper {
  cs_scheduler *s;
  atomic_int stopped;  /* the callback called stop */
  atomic_int returned; /* ... and returned */
} stopper;

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void stop_on_idle(const cs_sync_status *st, void *payload) {
  stopper *sp = payload;
  if (st->state != CS_SYNC_IDLE || atomic_load(&sp->stopped))
    return;
  cs_scheduler_stop(sp->s); /* on the scheduler's own thread: returns */
  atomic_store(&sp->stopped, 1);
  sleep_ms(200);
  atomic_store(&sp->returned, 1);
}

Test(engine_scheduler, a_stop_from_the_status_callback_is_joined_by_the_next) {
  cs_scheduler_options o = CS_SCHEDULER_OPTIONS_INIT;
  stopper sp = {NULL, 0, 0};
  o.interval_ms = 10;
  cr_assert_eq(cs_scheduler_new(&sp.s, a, inner, &o, stop_on_idle, &sp), 0);
  cr_assert_eq(cs_scheduler_start(sp.s), 0);
  for (int i = 0; i < 1000 && !atomic_load(&sp.stopped); i++)
    sleep_ms(5);
  cr_assert(atomic_load(&sp.stopped), "the callback never ran");
  /* The thread is still in its callback: a stop from here waits for it. */
  cs_scheduler_stop(sp.s);
  cr_expect(atomic_load(&sp.returned), "stop returned while the thread still ran");
  /* It can start again, and stop and free as usual. */
  atomic_store(&sp.stopped, 1);
  cr_expect_eq(cs_scheduler_start(sp.s), 0, "%s", cs_errmsg());
  cs_scheduler_free(sp.s);
}

static void stop_then_free_later(const cs_sync_status *st, void *payload) {
  stopper *sp = payload;
  if (st->state == CS_SYNC_IDLE && !atomic_load(&sp->stopped)) {
    cs_scheduler_stop(sp->s);
    atomic_store(&sp->stopped, 1);
    sleep_ms(100);
  }
}

Test(engine_scheduler, free_after_a_stop_from_the_callback_waits_for_the_thread) {
  cs_scheduler_options o = CS_SCHEDULER_OPTIONS_INIT;
  stopper sp = {NULL, 0, 0};
  o.interval_ms = 10;
  cr_assert_eq(cs_scheduler_new(&sp.s, a, inner, &o, stop_then_free_later, &sp), 0);
  cr_assert_eq(cs_scheduler_start(sp.s), 0);
  for (int i = 0; i < 1000 && !atomic_load(&sp.stopped); i++)
    sleep_ms(5);
  cr_assert(atomic_load(&sp.stopped));
  /* Freed while the thread sleeps in the callback: free must join it (the
   * sanitizer build reports the use after free otherwise). */
  cs_scheduler_free(sp.s);
}
