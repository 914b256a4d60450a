/* labels: threaded */
/* The dogpile-safe cache within one process: TTL, failing make, refresh, waiting for
 * another thread's computation, big binary values, validation, cancel tokens. The
 * many-process stampede is test_cache_stampede.c. */
#include "harness.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    atomic_int calls;
    atomic_int inside;
    atomic_int overlap;
    const char *value; /* NULL: fail */
    size_t len;        /* 0: strlen(value) */
    int fail_code;
    int sleep_ms;
} maker;

static int make(void *payload, char **value, size_t *len)
{
    maker *m = payload;
    atomic_fetch_add(&m->calls, 1);
    if (atomic_fetch_add(&m->inside, 1) != 0)
        atomic_store(&m->overlap, 1);
    if (m->sleep_ms)
        rt_sleep_ms(m->sleep_ms);
    atomic_fetch_sub(&m->inside, 1);
    if (!m->value) {
        *value = strdup("partial output that must not be stored"); /* the library frees it */
        *len = strlen(*value);
        return m->fail_code ? m->fail_code : 1;
    }
    size_t n = m->len ? m->len : strlen(m->value);
    *value = malloc(n ? n : 1);
    if (!*value)
        return 1;
    memcpy(*value, m->value, n);
    *len = n;
    return 0;
}

static redis_lock_cache_options cache_opts(int64_t ttl_ms)
{
    redis_lock_cache_options o;
    redis_lock_cache_options_init(&o);
    o.ttl_ms = ttl_ms;
    return o;
}

static void expect_cached(redis_lock_client *c, const char *key,
                         const redis_lock_cache_options *o, maker *m, const char *expected)
{
    char *v = NULL;
    size_t n = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_get_or_set(c, key, o, make, m, &v, &n));
    assert_non_null(v);
    assert_int_equal(n, strlen(expected));
    assert_memory_equal(v, expected, n);
    assert_int_equal(v[n], '\0');
    free(v);
}

static void cache_defaults(void **state)
{
    (void)state;
    redis_lock_cache_options o;
    redis_lock_cache_options_init(&o);
    assert_int_equal(o.version, REDIS_LOCK_CACHE_OPTIONS_VERSION);
    assert_int_equal(o.timeout_ms, -1);
    assert_int_equal(o.ttl_ms, 0);
    assert_false(o.refresh);
    assert_int_equal(o.lock.version, REDIS_LOCK_OPTIONS_VERSION);
    assert_true(o.lock.expire_ms > 0);
    assert_true(o.lock.auto_renewal);
}

static void cache_miss_then_hit_ttl(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    maker m = {0, 0, 0, "value-1", 0, 0, 0};
    redis_lock_cache_options o = cache_opts(5000);
    expect_cached(c, "k1", &o, &m, "value-1");
    assert_int_equal(atomic_load(&m.calls), 1);
    long long pttl = rt_cmd_int(&rt_main, "PTTL k1");
    assert_true(pttl > 4000 && pttl <= 5000);
    redisReply *r = rt_cmd(&rt_main, "GET k1");
    assert_string_equal(r->str, "value-1");
    freeReplyObject(r);
    /* the lock was released */
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:get_or_set:k1"), 0);
    /* a hit does not compute, nor take the lock */
    m.value = "value-2";
    expect_cached(c, "k1", &o, &m, "value-1");
    assert_int_equal(atomic_load(&m.calls), 1);
    /* a short TTL runs out: computed again */
    redis_lock_cache_options s = cache_opts(200);
    expect_cached(c, "k2", &s, &m, "value-2");
    pttl = rt_cmd_int(&rt_main, "PTTL k2");
    assert_true(pttl > 0 && pttl <= 200);
    rt_sleep_ms(350);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS k2"), 0);
    m.value = "value-3";
    expect_cached(c, "k2", &s, &m, "value-3");
    assert_int_equal(atomic_load(&m.calls), 3);
    redis_lock_client_close(c);
}

static void cache_make_fails(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    maker bad = {0, 0, 0, NULL, 0, 42, 0};
    redis_lock_cache_options o = cache_opts(5000);
    char *v = (char *)"untouched";
    size_t n = 99;
    assert_rl(REDIS_LOCK_EUSER, redis_lock_cache_get_or_set(c, "kf", &o, make, &bad, &v, &n));
    assert_null(v);
    assert_int_equal(n, 0);
    assert_int_equal(atomic_load(&bad.calls), 1);
    /* nothing stored, the lock released */
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS kf lock:get_or_set:kf"), 0);
    /* the next caller computes */
    maker good = {0, 0, 0, "good", 0, 0, 0};
    int64_t t0 = rt_now_ms();
    expect_cached(c, "kf", &o, &good, "good");
    assert_true(rt_now_ms() - t0 < 1000);
    assert_int_equal(atomic_load(&good.calls), 1);
    /* a failing refresh leaves the cached value alone */
    o.refresh = true;
    assert_rl(REDIS_LOCK_EUSER, redis_lock_cache_get_or_set(c, "kf", &o, make, &bad, &v, &n));
    redisReply *r = rt_cmd(&rt_main, "GET kf");
    assert_string_equal(r->str, "good");
    freeReplyObject(r);
    redis_lock_client_close(c);
}

static void cache_failure_detail_kept(void **state)
{
    (void)state;
    /* docs/design.md: redis_lock_last_error() gives the detail of this thread's last failure.
     * The cache releases its lock after make failed; that must not wipe the detail. */
    redis_lock_client *c = rt_client(&rt_main);
    maker bad = {0, 0, 0, NULL, 0, 42, 0};
    redis_lock_cache_options o = cache_opts(5000);
    char *v = NULL;
    size_t n = 0;
    assert_rl(REDIS_LOCK_EUSER, redis_lock_cache_get_or_set(c, "kd", &o, make, &bad, &v, &n));
    const char *e = redis_lock_last_error();
    if (!strstr(e, "42") || !strstr(e, "kd"))
        fail_msg("REDIS_LOCK_EUSER, but the last error says \"%s\"", e);
    redis_lock_client_close(c);
}

static void cache_refresh_recomputes(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    maker m = {0, 0, 0, "old", 0, 0, 0};
    redis_lock_cache_options o = cache_opts(5000);
    expect_cached(c, "kr", &o, &m, "old");
    m.value = "new";
    redis_lock_cache_options r = cache_opts(9000);
    r.refresh = true;
    expect_cached(c, "kr", &r, &m, "new");
    assert_int_equal(atomic_load(&m.calls), 2);
    redisReply *g = rt_cmd(&rt_main, "GET kr");
    assert_string_equal(g->str, "new");
    freeReplyObject(g);
    assert_true(rt_cmd_int(&rt_main, "PTTL kr") > 8000); /* the new TTL */
    /* and a refresh of a missing key computes as well */
    m.value = "fresh";
    expect_cached(c, "kr-missing", &r, &m, "fresh");
    assert_int_equal(atomic_load(&m.calls), 3);
    redis_lock_client_close(c);
}

typedef struct {
    redis_lock_client *c;
    const char *key;
    redis_lock_cache_options o;
    maker *m;
    int rc;
    char *v;
    size_t n;
    int64_t took_ms;
} call_arg;

static void *call_thread(void *p)
{
    call_arg *a = p;
    int64_t t0 = rt_now_ms();
    a->rc = redis_lock_cache_get_or_set(a->c, a->key, &a->o, make, a->m, &a->v, &a->n);
    a->took_ms = rt_now_ms() - t0;
    return NULL;
}

static void cache_concurrent_refresh_one_after_another(void **state)
{
    (void)state;
    enum { N = 4 };
    redis_lock_client *c = rt_client(&rt_main);
    maker m = {0, 0, 0, "r", 0, 0, 150};
    call_arg a[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        a[i] = (call_arg){c, "kc", cache_opts(5000), &m, -100, NULL, 0, 0};
        a[i].o.refresh = true;
        assert_int_equal(pthread_create(&t[i], NULL, call_thread, &a[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_rl(REDIS_LOCK_OK, a[i].rc);
        assert_int_equal(a[i].n, 1);
        free(a[i].v);
    }
    assert_int_equal(atomic_load(&m.calls), N); /* each refresh computed */
    assert_int_equal(atomic_load(&m.overlap), 0); /* never two at once */
    redis_lock_client_close(c);
}

static void cache_waiter_gets_other_threads_value(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    maker slow = {0, 0, 0, "computed-once", 0, 0, 400};
    call_arg first = {c, "kw", cache_opts(5000), &slow, -100, NULL, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, call_thread, &first), 0);
    /* wait until the first one computes under the lock */
    int64_t end = rt_now_ms() + 3000;
    while (!atomic_load(&slow.inside) && rt_now_ms() < end)
        rt_sleep_ms(2);
    assert_int_equal(atomic_load(&slow.inside), 1);
    maker other = {0, 0, 0, "second", 0, 0, 0};
    char *v = NULL;
    size_t n = 0;
    redis_lock_cache_options o = cache_opts(5000);
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_get_or_set(c, "kw", &o, make, &other, &v, &n));
    int64_t waited = rt_now_ms() - t0;
    pthread_join(t, NULL);
    assert_rl(REDIS_LOCK_OK, first.rc);
    assert_string_equal(v, "computed-once");
    assert_string_equal(first.v, "computed-once");
    assert_int_equal(atomic_load(&other.calls), 0);
    assert_int_equal(atomic_load(&slow.calls), 1);
    assert_true(waited >= 200 && waited < 1500);
    free(v);
    free(first.v);
    redis_lock_client_close(c);
}

static void cache_timeout_busy(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    /* someone is computing kt and never finishes */
    redis_lock *holder = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&holder, c, "get_or_set:kt", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(holder, 0));
    maker m = {0, 0, 0, "v", 0, 0, 0};
    redis_lock_cache_options o = cache_opts(5000);
    o.timeout_ms = 300;
    char *v = NULL;
    size_t n = 0;
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_BUSY, redis_lock_cache_get_or_set(c, "kt", &o, make, &m, &v, &n));
    int64_t took = rt_now_ms() - t0;
    assert_true(took >= 300 && took < 1500);
    assert_null(v);
    o.timeout_ms = 0;
    assert_rl(REDIS_LOCK_BUSY, redis_lock_cache_get_or_set(c, "kt", &o, make, &m, &v, &n));
    assert_int_equal(atomic_load(&m.calls), 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(holder));
    redis_lock_free(holder);
    redis_lock_client_close(c);
}

static void cache_big_binary_value(void **state)
{
    (void)state;
    const size_t n = 64u << 20;
    char *big = malloc(n);
    assert_non_null(big);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        big[i] = (char)(i % 4096 < 16 ? 0 : (x & 0xff)); /* runs of NUL bytes as well */
    }
    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    co.url = rt_main.url;
    co.command_timeout_ms = 30000; /* 64 MiB under valgrind */
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &co));
    maker m = {0, 0, 0, big, n, 0, 0};
    redis_lock_cache_options o = cache_opts(60000);
    char *v = NULL;
    size_t len = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_get_or_set(c, "big", &o, make, &m, &v, &len));
    assert_int_equal(len, n);
    assert_true(memcmp(v, big, n) == 0);
    assert_int_equal(v[n], '\0');
    free(v);
    assert_int_equal(rt_cmd_int(&rt_main, "STRLEN big"), (long long)n);
    /* and read back from Redis (a hit) */
    v = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_get_or_set(c, "big", &o, make, &m, &v, &len));
    assert_int_equal(atomic_load(&m.calls), 1);
    assert_int_equal(len, n);
    assert_true(memcmp(v, big, n) == 0);
    assert_int_equal(v[n], '\0');
    free(v);
    free(big);
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_delete(c, "big"));
    redis_lock_client_close(c);
}

static void cache_empty_and_small_binary_values(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    maker empty = {0, 0, 0, "", 0, 0, 0};
    redis_lock_cache_options o = cache_opts(5000);
    char *v = NULL;
    size_t n = 99;
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_get_or_set(c, "empty", &o, make, &empty, &v, &n));
    assert_int_equal(n, 0);
    assert_non_null(v);
    assert_int_equal(v[0], '\0');
    free(v);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS empty"), 1); /* stored: a hit next time */
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_get_or_set(c, "empty", &o, make, &empty, &v, &n));
    assert_int_equal(n, 0);
    assert_int_equal(atomic_load(&empty.calls), 1);
    free(v);
    static const char bin[] = {'\0', '\x01', '\xff', '\0', '\r', '\n', '\0'};
    maker b = {0, 0, 0, bin, sizeof bin, 0, 0};
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_get_or_set(c, "bin", &o, make, &b, &v, &n));
    assert_int_equal(n, sizeof bin);
    assert_memory_equal(v, bin, sizeof bin);
    free(v);
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_get_or_set(c, "bin", &o, make, &b, &v, &n));
    assert_int_equal(n, sizeof bin);
    assert_memory_equal(v, bin, sizeof bin);
    free(v);
    redis_lock_client_close(c);
}

static int make_null(void *payload, char **value, size_t *len)
{
    *value = NULL;
    *len = *(size_t *)payload;
    return 0;
}

static void cache_make_null_value(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_cache_options o = cache_opts(5000);
    char *v = NULL;
    size_t n = 7, claimed = 5;
    /* NULL with a length: the callback broke its contract, nothing is stored */
    assert_rl(REDIS_LOCK_EUSER,
              redis_lock_cache_get_or_set(c, "knull", &o, make_null, &claimed, &v, &n));
    assert_null(v);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS knull lock:get_or_set:knull"), 0);
    /* NULL of length 0: an empty value */
    claimed = 0;
    assert_rl(REDIS_LOCK_OK,
              redis_lock_cache_get_or_set(c, "knull", &o, make_null, &claimed, &v, &n));
    assert_non_null(v);
    assert_int_equal(n, 0);
    assert_int_equal(v[0], '\0');
    free(v);
    assert_int_equal(rt_cmd_int(&rt_main, "STRLEN knull"), 0);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS knull"), 1);
    redis_lock_client_close(c);
}

static void cache_keys_exact(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    const char *key = "user:42 profile \xe2\x98\x83";
    maker m = {0, 0, 0, "x", 0, 0, 0};
    redis_lock_cache_options o = cache_opts(5000);
    expect_cached(c, key, &o, &m, "x");
    redisContext *ctx = rt_raw(&rt_main);
    redisReply *r = redisCommand(ctx, "EXISTS %s", key);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(ctx);
    /* the lock it computed under is lock:get_or_set:KEY, and it was released with a signal */
    ctx = rt_raw(&rt_main);
    r = redisCommand(ctx, "EXISTS lock-signal:get_or_set:%s", key);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(ctx);
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_delete(c, key));
    ctx = rt_raw(&rt_main);
    r = redisCommand(ctx, "EXISTS %s", key);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    redisFree(ctx);
    redis_lock_client_close(c);
}

static void cache_delete(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    maker m = {0, 0, 0, "one", 0, 0, 0};
    redis_lock_cache_options o = cache_opts(5000);
    expect_cached(c, "kd", &o, &m, "one");
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_delete(c, "kd"));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS kd"), 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_delete(c, "kd")); /* absent: success */
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_delete(c, "never-there"));
    m.value = "two";
    expect_cached(c, "kd", &o, &m, "two");
    assert_int_equal(atomic_load(&m.calls), 2);
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_delete(c, ""));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_delete(c, NULL));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_delete(NULL, "kd"));
    redis_lock_client_close(c);
}

static void cache_invalid_arguments(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    maker m = {0, 0, 0, "v", 0, 0, 0};
    char *v = NULL;
    size_t n = 0;
    redis_lock_cache_options o = cache_opts(0);
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "k", &o, make, &m, &v, &n));
    o.ttl_ms = -5;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "k", &o, make, &m, &v, &n));
    o = cache_opts(1000);
    o.version = 77;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "k", &o, make, &m, &v, &n));
    o = cache_opts(1000);
    o.timeout_ms = -2;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "k", &o, make, &m, &v, &n));
    o = cache_opts(1000);
    o.lock.version = 0;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "k", &o, make, &m, &v, &n));
    o = cache_opts(1000);
    o.lock.auto_renewal = true;
    o.lock.expire_ms = 0;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "k", &o, make, &m, &v, &n));
    o = cache_opts(1000);
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "", &o, make, &m, &v, &n));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, NULL, &o, make, &m, &v, &n));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "k", NULL, make, &m, &v, &n));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "k", &o, NULL, &m, &v, &n));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "k", &o, make, &m, NULL, &n));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "k", &o, make, &m, &v, NULL));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(NULL, "k", &o, make, &m, &v, &n));
    /* a wait longer than the lock's expiry without renewal: ETOOLONG, as for acquire */
    o = cache_opts(1000);
    o.lock.auto_renewal = false;
    o.lock.expire_ms = 500;
    o.timeout_ms = 5000;
    assert_rl(REDIS_LOCK_ETOOLONG, redis_lock_cache_get_or_set(c, "k", &o, make, &m, &v, &n));
    o.timeout_ms = -1; /* forever is allowed */
    assert_rl(REDIS_LOCK_OK, redis_lock_cache_get_or_set(c, "k", &o, make, &m, &v, &n));
    free(v);
    assert_int_equal(atomic_load(&m.calls), 1);
    assert_int_equal(rt_cmd_int(&rt_main, "DBSIZE"), 2); /* k and its lock's signal */
    redis_lock_client_close(c);
}

static void cache_wrongtype_is_eserver(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    assert_int_equal(rt_cmd_int(&rt_main, "RPUSH klist a"), 1);
    maker m = {0, 0, 0, "v", 0, 0, 0};
    redis_lock_cache_options o = cache_opts(1000);
    char *v = NULL;
    size_t n = 0;
    assert_rl(REDIS_LOCK_ESERVER, redis_lock_cache_get_or_set(c, "klist", &o, make, &m, &v, &n));
    assert_true(strstr(redis_lock_last_error(), "WRONGTYPE") != NULL);
    assert_null(v);
    redis_lock_client_close(c);
}

/* ---- cancel tokens: a signal handler stops a cache call, leaving nothing behind ---- */

static redis_lock_cancel_token *g_token; /* what SIGUSR1 cancels */

static void on_usr1(int sig)
{
    (void)sig;
    redis_lock_cancel_token_cancel(g_token);
}

static void install_usr1(redis_lock_cancel_token *t)
{
    g_token = t;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGUSR1, &sa, NULL), 0);
}

/* The cache's lock and value are both gone, and no client is left blocked. */
static void assert_nothing_left(const char *key)
{
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:get_or_set:%s", key), 0);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS %s", key), 0);
    redisReply *r = rt_cmd(&rt_main, "CLIENT LIST");
    assert_null(strstr(r->str, "cmd=blpop"));
    freeReplyObject(r);
}

typedef struct {
    call_arg a;
    redis_lock_cancel_token *token;
} cancel_call_arg;

static void *cancel_call_thread(void *p)
{
    cancel_call_arg *ca = p;
    call_arg *a = &ca->a;
    int64_t t0 = rt_now_ms();
    a->rc = redis_lock_cache_get_or_set_cancelable(a->c, a->key, &a->o, make, a->m, ca->token,
                                                   &a->v, &a->n);
    a->took_ms = rt_now_ms() - t0;
    return NULL;
}

static void cache_cancel_token_basics(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_cancel_token *t = NULL;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cancel_token_new(NULL));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cancel_token_cancel(NULL));
    assert_false(redis_lock_cancel_token_canceled(NULL));
    redis_lock_cancel_token_free(NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel_token_new(&t));
    assert_false(redis_lock_cancel_token_canceled(t));
    /* not canceled: the same as redis_lock_cache_get_or_set, miss then hit */
    maker m = {0, 0, 0, "tv", 0, 0, 0};
    redis_lock_cache_options o = cache_opts(5000);
    char *v = NULL;
    size_t n = 0;
    for (int i = 0; i < 2; i++) {
        assert_rl(REDIS_LOCK_OK,
                  redis_lock_cache_get_or_set_cancelable(c, "kb", &o, make, &m, t, &v, &n));
        assert_string_equal(v, "tv");
        free(v);
    }
    assert_int_equal(atomic_load(&m.calls), 1);
    /* canceled before the call: ECANCELED at once, every time (a token stays canceled) */
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel_token_cancel(t));
    assert_true(redis_lock_cancel_token_canceled(t));
    o.refresh = true;
    for (int i = 0; i < 2; i++) {
        assert_rl(REDIS_LOCK_ECANCELED,
                  redis_lock_cache_get_or_set_cancelable(c, "kb", &o, make, &m, t, &v, &n));
        assert_null(v);
        assert_int_equal(n, 0);
    }
    assert_int_equal(atomic_load(&m.calls), 1);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:get_or_set:kb"), 0);
    redis_lock_cancel_token_free(t);
    redis_lock_client_close(c);
}

/* SIGUSR1 while the call waits for another client's computation: the wait ends at once,
 * the other holder keeps its lock, and the call never computed. A second call with a
 * token in use is refused. */
static void cache_cancel_during_wait(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *holder = rt_new_lock(c, "get_or_set:kcw", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(holder, 0));
    redis_lock_cancel_token *t = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel_token_new(&t));
    install_usr1(t);
    maker m = {0, 0, 0, "never", 0, 0, 0};
    cancel_call_arg ca = {{c, "kcw", cache_opts(5000), &m, -100, NULL, 0, 0}, t};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_call_thread, &ca), 0);
    int64_t end = rt_now_ms() + 5000;
    bool blocked = false;
    while (!blocked && rt_now_ms() < end) {
        redisReply *r = rt_cmd(&rt_main, "CLIENT LIST");
        blocked = strstr(r->str, "cmd=blpop") != NULL;
        freeReplyObject(r);
        if (!blocked)
            rt_sleep_ms(20);
    }
    assert_true(blocked);
    char *v = NULL;
    size_t n = 0;
    redis_lock_cache_options o = cache_opts(5000);
    assert_rl(REDIS_LOCK_EINVAL,
              redis_lock_cache_get_or_set_cancelable(c, "kcw", &o, make, &m, t, &v, &n));
    int64_t t0 = rt_now_ms();
    assert_int_equal(pthread_kill(th, SIGUSR1), 0);
    pthread_join(th, NULL);
    int64_t took = rt_now_ms() - t0;
    assert_rl(REDIS_LOCK_ECANCELED, ca.a.rc);
    assert_null(ca.a.v);
    assert_true(took < 2000);
    assert_int_equal(atomic_load(&m.calls), 0);
    rt_assert_owner(holder, redis_lock_id(holder));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(holder));
    redis_lock_free(holder);
    assert_nothing_left("kcw");
    redis_lock_cancel_token_free(t);
    redis_lock_client_close(c);
}

/* The client's log says "acquired get_or_set:..." right after the lock was taken, inside
 * the acquire: a signal raised there lands in exactly that moment. */
static void raise_on_acquired(int level, const char *message, void *payload)
{
    (void)level;
    if (strncmp(message, "acquired get_or_set:", 20) == 0) {
        atomic_fetch_add((atomic_int *)payload, 1);
        raise(SIGUSR1);
    }
}

static void cache_cancel_as_the_lock_is_taken(void **state)
{
    (void)state;
    atomic_int raised = 0;
    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    co.url = rt_main.url;
    co.log = raise_on_acquired;
    co.log_payload = &raised;
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &co));
    redis_lock_cancel_token *t = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel_token_new(&t));
    install_usr1(t);
    maker m = {0, 0, 0, "never", 0, 0, 0};
    redis_lock_cache_options o = cache_opts(5000);
    char *v = NULL;
    size_t n = 0;
    assert_rl(REDIS_LOCK_ECANCELED,
              redis_lock_cache_get_or_set_cancelable(c, "kct", &o, make, &m, t, &v, &n));
    assert_int_equal(atomic_load(&raised), 1);
    assert_null(v);
    assert_int_equal(atomic_load(&m.calls), 0);
    assert_nothing_left("kct"); /* not held for its 30 s expiry */
    redis_lock_cancel_token_free(t);
    redis_lock_client_close(c);
}

static redis_lock_cancel_token *g_make_token;

static int make_then_signal(void *payload, char **value, size_t *len)
{
    int rc = make(payload, value, len);
    raise(SIGUSR1);
    assert_true(redis_lock_cancel_token_canceled(g_make_token));
    return rc;
}

/* Canceled while make runs: what it returns is not stored; the lock is released. */
static void cache_cancel_during_make(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_cancel_token *t = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel_token_new(&t));
    install_usr1(t);
    g_make_token = t;
    maker m = {0, 0, 0, "computed", 0, 0, 0};
    redis_lock_cache_options o = cache_opts(5000);
    char *v = NULL;
    size_t n = 0;
    assert_rl(REDIS_LOCK_ECANCELED, redis_lock_cache_get_or_set_cancelable(
                                        c, "kcm", &o, make_then_signal, &m, t, &v, &n));
    assert_int_equal(atomic_load(&m.calls), 1);
    assert_null(v);
    assert_int_equal(n, 0);
    assert_nothing_left("kcm");
    redis_lock_cancel_token_free(t);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cache_defaults),
        cmocka_unit_test_setup(cache_miss_then_hit_ttl, rt_flush),
        cmocka_unit_test_setup(cache_make_fails, rt_flush),
        cmocka_unit_test_setup(cache_failure_detail_kept, rt_flush),
        cmocka_unit_test_setup(cache_refresh_recomputes, rt_flush),
        cmocka_unit_test_setup(cache_concurrent_refresh_one_after_another, rt_flush),
        cmocka_unit_test_setup(cache_waiter_gets_other_threads_value, rt_flush),
        cmocka_unit_test_setup(cache_timeout_busy, rt_flush),
        cmocka_unit_test_setup(cache_big_binary_value, rt_flush),
        cmocka_unit_test_setup(cache_empty_and_small_binary_values, rt_flush),
        cmocka_unit_test_setup(cache_make_null_value, rt_flush),
        cmocka_unit_test_setup(cache_keys_exact, rt_flush),
        cmocka_unit_test_setup(cache_delete, rt_flush),
        cmocka_unit_test_setup(cache_invalid_arguments, rt_flush),
        cmocka_unit_test_setup(cache_wrongtype_is_eserver, rt_flush),
        cmocka_unit_test_setup(cache_cancel_token_basics, rt_flush),
        cmocka_unit_test_setup(cache_cancel_during_wait, rt_flush),
        cmocka_unit_test_setup(cache_cancel_as_the_lock_is_taken, rt_flush),
        cmocka_unit_test_setup(cache_cancel_during_make, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
