/* A caller built against the 1.0 header (redis_lock_1_0.h, verbatim from release 1.0)
 * runs against today's shared library: it fills version 1 of the client, lock and cache
 * options and takes a lock and a cached value on a real server. Each options struct lies
 * at the very end of a page followed by an inaccessible one, so a library that wrote or
 * read past a version 1 struct (sizeof of a grown struct) would crash here. */
#include "redis_lock_1_0.h" /* first: its include guard keeps harness.h from including today's */
#include "harness.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

_Static_assert(REDIS_LOCK_VERSION_MAJOR == 1 && REDIS_LOCK_VERSION_MINOR == 0,
               "this test must be built against the 1.0 header");
_Static_assert(REDIS_LOCK_CLIENT_OPTIONS_VERSION == 1 && REDIS_LOCK_OPTIONS_VERSION == 1 &&
                   REDIS_LOCK_CACHE_OPTIONS_VERSION == 1,
               "the 1.0 header has version 1 of every options struct");

/* size bytes that end where an inaccessible page begins; filled with junk so that only
 * what _init writes is there */
static void *at_page_end(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *m = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    assert_int_equal(mprotect(m + page, page, PROT_NONE), 0);
    memset(m, 0xa5, page);
    return m + page - size;
}

static void page_free(void *p)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    munmap((void *)((uintptr_t)p & ~(uintptr_t)(page - 1)), 2 * page);
}

static redis_lock_client *open_v1_client(void)
{
    redis_lock_client_options *co = at_page_end(sizeof *co);
    redis_lock_client_options_init(co);
    assert_int_equal(co->version, 1);
    assert_int_equal(co->connect_timeout_ms, 2000);
    assert_int_equal(co->command_timeout_ms, 2000);
    assert_null(co->url);
    assert_null(co->log);
    co->url = rt_main.url;
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, co));
    page_free(co);
    return c;
}

static void lock_round_trip(void **state)
{
    (void)state;
    redis_lock_client *c = open_v1_client();
    redis_lock_options *lo = at_page_end(sizeof *lo);
    redis_lock_options_init(lo);
    assert_int_equal(lo->version, 1);
    assert_int_equal(lo->expire_ms, 0);
    assert_int_equal(lo->signal_expire_ms, 1000);
    assert_false(lo->auto_renewal);
    lo->expire_ms = 10000;
    lo->auto_renewal = true;
    lo->fencing = true;
    lo->id = "v1-caller";
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "abi:v1", lo));
    page_free(lo);

    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    redisReply *r = rt_cmd(&rt_main, "GET lock:abi:v1");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "v1-caller");
    freeReplyObject(r);
    assert_true(redis_lock_fencing_token(l) > 0);
    int64_t ttl = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(l, &ttl));
    assert_true(ttl > 0 && ttl <= 10000);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:abi:v1"), 0);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static int make_calls;

static int make(void *payload, char **value, size_t *len)
{
    make_calls++;
    *value = strdup((const char *)payload);
    *len = strlen(*value);
    return *value ? 0 : 1;
}

static void cache_round_trip(void **state)
{
    (void)state;
    redis_lock_client *c = open_v1_client();
    redis_lock_cache_options *o = at_page_end(sizeof *o);
    redis_lock_cache_options_init(o);
    assert_int_equal(o->version, 1);
    assert_int_equal(o->timeout_ms, -1);
    assert_false(o->refresh);
    assert_int_equal(o->lock.version, 1);
    assert_int_equal(o->lock.expire_ms, 30000);
    assert_true(o->lock.auto_renewal);
    o->ttl_ms = 10000;
    o->timeout_ms = 5000;

    make_calls = 0;
    char *v = NULL;
    size_t n = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_get_or_set(c, "abi:v1:key", o, make,
                                                         "computed once", &v, &n));
    assert_string_equal(v, "computed once");
    free(v);
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_get_or_set(c, "abi:v1:key", o, make,
                                                         "not again", &v, &n));
    assert_string_equal(v, "computed once");
    assert_int_equal(n, strlen("computed once"));
    free(v);
    assert_int_equal(make_calls, 1);
    redisReply *r = rt_cmd(&rt_main, "GET abi:v1:key");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "computed once");
    freeReplyObject(r);
    /* the cache's lock was given back */
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:get_or_set:abi:v1:key"), 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_delete(c, "abi:v1:key"));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS abi:v1:key"), 0);
    page_free(o);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(lock_round_trip, rt_flush),
        cmocka_unit_test_setup(cache_round_trip, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
