/* The one allocation wrapper: a test can make the Nth allocation fail and walk every N. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static atomic_long alloc_count;
static atomic_long alloc_fail_at; /* 0: never */

long rl_alloc_fail_at(long nth)
{
    long counted = atomic_exchange(&alloc_count, 0);
    atomic_store(&alloc_fail_at, nth);
    return counted;
}

static bool should_fail(void)
{
    long n = atomic_fetch_add(&alloc_count, 1) + 1;
    long at = atomic_load(&alloc_fail_at);
    return at > 0 && n == at;
}

void *rl_malloc(size_t n)
{
    return should_fail() ? NULL : malloc(n ? n : 1);
}

void *rl_calloc(size_t count, size_t n)
{
    return should_fail() ? NULL : calloc(count ? count : 1, n ? n : 1);
}

void *rl_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : realloc(p, n ? n : 1);
}

char *rl_memdup(const void *p, size_t n)
{
    char *s = rl_malloc(n + 1);
    if (s) {
        if (n)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

char *rl_strdup(const char *s)
{
    return rl_memdup(s, strlen(s));
}
