/* labels: threaded */
/* One client shared by many threads (docs/design.md: a client may be shared by all threads; a
 * handle is used by one thread at a time): exclusion, renewals, cancels and the log
 * callback all at once. Run under TSan too. */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

enum { THREADS = 8, ROUNDS = 40 };

typedef struct {
    redis_lock_client *c;
    int index;
    atomic_int *inside; /* per lock name */
    atomic_int *violations;
    int failures;
    int acquired;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    char name[16];
    /* two threads per lock name, and every handle of its own */
    snprintf(name, sizeof name, "shared-%d", a->index % (THREADS / 2));
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 2000;
    o.auto_renewal = a->index % 3 == 0;
    o.fencing = a->index % 2 == 0;
    redis_lock *l = NULL;
    if (redis_lock_new(&l, a->c, name, &o)) {
        a->failures = ROUNDS;
        return NULL;
    }
    atomic_int *inside = &a->inside[a->index % (THREADS / 2)];
    for (int i = 0; i < ROUNDS; i++) {
        int rc = redis_lock_acquire(l, o.auto_renewal ? 20000 : 2000);
        if (rc) {
            a->failures++;
            continue;
        }
        a->acquired++;
        if (atomic_fetch_add(inside, 1) != 0)
            atomic_fetch_add(a->violations, 1);
        bool locked = false;
        if (redis_lock_locked(l, &locked) || !locked)
            a->failures++;
        atomic_fetch_sub(inside, 1);
        if (redis_lock_release(l))
            a->failures++;
    }
    redis_lock_free(l);
    return NULL;
}

static atomic_int log_lines;
static void count_log(int level, const char *message, void *payload)
{
    (void)payload;
    if (level >= LOG_EMERG && level <= LOG_DEBUG && message && *message)
        atomic_fetch_add(&log_lines, 1);
}

static void shared_client_many_threads(void **state)
{
    (void)state;
    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    co.url = rt_main.url;
    co.log = count_log;
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &co));
    atomic_int inside[THREADS / 2];
    atomic_int violations = 0;
    for (int i = 0; i < THREADS / 2; i++)
        atomic_init(&inside[i], 0);
    worker_arg a[THREADS];
    pthread_t t[THREADS];
    int64_t t0 = rt_now_ms();
    for (int i = 0; i < THREADS; i++) {
        a[i] = (worker_arg){c, i, inside, &violations, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &a[i]), 0);
    }
    int acquired = 0, failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        acquired += a[i].acquired;
        failures += a[i].failures;
    }
    print_message("%d threads x %d rounds on one client in %lld ms, %d log lines\n", THREADS,
                  ROUNDS, (long long)(rt_now_ms() - t0), atomic_load(&log_lines));
    assert_int_equal(failures, 0);
    assert_int_equal(acquired, THREADS * ROUNDS);
    assert_int_equal(atomic_load(&violations), 0);
    assert_true(atomic_load(&log_lines) > THREADS * ROUNDS);
    redisReply *r = rt_cmd(&rt_main, "KEYS lock:*");
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
    redis_lock_client_close(c);
}

typedef struct {
    redis_lock *lock;
    int rc;
} acq_arg;

static void *acq_forever(void *p)
{
    acq_arg *a = p;
    a->rc = redis_lock_acquire(a->lock, -1);
    return NULL;
}

static void many_waiters_canceled_and_released(void **state)
{
    (void)state;
    /* waiters on one client: half canceled from here, half woken one by one */
    enum { N = 8 };
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *h = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&h, c, "crowd", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    redis_lock *w[N];
    acq_arg a[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        assert_rl(REDIS_LOCK_OK, redis_lock_new(&w[i], c, "crowd", NULL));
        a[i] = (acq_arg){w[i], -100};
        assert_int_equal(pthread_create(&t[i], NULL, acq_forever, &a[i]), 0);
    }
    rt_sleep_ms(300);
    for (int i = 0; i < N; i += 2)
        assert_rl(REDIS_LOCK_OK, redis_lock_cancel(w[i]));
    for (int i = 0; i < N; i += 2) {
        pthread_join(t[i], NULL);
        assert_rl(REDIS_LOCK_ECANCELED, a[i].rc);
    }
    /* the rest get it in turn: each release wakes the next */
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
    int64_t t0 = rt_now_ms();
    int got = 0;
    while (got < N / 2 && rt_now_ms() - t0 < 10000) {
        for (int i = 1; i < N; i += 2) {
            char *owner = NULL;
            if (redis_lock_get_owner_id(h, &owner) == 0 && owner &&
                strcmp(owner, redis_lock_id(w[i])) == 0) {
                pthread_join(t[i], NULL);
                assert_rl(REDIS_LOCK_OK, a[i].rc);
                assert_rl(REDIS_LOCK_OK, redis_lock_release(w[i]));
                got++;
            }
            free(owner);
        }
        rt_sleep_ms(1);
    }
    assert_int_equal(got, N / 2);
    assert_true(rt_now_ms() - t0 < 5000);
    for (int i = 0; i < N; i++)
        redis_lock_free(w[i]);
    redis_lock_free(h);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(shared_client_many_threads, rt_flush),
        cmocka_unit_test_setup(many_waiters_canceled_and_released, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
