/* clock.h — the monotonic clock, for intervals and deadlines (never for dates), shared by
 * every layer. */
#ifndef STOWAGE_CLOCK_H
#define STOWAGE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t st_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
