/* labels: threaded */
/* reset and reset_all: every lock:* key goes, a signal wakes its waiters, nothing else
 * is touched; SCAN over a large keyspace. */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long long count_keys(const char *pattern)
{
    redisReply *r = rt_cmd(&rt_main, "KEYS %s", pattern);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    long long n = (long long)r->elements;
    freeReplyObject(r);
    return n;
}

/* Create n locks the way another client would, pipelined on one raw connection. */
static void make_locks(int n, const char *prefix)
{
    redisContext *ctx = rt_raw(&rt_main);
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s%d", prefix, i);
        redisAppendCommand(ctx, "SET %s owner-%d", key, i);
    }
    for (int i = 0; i < n; i++) {
        void *reply = NULL;
        assert_int_equal(redisGetReply(ctx, &reply), REDIS_OK);
        assert_int_equal(((redisReply *)reply)->type, REDIS_REPLY_STATUS);
        freeReplyObject(reply);
    }
    redisFree(ctx);
}

static void reset_all_10000(void **state)
{
    (void)state;
    enum { N = 10000 };
    make_locks(N, "lock:bulk-");
    /* bystanders that are not locks */
    redisReply *r = rt_cmd(&rt_main, "MSET lockbystander 1 lock-fence:bulk-1 7 other:lock:x 1");
    freeReplyObject(r);
    assert_int_equal(count_keys("lock:*"), N);
    redis_lock_client *c = rt_client(&rt_main);
    size_t count = 0;
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_reset_all(c, &count));
    print_message("reset_all of %d locks took %lld ms\n", N, (long long)(rt_now_ms() - t0));
    assert_int_equal(count, N);
    assert_int_equal(count_keys("lock:*"), 0);
    /* each reset pushed one signal, with an expiry */
    assert_int_equal(count_keys("lock-signal:*"), N);
    assert_int_equal(rt_cmd_int(&rt_main, "LLEN lock-signal:bulk-4321"), 1);
    long long pttl = rt_cmd_int(&rt_main, "PTTL lock-signal:bulk-4321");
    assert_true(pttl > 0 && pttl <= 1000);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lockbystander lock-fence:bulk-1 other:lock:x"),
                     3);
    /* the next one finds nothing; out_count may be NULL */
    assert_rl(REDIS_LOCK_OK, redis_lock_reset_all(c, &count));
    assert_int_equal(count, 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_reset_all(c, NULL));
    /* the SCAN did not block the server: commands interleave (smoke check: PING works) */
    r = rt_cmd(&rt_main, "PING");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    redis_lock_client_close(c);
}

static long long cmdstat(const char *cmd)
{
    redisReply *r = rt_cmd(&rt_main, "INFO commandstats");
    char field[64];
    snprintf(field, sizeof field, "cmdstat_%s:calls=", cmd);
    const char *p = strstr(r->str, field);
    long long v = p ? strtoll(p + strlen(field), NULL, 10) : 0;
    freeReplyObject(r);
    return v;
}

static void reset_all_scans_not_keys(void **state)
{
    (void)state;
    make_locks(3000, "lock:scan-");
    redisReply *r = rt_cmd(&rt_main, "CONFIG RESETSTAT");
    freeReplyObject(r);
    redis_lock_client *c = rt_client(&rt_main);
    size_t count = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_reset_all(c, &count));
    assert_int_equal(count, 3000);
    assert_int_equal(cmdstat("keys"), 0);
    assert_true(cmdstat("scan") >= 2); /* in batches */
    redis_lock_client_close(c);
}

static void signal_expiry_option(void **state)
{
    (void)state;
    /* release and reset leave the signal with the handle's signal_expire_ms */
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.signal_expire_ms = 5000;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "sigexp", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    long long pttl = rt_cmd_int(&rt_main, "PTTL lock-signal:sigexp");
    assert_true(pttl > 4000 && pttl <= 5000);
    redisReply *r = rt_cmd(&rt_main, "DEL lock-signal:sigexp");
    freeReplyObject(r);
    o.signal_expire_ms = 150;
    redis_lock *s = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&s, c, "sigexp", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(s));
    pttl = rt_cmd_int(&rt_main, "PTTL lock-signal:sigexp");
    assert_true(pttl > 0 && pttl <= 150);
    rt_sleep_ms(300);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock-signal:sigexp"), 0);
    redis_lock_free(l);
    redis_lock_free(s);
    redis_lock_client_close(c);
}

static void reset_all_our_own_locks(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    enum { N = 20 };
    redis_lock *locks[N];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, i % 2 ? "own:%d" : "own %d", i);
        locks[i] = rt_new_lock(c, name, i % 3 ? 60000 : 0);
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(locks[i], 0));
    }
    size_t count = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_reset_all(c, &count));
    assert_int_equal(count, N);
    for (int i = 0; i < N; i++) {
        bool locked = true;
        assert_rl(REDIS_LOCK_OK, redis_lock_locked(locks[i], &locked));
        assert_false(locked);
        assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(locks[i]));
        redis_lock_free(locks[i]);
    }
    redis_lock_client_close(c);
}

typedef struct {
    redis_lock *lock;
    int rc;
    int64_t took_ms;
} acq_arg;

static void *acq_thread(void *p)
{
    acq_arg *a = p;
    int64_t t0 = rt_now_ms();
    a->rc = redis_lock_acquire(a->lock, 10000);
    a->took_ms = rt_now_ms() - t0;
    return NULL;
}

static void reset_all_wakes_waiters(void **state)
{
    (void)state;
    enum { N = 4 };
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *h[N], *w[N];
    acq_arg a[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "wk%d", i);
        h[i] = rt_new_lock(c, name, 0);
        w[i] = rt_new_lock(c, name, 0);
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h[i], 0));
        a[i] = (acq_arg){w[i], -100, 0};
        assert_int_equal(pthread_create(&t[i], NULL, acq_thread, &a[i]), 0);
    }
    rt_sleep_ms(300);
    size_t count = 0;
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_reset_all(c, &count));
    assert_int_equal(count, N);
    for (int i = 0; i < N; i++)
        pthread_join(t[i], NULL);
    int64_t took = rt_now_ms() - t0;
    for (int i = 0; i < N; i++) {
        assert_rl(REDIS_LOCK_OK, a[i].rc);
        assert_rl(REDIS_LOCK_OK, redis_lock_release(w[i]));
        redis_lock_free(h[i]);
        redis_lock_free(w[i]);
    }
    assert_true(took < 1500); /* woken by the signals, not their 10 s timeouts */
    redis_lock_client_close(c);
}

static void reset_single_lock_wakes_one(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *h = rt_new_lock(c, "one", 0), *other = rt_new_lock(c, "two", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(other, 0));
    redis_lock *x = rt_new_lock(c, "one", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(x));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:one"), 0);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:two"), 1);
    assert_int_equal(rt_cmd_int(&rt_main, "LLEN lock-signal:one"), 1);
    long long pttl = rt_cmd_int(&rt_main, "PTTL lock-signal:one");
    assert_true(pttl > 0 && pttl <= 1000);
    /* reset deletes the signal list first: repeated resets leave one signal */
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(x));
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(x));
    assert_int_equal(rt_cmd_int(&rt_main, "LLEN lock-signal:one"), 1);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(other));
    redis_lock_free(h);
    redis_lock_free(other);
    redis_lock_free(x);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(reset_all_10000, rt_flush),
        cmocka_unit_test_setup(reset_all_scans_not_keys, rt_flush),
        cmocka_unit_test_setup(signal_expiry_option, rt_flush),
        cmocka_unit_test_setup(reset_all_our_own_locks, rt_flush),
        cmocka_unit_test_setup(reset_all_wakes_waiters, rt_flush),
        cmocka_unit_test_setup(reset_single_lock_wakes_one, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
