/* labels: threaded */
/* The lock's basic contract: acquire, release, extend, queries, the error table. */
#include "harness.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void acquire_release(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *a = rt_new_lock(c, "basic", 0), *b = rt_new_lock(c, "basic", 0);
    assert_int_equal(strlen(redis_lock_id(a)), 24);
    assert_string_not_equal(redis_lock_id(a), redis_lock_id(b));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(b, 0));
    assert_rl(REDIS_LOCK_EALREADY, redis_lock_acquire(a, 0));
    rt_assert_owner(b, redis_lock_id(a));
    redisReply *r = rt_cmd(&rt_main, "GET lock:basic");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, redis_lock_id(a));
    freeReplyObject(r);
    bool locked = false;
    assert_rl(REDIS_LOCK_OK, redis_lock_locked(b, &locked));
    assert_true(locked);
    int64_t ttl = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(b, &ttl));
    assert_int_equal(ttl, -1);
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(b));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(a));
    assert_rl(REDIS_LOCK_OK, redis_lock_locked(b, &locked));
    assert_false(locked);
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(b, &ttl));
    assert_int_equal(ttl, -2);
    char sentinel = 0, *owner = &sentinel; /* the call must set it to NULL */
    assert_rl(REDIS_LOCK_OK, redis_lock_get_owner_id(b, &owner));
    assert_null(owner);
    /* the release left one signal behind for a waiter, with the signal expiry */
    assert_int_equal(rt_cmd_int(&rt_main, "LLEN lock-signal:basic"), 1);
    long long pttl = rt_cmd_int(&rt_main, "PTTL lock-signal:basic");
    assert_true(pttl > 0 && pttl <= 1000);
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(a));
    redis_lock_free(a);
    redis_lock_free(b);
    redis_lock_client_close(c);
}

typedef struct {
    redis_lock_client *c;
    int64_t waited_ms;
    int rc;
} waiter_arg;

static void *waiter(void *p)
{
    waiter_arg *w = p;
    redis_lock *l = rt_new_lock(w->c, "handoff", 0);
    int64_t t0 = rt_now_ms();
    w->rc = redis_lock_acquire(l, 5000);
    w->waited_ms = rt_now_ms() - t0;
    if (w->rc == 0)
        redis_lock_release(l);
    redis_lock_free(l);
    return NULL;
}

static void release_wakes_waiter(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *a = rt_new_lock(c, "handoff", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    waiter_arg w = {c, 0, -100};
    pthread_t t;
    pthread_create(&t, NULL, waiter, &w);
    rt_sleep_ms(300);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(a));
    pthread_join(t, NULL);
    assert_rl(REDIS_LOCK_OK, w.rc);
    assert_true(w.waited_ms >= 250 && w.waited_ms < 2000);
    redis_lock_free(a);
    redis_lock_client_close(c);
}

static void timeout_returns_busy(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *a = rt_new_lock(c, "to", 0), *b = rt_new_lock(c, "to", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(b, 300));
    int64_t took = rt_now_ms() - t0;
    assert_true(took >= 300 && took < 2000);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(a));
    redis_lock_free(a);
    redis_lock_free(b);
    redis_lock_client_close(c);
}

static void expired_holder_taken_over(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *a = rt_new_lock(c, "exp", 400), *b = rt_new_lock(c, "exp", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    int64_t t0 = rt_now_ms();
    /* a never releases: b must get it right after the key expires, not a period later */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(b, 3000));
    int64_t took = rt_now_ms() - t0;
    assert_true(took >= 300 && took < 1500);
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(a));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(b));
    redis_lock_free(a);
    redis_lock_free(b);
    redis_lock_client_close(c);
}

static void extend_and_errors(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *a = rt_new_lock(c, "ext", 1000), *n = rt_new_lock(c, "noexp", 0);
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_extend(a, 5000));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(a, 5000));
    int64_t ttl;
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(a, &ttl));
    assert_true(ttl > 4000 && ttl <= 5000);
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(a, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(a, &ttl));
    assert_true(ttl > 500 && ttl <= 1000);
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_extend(a, -5));
    assert_rl(REDIS_LOCK_ETOOLONG, redis_lock_acquire(n == NULL ? a : a, 5000));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(n, 0));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_extend(n, 0));
    assert_rl(REDIS_LOCK_ENOEXPIRE, redis_lock_extend(n, 1000));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(n));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(a));
    redis_lock_free(a);
    redis_lock_free(n);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(acquire_release, rt_flush),
        cmocka_unit_test_setup(release_wakes_waiter, rt_flush),
        cmocka_unit_test_setup(timeout_returns_busy, rt_flush),
        cmocka_unit_test_setup(expired_holder_taken_over, rt_flush),
        cmocka_unit_test_setup(extend_and_errors, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
