/* labels: sentinel forks threaded */
/* redis+sentinel:// on the shared Sentinel deployment: discovery, a held and renewed lock
 * across SENTINEL FAILOVER (no overlap with a second client), kill -9 of the master while a
 * lock is held and another client waits (it never gets the lock early), the killed master
 * restarted empty (never used), and a client whose pooled connections point at a node
 * that was demoted. Each failover test leaves the deployment healthy. */
#include "deploy.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rt_deploy d;

/* every client logs to stderr (shown when a test fails), with the time */
static void log_stderr(int level, const char *msg, void *payload)
{
    fprintf(stderr, "[%lld %s] %d %s\n", (long long)rt_now_ms() % 100000, (const char *)payload,
            level, msg);
}

static redis_lock_client *sentinel_client_named(const char *params, const char *name)
{
    char url[700];
    snprintf(url, sizeof url, "%s%s", d.url, params ? params : "");
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = url;
    o.log = log_stderr;
    o.log_payload = (void *)name;
    redis_lock_client *c = NULL;
    int rc = redis_lock_client_open(&c, &o);
    if (rc)
        fail_msg("client_open %s: %s", url, redis_lock_last_error());
    return c;
}

static redis_lock_client *sentinel_client(const char *params)
{
    return sentinel_client_named(params, "client");
}

/* Does node i hold key with value id? */
static bool node_has(int i, const char *key, const char *id)
{
    redisReply *r = rt_node_try_cmd(&d.nodes[i], "GET %s", key);
    bool yes = r && r->type == REDIS_REPLY_STRING && strcmp(r->str, id) == 0;
    if (r)
        freeReplyObject(r);
    return yes;
}

static void discovery(void **state)
{
    (void)state;
    rt_sentinel_load(&d);
    int m = rt_sentinel_master(&d);
    redis_lock_client *c = sentinel_client(NULL);
    redis_lock *l;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "sentinel:discovery", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_true(node_has(m, "lock:sentinel:discovery", redis_lock_id(l)));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);

    /* a name the sentinels do not monitor; sentinels that do not answer */
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    char url[700];
    snprintf(url, sizeof url, "redis+sentinel://127.0.0.1:%d/nosuchmaster",
             d.sentinels[0].port);
    o.url = url;
    assert_rl(REDIS_LOCK_ECONN, redis_lock_client_open(&c, &o));
    assert_non_null(strstr(redis_lock_last_error(), "nosuchmaster"));
    /* the first sentinel is down (a closed port): the next one answers */
    snprintf(url, sizeof url, "redis+sentinel://127.0.0.1:1,127.0.0.1:%d/%s",
             d.sentinels[1].port, d.master_name);
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &o));
    redis_lock_client_close(c);
    snprintf(url, sizeof url, "redis+sentinel://127.0.0.1:1/%s", d.master_name);
    o.connect_timeout_ms = 500;
    assert_rl(REDIS_LOCK_ECONN, redis_lock_client_open(&c, &o));
    assert_non_null(strstr(redis_lock_last_error(), "no sentinel"));
}

static atomic_int lost_count;
static atomic_llong lost_at;
static void on_lost(redis_lock *l, void *payload)
{
    (void)l;
    (void)payload;
    atomic_store(&lost_at, (long long)rt_now_ms());
    atomic_fetch_add(&lost_count, 1);
}

typedef struct {
    redis_lock *w;
    int rc;
    int64_t acquired_ms;
} waiter;

static void *wait_thread(void *arg)
{
    waiter *wt = arg;
    wt->rc = redis_lock_acquire(wt->w, 30000);
    wt->acquired_ms = rt_now_ms();
    return NULL;
}

/* A renewed lock across SENTINEL FAILOVER: both clients follow the new master; a second
 * client tries the lock every 100 ms. Without replica acknowledgement a renewal that the
 * promoted replica never saw can leave the holder believing for up to one renewal interval
 * (the window is printed); the holder keeps the lock on the new master, or learns it lost
 * it within the lock's expiry of the switch. */
static void failover_while_held(void **state)
{
    (void)state;
    rt_sentinel_load(&d);
    redis_lock_client *c1 = sentinel_client_named(NULL, "holder"),
                      *c2 = sentinel_client_named(NULL, "other");
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.expire_ms = 2000;
    lo.auto_renewal = true;
    lo.on_lost = on_lost;
    atomic_store(&lost_count, 0);
    redis_lock *h, *w;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&h, c1, "sentinel:failover", &lo));
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&w, c2, "sentinel:failover", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    /* and a third client waits (in BLPOP on the old master when the switch comes) */
    redis_lock_client *c3 = sentinel_client_named(NULL, "waiter");
    waiter wt = {0};
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&wt.w, c3, "sentinel:failover", NULL));
    pthread_t th;
    assert_int_equal(0, pthread_create(&th, NULL, wait_thread, &wt));
    rt_sleep_ms(300); /* replicated */
    int64_t t0 = rt_now_ms();
    int old = rt_sentinel_master(&d);
    int m = rt_sentinel_failover(&d, 0);
    int64_t switched = rt_now_ms();
    printf("time: SENTINEL FAILOVER: new master after %lld ms\n", (long long)(switched - t0));
    /* 12 s: past the old master's demotion */
    int64_t end = rt_now_ms() + 12000, other_at = 0;
    bool on_new = false;
    while (rt_now_ms() < end) {
        int rc = redis_lock_acquire(w, 0);
        if (rc == REDIS_LOCK_OK) {
            other_at = rt_now_ms();
            /* it took the lock on the new master, not on the old one */
            assert_true(node_has(m, "lock:sentinel:failover", redis_lock_id(w)));
            break;
        }
        if (rc != REDIS_LOCK_BUSY)
            printf("second client: %s (%s); retrying\n", redis_lock_code_name(rc),
                   redis_lock_last_error());
        on_new = on_new || node_has(m, "lock:sentinel:failover", redis_lock_id(h));
        rt_sleep_ms(100);
    }
    if (other_at) {
        /* the holder lost it: it learns so within the expiry of the switch */
        int64_t until = rt_now_ms() + 5000;
        while (!atomic_load(&lost_count) && rt_now_ms() < until)
            rt_sleep_ms(20);
        assert_int_equal(1, atomic_load(&lost_count));
        long long window = atomic_load(&lost_at) - other_at;
        printf("figure: holder's key missed the promotion; it learned %lld ms %s the other "
               "acquired\n", window < 0 ? -window : window, window < 0 ? "before" : "after");
        assert_true(atomic_load(&lost_at) - switched <= lo.expire_ms + 1000);
        rt_sleep_ms(500);
        int64_t released = rt_now_ms();
        assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
        pthread_join(th, NULL);
        assert_rl(REDIS_LOCK_OK, wt.rc);
        if (wt.acquired_ms < released)
            fail_msg("the waiter acquired %lld ms before the second client released",
                     (long long)(released - wt.acquired_ms));
    } else {
        assert_int_equal(0, atomic_load(&lost_count));
        assert_true(on_new);
        assert_true(node_has(m, "lock:sentinel:failover", redis_lock_id(h)));
        int64_t released = rt_now_ms();
        assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
        printf("figure: the holder kept the lock on the new master\n");
        pthread_join(th, NULL);
        assert_rl(REDIS_LOCK_OK, wt.rc);
        if (wt.acquired_ms < released)
            fail_msg("the waiter acquired %lld ms before the holder released",
                     (long long)(released - wt.acquired_ms));
        printf("time: the waiter acquired %lld ms after the release\n",
               (long long)(wt.acquired_ms - released));
    }
    /* the waiter's lock is on the new master */
    assert_true(node_has(rt_sentinel_master(&d), "lock:sentinel:failover", redis_lock_id(wt.w)));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(wt.w));
    redis_lock_free(wt.w);
    redis_lock_client_close(c3);
    /* the old master (still writable until the sentinels demote it) never saw the other */
    assert_false(node_has(old, "lock:sentinel:failover", redis_lock_id(w)));
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(c1);
    redis_lock_client_close(c2);
    rt_deploy_wait_healthy(&d, 60);
}

/* kill -9 of the master while a renewed lock is held and another client waits: the waiter
 * gets it after the holder releases (or learns it lost it), never before; the killed
 * master comes back empty and writable and no Sentinel client uses it. */
static void master_killed_while_held(void **state)
{
    (void)state;
    rt_sentinel_load(&d);
    redis_lock_client *c1 = sentinel_client_named(NULL, "holder"),
                      *c2 = sentinel_client_named(NULL, "other");
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.expire_ms = 3000;
    lo.auto_renewal = true;
    lo.on_lost = on_lost;
    atomic_store(&lost_count, 0);
    redis_lock *h;
    waiter wt = {0};
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&h, c1, "sentinel:killed", &lo));
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&wt.w, c2, "sentinel:killed", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    int old = rt_sentinel_master(&d);
    redisReply *r = rt_node_cmd(&d.nodes[old], "WAIT 2 2000");
    freeReplyObject(r);
    pthread_t th;
    assert_int_equal(0, pthread_create(&th, NULL, wait_thread, &wt));
    rt_sleep_ms(300);
    int64_t t0 = rt_now_ms();
    rt_node_kill(&d, &d.nodes[old]);
    int m = rt_sentinel_wait_new_master(&d, old, 30);
    printf("time: kill -9 of the master: new master after %lld ms\n",
           (long long)(rt_now_ms() - t0));
    /* restarted empty: it answers as a master until the sentinels make it a replica */
    rt_node_restart(&d, &d.nodes[old]);
    /* the holder keeps it on the new master for 6 s more */
    int64_t end = rt_now_ms() + 6000;
    bool on_new = false;
    while (rt_now_ms() < end && atomic_load(&lost_count) == 0) {
        on_new = on_new || node_has(m, "lock:sentinel:killed", redis_lock_id(h));
        assert_false(node_has(old, "lock:sentinel:killed", redis_lock_id(wt.w)));
        rt_sleep_ms(200);
    }
    int64_t released = rt_now_ms();
    int lost = atomic_load(&lost_count);
    if (!lost) {
        assert_true(on_new);
        assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
    } else {
        released = atomic_load(&lost_at);
    }
    pthread_join(th, NULL);
    assert_rl(REDIS_LOCK_OK, wt.rc);
    if (wt.acquired_ms < released)
        fail_msg("the waiter acquired %lld ms before the holder let go",
                 (long long)(released - wt.acquired_ms));
    printf("time: waiter acquired %lld ms after the holder %s; %lld ms after the kill\n",
           (long long)(wt.acquired_ms - released), lost ? "lost it" : "released",
           (long long)(wt.acquired_ms - t0));
    /* never on the restarted node while it was not the sentinels' master (a kill -9 can
     * give two promotions in a row, and a key may be lost with the second: the waiter's
     * key is not asserted on today's master) */
    assert_false(node_has(old, "lock:sentinel:killed", redis_lock_id(wt.w)) &&
                 old != rt_sentinel_master(&d));
    int rc = redis_lock_release(wt.w);
    assert_true(rc == REDIS_LOCK_OK || rc == REDIS_LOCK_ENOTHELD);
    redis_lock_free(h);
    redis_lock_free(wt.w);
    redis_lock_client_close(c1);
    redis_lock_client_close(c2);
    rt_deploy_wait_healthy(&d, 90);
}

/* min_replicas=1: with both replicas stopped the acquire is EREPLICA and the key is given
 * back (an extend too is EREPLICA); with them running it succeeds. */
static void min_replicas(void **state)
{
    (void)state;
    rt_sentinel_load(&d);
    int m = rt_sentinel_master(&d);
    redis_lock_client *c = sentinel_client("?min_replicas=1&replica_timeout_ms=500");
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.expire_ms = 10000;
    lo.fencing = true;
    redis_lock *l;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "sentinel:replicas", &lo));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    int64_t t1 = redis_lock_fencing_token(l);
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(l, 10000));
    for (int i = 0; i < d.nnodes; i++)
        if (i != m)
            rt_node_signal(&d, &d.nodes[i], SIGSTOP);
    assert_rl(REDIS_LOCK_EREPLICA, redis_lock_extend(l, 10000));
    assert_non_null(strstr(redis_lock_last_error(), "too few replicas"));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_EREPLICA, redis_lock_acquire(l, 0));
    printf("figure: EREPLICA after %lld ms (replica_timeout_ms 500): %s\n",
           (long long)(rt_now_ms() - t0), redis_lock_last_error());
    assert_false(node_has(m, "lock:sentinel:replicas", redis_lock_id(l)));
    redisReply *r = rt_node_cmd(&d.nodes[m], "EXISTS lock:sentinel:replicas");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    for (int i = 0; i < d.nnodes; i++)
        if (i != m)
            rt_node_signal(&d, &d.nodes[i], SIGCONT);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 5000));
    assert_true(redis_lock_fencing_token(l) > t1);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
    rt_deploy_wait_healthy(&d, 60);
}

/* Fencing tokens across SENTINEL FAILOVER keep increasing, even when the promoted replica
 * has a fence counter behind the old master's. */
static void tokens_across_failover(void **state)
{
    (void)state;
    rt_sentinel_load(&d);
    redis_lock_client *c = sentinel_client(NULL);
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.fencing = true;
    redis_lock *l;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "sentinel:tokens", &lo));
    int64_t last = 0;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 20; i++) {
            assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 5000));
            int64_t t = redis_lock_fencing_token(l);
            if (t <= last)
                fail_msg("token %lld after %lld", (long long)t, (long long)last);
            last = t;
            assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
        }
        int m = rt_sentinel_master(&d);
        /* the replica that will be promoted missed increments: its counter is set back
         * (written on the replicas themselves, briefly writable) */
        for (int i = 0; i < d.nnodes; i++)
            if (i != m) {
                freeReplyObject(rt_node_cmd(&d.nodes[i], "CONFIG SET replica-read-only no"));
                freeReplyObject(rt_node_cmd(&d.nodes[i], "SET lock-fence:sentinel:tokens 1"));
                freeReplyObject(rt_node_cmd(&d.nodes[i], "CONFIG SET replica-read-only yes"));
            }
        rt_sentinel_failover(&d, 1);
    }
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 10000));
    assert_true(redis_lock_fencing_token(l) > last);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
    rt_deploy_wait_healthy(&d, 60);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(discovery),
        cmocka_unit_test(failover_while_held),
        cmocka_unit_test(master_killed_while_held),
        cmocka_unit_test(min_replicas),
        cmocka_unit_test(tokens_across_failover),
    };
    return RT_RUN(tests, argc, argv, 0);
}
