/* runid.c: run ids; see runid.h. The time part is formatted by hand from
 * CLOCK_REALTIME (gmtime_r), the random part read with getrandom(2) in
 * non-blocking mode, so making an id never waits for entropy. */
#include "util/runid.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* splitmix64's finaliser: spreads every input bit over the output. */
static uint64_t mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

#define RANDOM_BYTES 6
#define RANDOM_MASK ((1ull << (8 * RANDOM_BYTES)) - 1)

/* 48 random bits: the kernel's, or (never blocking) a local mix. */
static uint64_t random48(void)
{
	unsigned char b[RANDOM_BYTES];
	ssize_t n;
	do
		n = getrandom(b, sizeof(b), GRND_NONBLOCK);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(b)) {
		uint64_t v = 0;
		for (size_t i = 0; i < sizeof(b); i++)
			v = v << 8 | b[i];
		return v;
	}
	static _Atomic uint64_t counter;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	uint64_t z = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	z = mix(z ^ ((uint64_t)getpid() << 32));
	z = mix(z ^ (uint64_t)pthread_self() ^ counter++);
	return z & RANDOM_MASK;
}

int runid_make(char out[static RUNID_LEN + 1], uint64_t now_ms)
{
	struct tm tm;
	time_t sec = (time_t)(now_ms / 1000);
	if (!gmtime_r(&sec, &tm))
		return -EOVERFLOW;
	int n = snprintf(out, RUNID_LEN + 1, "%04d%02d%02d-%02d%02d%02d.%03u-%012llx",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
			 tm.tm_min, tm.tm_sec, (unsigned)(now_ms % 1000),
			 (unsigned long long)random48());
	/* Years past 9999 would not fit (and would not sort): refuse them. */
	return n == RUNID_LEN ? 0 : -EOVERFLOW;
}

int runid_new(char out[static RUNID_LEN + 1])
{
	struct timespec ts;
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return -errno;
	return runid_make(out, (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}
