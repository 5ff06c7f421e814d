/* clock.h: the two clocks dagrun reads, in milliseconds.
 *
 * Wall-clock times (when an attempt started or ended, an event's
 * timestamp, a lease's heartbeat) are CLOCK_REALTIME; durations and
 * deadlines are CLOCK_MONOTONIC, which never jumps. On the event loop,
 * uv_now() (cached per loop turn) serves for timers instead.
 */
#ifndef DAGRUN_UTIL_CLOCK_H
#define DAGRUN_UTIL_CLOCK_H

#include <stdint.h>

/* CLOCK_REALTIME in ms since the epoch. */
uint64_t clock_wall_ms(void);

/* CLOCK_MONOTONIC in ms (from an arbitrary origin): for durations. */
uint64_t clock_mono_ms(void);

#endif
