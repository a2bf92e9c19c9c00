/*
 * The sync scheduler: periodic, on-connection and manual sync with
 * exponential backoff and jitter, in a poll form (cs_scheduler_tick) for apps
 * that own their event loop and a background thread for the others.
 */
#include <stdio.h>
#include <time.h>

#include "core/engine.h"

struct cs_scheduler {
  pthread_mutex_t lock;
  pthread_cond_t wake;   /* on CLOCK_MONOTONIC */
  pthread_cond_t joined; /* the thread was joined */
  pthread_t thread;
  /* running: a thread was started and not joined yet (it may have been
   * asked to stop, from its own status callback, and be ending); joining:
   * a stop is waiting for it. */
  bool running, joining, stop;
  cs_store *store;
  cs_peer *peer;
  cs_scheduler_options opts;
  cs_status_cb cb;
  void *payload;
  cs_sync_status status;
  bool due_now;
  uint64_t rng;
};

static uint64_t next_random(uint64_t *state) {
  /* xorshift64*: jitter needs spread, not secrecy */
  uint64_t x = *state;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* now + d, or UINT64_MAX ("never") when that does not fit. */
static uint64_t time_after(uint64_t now, uint64_t d) {
  return d > UINT64_MAX - now ? UINT64_MAX : now + d;
}

/* The delay before retry n (1-based): base * 2^(n-1) +- jitter, never
 * above the cap and never 0. */
static uint64_t backoff_ms(cs_scheduler *s, unsigned failures) {
  uint64_t max = s->opts.backoff_max_ms, d = s->opts.backoff_base_ms;
  for (unsigned i = 1; i < failures && d < max; i++)
    d = d > max / 2 ? max : d * 2;
  if (d > max)
    d = max;
  if (s->opts.jitter > 0) {
    double r = (double)(next_random(&s->rng) >> 11) / (double)(1ull << 53); /* [0,1) */
    double f = (double)d * (1.0 + s->opts.jitter * (2.0 * r - 1.0));
    d = f >= (double)max ? max : (uint64_t)f;
  }
  return d ? d : 1;
}

int cs_scheduler_new(cs_scheduler **out, cs_store *store, cs_peer *peer,
                     const cs_scheduler_options *opts, cs_status_cb cb, void *payload) {
  cs_scheduler_options defaults = CS_SCHEDULER_OPTIONS_INIT;
  cs_scheduler *s;

  *out = NULL;
  if (!store || !peer)
    return cs__error(CS_EINVAL, "cs_scheduler_new: store and peer are required");
  if (opts && opts->version != CS_SCHEDULER_OPTIONS_VERSION)
    return cs__error(CS_EVERSION, "cs_scheduler_options version %u is not supported",
                     opts->version);
  if (opts && !(opts->jitter >= 0 && opts->jitter <= 1)) /* NaN too */
    return cs__error(CS_EINVAL, "scheduler jitter %.3f is outside 0..1", opts->jitter);
  if ((s = cs__calloc(1, sizeof(*s))) == NULL)
    return CS_ENOMEM;
  s->opts = opts ? *opts : defaults;
  if (s->opts.backoff_base_ms == 0)
    s->opts.backoff_base_ms = 1;
  if (s->opts.backoff_max_ms < s->opts.backoff_base_ms)
    s->opts.backoff_max_ms = s->opts.backoff_base_ms;
  s->store = store;
  s->peer = peer;
  s->cb = cb;
  s->payload = payload;
  s->rng = cs__mono_ms() ^ (uint64_t)(uintptr_t)s ^ 0x9E3779B97F4A7C15ull;
  s->status.state = CS_SYNC_IDLE;
  /* First attempt at once: an app that starts wants its data. */
  s->status.next_attempt_ms = cs__mono_ms();
  pthread_mutex_init(&s->lock, NULL);
  {
    /* Waits are timed on the clock the attempts are planned on: setting
     * the wall clock back does not hold periodic syncs up. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
  }
  pthread_cond_init(&s->joined, NULL);
  *out = s;
  return 0;
}

static void notify(cs_scheduler *s) {
  cs_sync_status copy;
  pthread_mutex_lock(&s->lock);
  copy = s->status;
  pthread_mutex_unlock(&s->lock);
  if (s->cb)
    s->cb(&copy, s->payload);
}

int cs_scheduler_tick(cs_scheduler *s, uint64_t now) {
  size_t pending = 0;
  bool due;
  int rc;

  pthread_mutex_lock(&s->lock);
  due = s->due_now || now >= s->status.next_attempt_ms;
  if (due) {
    s->due_now = false;
    s->status.state = CS_SYNC_SYNCING;
  }
  pthread_mutex_unlock(&s->lock);
  if (!due)
    return 0;
  notify(s);
  rc = cs_sync(NULL, s->store, s->peer); /* the status needs no conflict list */
  cs_outbox_count(&pending, s->store);
  pthread_mutex_lock(&s->lock);
  s->status.pending = pending;
  if (rc == 0) {
    s->status.state = CS_SYNC_IDLE;
    s->status.failures = 0;
    s->status.last_error = 0;
    s->status.last_error_msg[0] = '\0';
    s->status.last_success_ms = cs__now_ms();
    s->status.next_attempt_ms =
        s->opts.interval_ms ? time_after(now, s->opts.interval_ms) : UINT64_MAX;
  } else {
    s->status.failures++;
    s->status.last_error = rc;
    snprintf(s->status.last_error_msg, sizeof(s->status.last_error_msg), "%s", cs_errmsg());
    s->status.state = (rc == CS_ENETWORK || rc == CS_ETIMEOUT) ? CS_SYNC_OFFLINE : CS_SYNC_ERROR;
    s->status.next_attempt_ms = time_after(now, backoff_ms(s, s->status.failures));
  }
  pthread_mutex_unlock(&s->lock);
  notify(s);
  return rc;
}

void cs_scheduler_notify_online(cs_scheduler *s) {
  pthread_mutex_lock(&s->lock);
  s->due_now = true;
  s->status.failures = 0;
  s->status.next_attempt_ms = cs__mono_ms(); /* what the status shows: now */
  pthread_cond_signal(&s->wake);
  pthread_mutex_unlock(&s->lock);
}

void cs_scheduler_status(cs_sync_status *out, cs_scheduler *s) {
  pthread_mutex_lock(&s->lock);
  *out = s->status;
  pthread_mutex_unlock(&s->lock);
}

static void *run(void *arg) {
  cs_scheduler *s = arg;
  pthread_mutex_lock(&s->lock);
  while (!s->stop) {
    uint64_t now = cs__mono_ms();
    if (s->due_now || now >= s->status.next_attempt_ms) {
      pthread_mutex_unlock(&s->lock);
      cs_scheduler_tick(s, now);
      pthread_mutex_lock(&s->lock);
      continue;
    }
    /* Sleep until the next attempt, a notify_online, or stop. */
    uint64_t wait = s->status.next_attempt_ms - now;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (wait > 3600000)
      wait = 3600000;
    ts.tv_sec += (time_t)(wait / 1000);
    ts.tv_nsec += (long)(wait % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&s->wake, &s->lock, &ts);
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

int cs_scheduler_start(cs_scheduler *s) {
  int err;
  pthread_mutex_lock(&s->lock);
  if (s->running && (!s->stop || pthread_equal(s->thread, pthread_self()))) {
    pthread_mutex_unlock(&s->lock);
    return cs__error(CS_ESTATE, s->stop ? "the scheduler's thread cannot restart itself"
                                        : "scheduler is already running");
  }
  if (s->running) {
    /* Stopped from its status callback and not joined yet: join it first. */
    pthread_mutex_unlock(&s->lock);
    cs_scheduler_stop(s);
    pthread_mutex_lock(&s->lock);
    if (s->running) {
      pthread_mutex_unlock(&s->lock);
      return cs__error(CS_ESTATE, "scheduler is already running");
    }
  }
  s->stop = false;
  err = pthread_create(&s->thread, NULL, run, s);
  s->running = err == 0;
  pthread_mutex_unlock(&s->lock);
  return err ? cs__error(CS_EINTERNAL, "cannot start the scheduler thread (error %d)", err) : 0;
}

void cs_scheduler_stop(cs_scheduler *s) {
  pthread_mutex_lock(&s->lock);
  s->stop = true;
  pthread_cond_signal(&s->wake);
  if (s->running && !pthread_equal(s->thread, pthread_self())) {
    if (s->joining) {
      /* Another stop joins it: return once it has. */
      while (s->running)
        pthread_cond_wait(&s->joined, &s->lock);
    } else {
      s->joining = true;
      pthread_mutex_unlock(&s->lock);
      pthread_join(s->thread, NULL);
      pthread_mutex_lock(&s->lock);
      s->running = false;
      s->joining = false;
      pthread_cond_broadcast(&s->joined);
    }
  }
  /* From the status callback, on the scheduler's own thread, the thread
   * ends when the callback returns; the next stop or free joins it. */
  pthread_mutex_unlock(&s->lock);
}

void cs_scheduler_free(cs_scheduler *s) {
  if (!s)
    return;
  cs_scheduler_stop(s);
  pthread_cond_destroy(&s->wake);
  pthread_cond_destroy(&s->joined);
  pthread_mutex_destroy(&s->lock);
  cs__free(s);
}
