/* Time: the monotonic clock every deadline is measured on, and the back-off between
 * attempts at a server that failed. */
#include "internal.h"

#include <stdio.h>
#include <sys/random.h>
#include <time.h>

int64_t rl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t rl_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int rl_fmt_ms(char *buf, size_t n, int64_t ms)
{
    return snprintf(buf, n, "%lld", (long long)ms);
}

/* A per-thread xorshift generator for the jitter: no lock, no system call per draw. */
static uint64_t jitter_random(void)
{
    static _Thread_local uint64_t state;
    if (!state) {
        if (getrandom(&state, sizeof state, GRND_NONBLOCK) != (ssize_t)sizeof state)
            state = (uint64_t)rl_now_us() ^ (uint64_t)(uintptr_t)&state;
        state |= 1;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

int64_t rl_backoff_next(rl_backoff *b, int64_t cap_ms)
{
    if (cap_ms < RL_BACKOFF_MIN_MS)
        cap_ms = RL_BACKOFF_MIN_MS;
    int64_t step = b->step_ms < RL_BACKOFF_MIN_MS ? RL_BACKOFF_MIN_MS : b->step_ms;
    if (step > cap_ms)
        step = cap_ms;
    b->step_ms = step * 2 > cap_ms ? cap_ms : step * 2;
    return step + (int64_t)(jitter_random() % (uint64_t)(step / 2 + 1));
}
