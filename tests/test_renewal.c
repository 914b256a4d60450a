/* labels: threaded */
/* Auto-renewal: one thread per client, pipelined; lost locks are noticed; max_hold_ms. */
#include "harness.h"
#include "internal.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/* Per-test setup: a clean database with the library's scripts already in the server's
 * script cache, as on any server that has seen a lock before. (The cold-cache case has
 * its own tests: first_renewal_*.) */
static int flush_and_load(void **state)
{
    rt_flush(state);
    for (int i = 0; i < RL_SCRIPT_COUNT; i++) {
        redisReply *r = rt_cmd(&rt_main, "SCRIPT LOAD %s", rl_script_source(i));
        if (r->type != REDIS_REPLY_STRING || strcmp(r->str, rl_script_sha(i)) != 0)
            fail_msg("SCRIPT LOAD of script %d: %s", i, r->str ? r->str : "?");
        freeReplyObject(r);
    }
    return 0;
}

static redis_lock *renewed_lock(redis_lock_client *c, const char *name, int64_t expire_ms,
                                redis_lock_lost_fn on_lost, void *payload)
{
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = expire_ms;
    o.auto_renewal = true;
    o.on_lost = on_lost;
    o.on_lost_payload = payload;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, name, &o));
    return l;
}

static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Sample PTTL of key on a raw connection for ms; returns the smallest value seen (-2 if
 * the key was ever missing) and checks the owner stays id. */
static long long watch_ttl(const char *key, const char *id, int64_t ms, int *samples)
{
    redisContext *ctx = rt_raw(&rt_main);
    long long min = 1LL << 60;
    int64_t end = rt_now_ms() + ms;
    *samples = 0;
    while (rt_now_ms() < end) {
        redisReply *r = redisCommand(ctx, "PTTL %s", key);
        assert_non_null(r);
        assert_int_equal(r->type, REDIS_REPLY_INTEGER);
        if (r->integer < min)
            min = r->integer;
        freeReplyObject(r);
        r = redisCommand(ctx, "GET %s", key);
        assert_non_null(r);
        if (r->type != REDIS_REPLY_STRING || strcmp(r->str, id) != 0)
            min = -2;
        freeReplyObject(r);
        (*samples)++;
        rt_sleep_ms(10);
    }
    redisFree(ctx);
    return min;
}

typedef struct {
    atomic_int calls;
    redis_lock *_Atomic seen;
} lost_arg;

static void on_lost(redis_lock *l, void *payload)
{
    lost_arg *a = payload;
    atomic_store(&a->seen, l);
    atomic_fetch_add(&a->calls, 1);
}

static void renewal_keeps_short_lock_alive(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = renewed_lock(c, "short", 300, NULL, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    int samples;
    long long min = watch_ttl("lock:short", redis_lock_id(l), 3200, &samples);
    print_message("over 3.2 s (> 10 expiry periods), %d samples, smallest PTTL %lld ms\n",
                  samples, min);
    assert_true(samples > 50);
    assert_true(min > 0);
    /* still ours, and the handle knows it */
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:short"), 0);
    /* renewal stopped with the release: nothing recreates the key */
    rt_sleep_ms(400);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:short"), 0);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

/* What a client logged: warnings and errors (a renewal answered with an error, NOSCRIPT
 * among them, logs one before it is tried again) and renewal rounds (debug). */
typedef struct {
    atomic_int warnings;
    atomic_int rounds;
} log_count;

static void count_log(int level, const char *message, void *payload)
{
    log_count *n = payload;
    if (level <= LOG_WARNING) {
        atomic_fetch_add(&n->warnings, 1);
        print_message("logged: %s\n", message);
    } else if (strncmp(message, "renewing ", 9) == 0) {
        atomic_fetch_add(&n->rounds, 1);
    }
}

static redis_lock_client *logged_client(log_count *n)
{
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = rt_main.url;
    o.log = count_log;
    o.log_payload = n;
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &o));
    return c;
}

/* On a server whose script cache is cold (fresh, restarted, SCRIPT FLUSH) the first
 * renewal meets NOSCRIPT. docs/design.md: fall back to EVAL and go on, in the same round.
 * The lock is not lost, and no renewal logs an error: a renewal that answered NOSCRIPT with
 * a retry after a back-off would log the NOSCRIPT reply. (Expire 900 ms, renewed at 600 ms:
 * an expiry of 240 ms left 80 ms of margin, which a loaded machine does not give.) */
static void first_renewal_on_cold_script_cache(void **state)
{
    (void)state;
    log_count n = {0, 0};
    redis_lock_client *c = logged_client(&n);
    lost_arg a = {0, NULL};
    redis_lock *l = renewed_lock(c, "cold", 900, on_lost, &a);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    int samples;
    long long min = watch_ttl("lock:cold", redis_lock_id(l), 1500, &samples);
    print_message("expire 900 ms, cold script cache: smallest PTTL over 1.5 s %lld ms, %d "
                  "renewal rounds, on_lost called %d times\n", min, atomic_load(&n.rounds),
                  atomic_load(&a.calls));
    assert_int_equal(atomic_load(&a.calls), 0);
    assert_true(min > 0);
    assert_true(atomic_load(&n.rounds) >= 1);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    assert_int_equal(atomic_load(&n.warnings), 0);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static void first_renewal_after_script_flush_while_held(void **state)
{
    (void)state;
    /* the same for a lock already being renewed when the cache is flushed */
    log_count n = {0, 0};
    redis_lock_client *c = logged_client(&n);
    lost_arg a = {0, NULL};
    redis_lock *l = renewed_lock(c, "flush-held", 900, on_lost, &a);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    /* one renewal done (due at 600 ms), the next due at 1200 ms */
    int64_t t0 = rt_now_ms();
    while (atomic_load(&n.rounds) < 1 && rt_now_ms() - t0 < 5000)
        rt_sleep_ms(10);
    int rounds = atomic_load(&n.rounds);
    assert_true(rounds >= 1);
    redisReply *r = rt_cmd(&rt_main, "SCRIPT FLUSH");
    freeReplyObject(r);
    int samples;
    long long min = watch_ttl("lock:flush-held", redis_lock_id(l), 1500, &samples);
    print_message("expire 900 ms, script cache flushed while held: smallest PTTL over 1.5 s "
                  "%lld ms, %d renewal rounds\n", min, atomic_load(&n.rounds));
    assert_int_equal(atomic_load(&a.calls), 0);
    assert_true(min > 0);
    assert_true(atomic_load(&n.rounds) > rounds);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    assert_int_equal(atomic_load(&n.warnings), 0);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static void free_stops_renewal(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = renewed_lock(c, "freed", 300, NULL, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    rt_sleep_ms(400);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:freed"), 1);
    redis_lock_free(l); /* does not release, but stops renewing: the key expires */
    int64_t t0 = rt_now_ms();
    while (rt_cmd_int(&rt_main, "EXISTS lock:freed") && rt_now_ms() - t0 < 3000)
        rt_sleep_ms(10);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:freed"), 0);
    assert_true(rt_now_ms() - t0 < 1000);
    redis_lock_client_close(c);
}

static void wait_lost(lost_arg *a, int64_t ms)
{
    int64_t end = rt_now_ms() + ms;
    while (atomic_load(&a->calls) == 0 && rt_now_ms() < end)
        rt_sleep_ms(5);
}

static void on_lost_after_reset(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    lost_arg a = {0, NULL};
    redis_lock *l = renewed_lock(c, "lost", 300, on_lost, &a);
    redis_lock *other = renewed_lock(c, "lost", 300, NULL, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    rt_sleep_ms(250);
    assert_int_equal(atomic_load(&a.calls), 0);
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(other));
    wait_lost(&a, 3000);
    int64_t took = rt_now_ms() - t0;
    assert_int_equal(atomic_load(&a.calls), 1);
    assert_ptr_equal(atomic_load(&a.seen), l);
    assert_true(took < 1000); /* within one renewal interval (200 ms) and some */
    /* once: later rounds do not call it again */
    rt_sleep_ms(700);
    assert_int_equal(atomic_load(&a.calls), 1);
    /* the handle knows, whoever holds the key now */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(other, 0));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_extend(l, 0));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_extend(l, 5000));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(l));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(l));
    /* the other owner's key was not touched by any of that */
    rt_assert_owner(l, redis_lock_id(other));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(other));
    /* a lost handle may acquire again and then holds it normally */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    rt_sleep_ms(500);
    assert_int_equal(atomic_load(&a.calls), 1);
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_free(other);
    redis_lock_client_close(c);
}

static void on_lost_when_taken_over(void **state)
{
    (void)state;
    /* the key replaced behind our back (an operator, a split brain): lost as well */
    redis_lock_client *c = rt_client(&rt_main);
    lost_arg a = {0, NULL};
    redis_lock *l = renewed_lock(c, "stolen", 300, on_lost, &a);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    redisReply *r = rt_cmd(&rt_main, "SET lock:stolen someone-else");
    freeReplyObject(r);
    wait_lost(&a, 3000);
    assert_int_equal(atomic_load(&a.calls), 1);
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(l));
    r = rt_cmd(&rt_main, "GET lock:stolen");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "someone-else");
    freeReplyObject(r);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static void max_hold_stops_renewal(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 300;
    o.auto_renewal = true;
    o.max_hold_ms = 800;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "capped", &o));
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    /* renewed past its own expiry while under the cap */
    rt_sleep_ms(600);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:capped"), 1);
    int64_t gone = -1;
    while (rt_now_ms() - t0 < 4000) {
        if (!rt_cmd_int(&rt_main, "EXISTS lock:capped")) {
            gone = rt_now_ms() - t0;
            break;
        }
        rt_sleep_ms(10);
    }
    print_message("max_hold_ms 800, expire 300: the key expired %lld ms after the acquire\n",
                  (long long)gone);
    assert_true(gone >= 700);
    assert_true(gone < 2000); /* at most max_hold + expire, and slack */
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static long long info_field(const char *section, const char *field)
{
    redisReply *r = rt_cmd(&rt_main, "INFO %s", section);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    const char *p = strstr(r->str, field);
    long long v = 0;
    if (p)
        v = strtoll(p + strlen(field), NULL, 10);
    freeReplyObject(r);
    return v;
}

static int count_clients(void)
{
    redisReply *r = rt_cmd(&rt_main, "CLIENT LIST");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    int n = 0;
    for (const char *p = r->str; (p = strstr(p, "id=")); p += 3)
        if (p == r->str || p[-1] == '\n')
            n++;
    freeReplyObject(r);
    return n;
}

static void many_locks_one_thread_pipelined(void **state)
{
    (void)state;
    enum { N = 200 };
    int clients_before = count_clients(); /* this CLIENT LIST's own connection included */
    redis_lock_client *c = rt_client(&rt_main);
    int threads_before = thread_count();
    redis_lock *locks[N];
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "many-%d", i);
        locks[i] = renewed_lock(c, name, 1200, NULL, NULL);
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(locks[i], 0));
    }
    rt_sleep_ms(100);
    assert_int_equal(thread_count(), threads_before + 1);
    long long calls0 = info_field("commandstats", "cmdstat_evalsha:calls=");
    long long reads0 = info_field("stats", "total_reads_processed:");
    rt_sleep_ms(3300);
    long long calls1 = info_field("commandstats", "cmdstat_evalsha:calls=");
    long long reads1 = info_field("stats", "total_reads_processed:");
    int clients = count_clients() - clients_before;
    print_message("%d locks renewed over 3.3 s: %lld EVALSHA in %lld socket reads, %d "
                  "connections, 1 renewal thread\n",
                  N, calls1 - calls0, reads1 - reads0, clients);
    /* 3.3 s at an 800 ms interval: at least 3 rounds of 200 (expire 1200 ms: 600 ms left
     * 200 ms of margin per round, which a loaded machine did not always give) */
    assert_true(calls1 - calls0 >= 3 * N);
    /* pipelined: far fewer reads than commands (unpipelined it would be one per command) */
    assert_true((reads1 - reads0) * 10 < calls1 - calls0);
    /* the pool's connection and the renewal thread's */
    assert_true(clients <= 2);
    assert_int_equal(thread_count(), threads_before + 1);
    /* and all of them are still held past their expiry */
    for (int i = 0; i < N; i++) {
        char key[40];
        snprintf(key, sizeof key, "lock:many-%d", i);
        long long pttl = rt_cmd_int(&rt_main, "PTTL %s", key);
        assert_true(pttl > 0);
    }
    for (int i = 0; i < N; i++) {
        assert_rl(REDIS_LOCK_OK, redis_lock_release(locks[i]));
        redis_lock_free(locks[i]);
    }
    assert_int_equal(rt_cmd_int(&rt_main, "DBSIZE"), N); /* only the signal lists remain */
    redis_lock_client_close(c);
    /* closing the client ended its renewal thread */
    assert_int_equal(thread_count(), threads_before);
}

static void release_waits_for_inflight_renewal(void **state)
{
    (void)state;
    /* release while a renewal of the same lock waits for its reply (the server is paused):
     * the release waits for it and then releases; nothing is reported lost */
    redis_lock_client *c = rt_client(&rt_main);
    lost_arg a = {0, NULL};
    redis_lock *l = renewed_lock(c, "inflight", 2100, on_lost, &a); /* renewed at 1400 ms */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    rt_sleep_ms(1150);
    redisReply *r = rt_cmd(&rt_main, "CLIENT PAUSE 500 ALL"); /* until ~1650 ms */
    freeReplyObject(r);
    rt_sleep_ms(400); /* the renewal at ~1400 ms is now stuck in the pause */
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    int64_t took = rt_now_ms() - t0;
    assert_true(took < 2000);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:inflight"), 0);
    rt_sleep_ms(300);
    assert_int_equal(atomic_load(&a.calls), 0);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:inflight"), 0);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static void renewal_after_script_flush(void **state)
{
    (void)state;
    /* the renewal thread meets NOSCRIPT, loads the script, and the lock survives */
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 400;
    o.auto_renewal = true;
    o.renewal_interval_ms = 100;
    lost_arg a = {0, NULL};
    o.on_lost = on_lost;
    o.on_lost_payload = &a;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "flushed", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    for (int i = 0; i < 3; i++) {
        redisReply *r = rt_cmd(&rt_main, "SCRIPT FLUSH");
        freeReplyObject(r);
        int samples;
        long long min = watch_ttl("lock:flushed", redis_lock_id(l), 500, &samples);
        assert_true(min > 0);
    }
    assert_int_equal(atomic_load(&a.calls), 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(renewal_keeps_short_lock_alive, flush_and_load),
        cmocka_unit_test_setup(first_renewal_on_cold_script_cache, rt_flush),
        cmocka_unit_test_setup(first_renewal_after_script_flush_while_held, flush_and_load),
        cmocka_unit_test_setup(free_stops_renewal, flush_and_load),
        cmocka_unit_test_setup(on_lost_after_reset, flush_and_load),
        cmocka_unit_test_setup(on_lost_when_taken_over, flush_and_load),
        cmocka_unit_test_setup(max_hold_stops_renewal, flush_and_load),
        cmocka_unit_test_setup(many_locks_one_thread_pipelined, flush_and_load),
        cmocka_unit_test_setup(release_waits_for_inflight_renewal, flush_and_load),
        cmocka_unit_test_setup(renewal_after_script_flush, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
