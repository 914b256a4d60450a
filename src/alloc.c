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

/* ---- hiredis's reply objects ----
 * hiredis allocates them with its own malloc; the reader's object functions are wrapped
 * so that a test can fail the nth one, as a failed malloc inside hiredis would. */

static atomic_long reply_count;
static atomic_long reply_fail_at; /* 0: never */
static const redisReplyObjectFunctions *_Atomic hiredis_fn;

long rl_reply_fail_at(long nth)
{
    long counted = atomic_exchange(&reply_count, 0);
    atomic_store(&reply_fail_at, nth);
    return counted;
}

static bool reply_fails(void)
{
    long n = atomic_fetch_add(&reply_count, 1) + 1;
    long at = atomic_load(&reply_fail_at);
    return at > 0 && n == at;
}

static void *reply_string(const redisReadTask *t, char *s, size_t n)
{
    return reply_fails() ? NULL : atomic_load(&hiredis_fn)->createString(t, s, n);
}

static void *reply_array(const redisReadTask *t, int n)
{
    return reply_fails() ? NULL : atomic_load(&hiredis_fn)->createArray(t, n);
}

static void *reply_integer(const redisReadTask *t, long long v)
{
    return reply_fails() ? NULL : atomic_load(&hiredis_fn)->createInteger(t, v);
}

static void *reply_nil(const redisReadTask *t)
{
    return reply_fails() ? NULL : atomic_load(&hiredis_fn)->createNil(t);
}

static void reply_free(void *r)
{
    atomic_load(&hiredis_fn)->freeObject(r);
}

static redisReplyObjectFunctions hooked_fn = {reply_string, reply_array, reply_integer,
                                              reply_nil, reply_free};

redisReader *rl_reader_create(void)
{
    redisReader *r = redisReaderCreate();
    if (!r)
        return NULL;
    /* hiredis's defaults, the same table for every reader */
    atomic_store(&hiredis_fn, r->fn);
    r->fn = &hooked_fn;
    return r;
}
