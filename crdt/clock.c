/* Hybrid logical clock: 48-bit wall milliseconds and a 16-bit counter. */
#include "crdt/crdt.h"

/*
 * Stamps pack as ms << 16 | counter, so "the same millisecond, counter + 1"
 * is plain `+ 1`, and a full counter carries into the millisecond part, which
 * is the overflow rule the header promises.
 */
cs_hlc cs__clock_tick(cs_clock *clock, uint64_t now_ms) {
  if (now_ms > CS_HLC_MS(clock->last))
    clock->last = CS_HLC_MAKE(now_ms, 0);
  else
    clock->last += 1;
  return clock->last;
}

int cs__clock_observe(cs_clock *clock, cs_hlc remote, uint64_t now_ms) {
  uint64_t rms = CS_HLC_MS(remote);
  cs_hlc top;

  if (rms > now_ms && rms - now_ms > clock->max_skew_ms)
    return cs__error(CS_ECLOCK, "remote clock stamp is %llu ms ahead of local time (limit %llu ms)",
                     (unsigned long long)(rms - now_ms), (unsigned long long)clock->max_skew_ms);
  /* Receive rule: the new stamp is above both the local and the remote one;
   * when wall time has moved past both it restarts the counter. */
  top = clock->last > remote ? clock->last : remote;
  if (now_ms > CS_HLC_MS(top))
    clock->last = CS_HLC_MAKE(now_ms, 0);
  else
    clock->last = top + 1;
  return 0;
}
