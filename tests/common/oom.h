/* oom.h: failing libdagrun's allocations one at a time (curl's torture
 * idea), for the OOM tests of each module.
 *
 * A test program links tests/common/oom.c with the link arguments
 * oom_link_args (tests/meson.build: -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc), which reroute the calls made by libdagrun's objects (not
 * libc's or other libraries' own) through oom.c's wrappers. The counter is
 * global (malloc has no context), so these tests are single-threaded while
 * counting.
 */
#ifndef DAGRUN_TESTS_COMMON_OOM_H
#define DAGRUN_TESTS_COMMON_OOM_H

/* From now on, counts allocations from 0 and fails allocation number k
 * (counting from 0); k < 0: fails none, only counts. */
void oom_start(long k);

/* Stops counting and failing; returns the allocations made since
 * oom_start. */
long oom_stop(void);

#endif
