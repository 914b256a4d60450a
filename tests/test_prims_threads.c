/* labels: threaded */
/* The fair lock, the shared lock and the semaphore used by many threads of one process
 * sharing one client (and its renewal thread, which renews the three kinds in pipelines
 * of their own): exclusion and the limit hold, counted by the threads themselves. Runs
 * under TSan (the forked tests cannot: a child of a threaded parent may not start the
 * renewal thread there). */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#define THREADS 8
#define ROUNDS 20

typedef enum { FAIR, SHARED_READ, PLAIN_WRITE, PERMIT } kind;

typedef struct {
    redis_lock_client *c;
    kind k;
    int rc;
} worker;

static atomic_int inside_fair, readers, writers, permits, max_permits, max_readers, bad;

static void note_max(atomic_int *m, int v)
{
    int cur = atomic_load(m);
    while (v > cur && !atomic_compare_exchange_weak(m, &cur, v)) {
    }
}

static void *work(void *p)
{
    worker *w = p;
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 1000; /* renewed while the run lasts (also under valgrind) */
    o.auto_renewal = true;
    o.fencing = true;
    redis_lock *l = NULL;
    if (w->k == FAIR) {
        o.fair = true;
        w->rc = redis_lock_new(&l, w->c, "t-fair", &o);
    } else if (w->k == PERMIT) {
        w->rc = redis_lock_semaphore_new(&l, w->c, "t-sem", 3, &o);
    } else {
        o.shared = w->k == SHARED_READ;
        w->rc = redis_lock_new(&l, w->c, "t-rw", &o);
    }
    for (int r = 0; !w->rc && r < ROUNDS; r++) {
        if ((w->rc = redis_lock_acquire(l, 30000)))
            break;
        switch (w->k) {
        case FAIR:
            if (atomic_fetch_add(&inside_fair, 1) != 0)
                atomic_fetch_add(&bad, 1);
            rt_sleep_ms(2);
            atomic_fetch_sub(&inside_fair, 1);
            break;
        case SHARED_READ:
            note_max(&max_readers, atomic_fetch_add(&readers, 1) + 1);
            if (atomic_load(&writers))
                atomic_fetch_add(&bad, 1);
            rt_sleep_ms(3);
            atomic_fetch_sub(&readers, 1);
            break;
        case PLAIN_WRITE:
            if (atomic_fetch_add(&writers, 1) != 0 || atomic_load(&readers))
                atomic_fetch_add(&bad, 1);
            rt_sleep_ms(2);
            atomic_fetch_sub(&writers, 1);
            break;
        case PERMIT: {
            int n = atomic_fetch_add(&permits, 1) + 1;
            note_max(&max_permits, n);
            if (n > 3)
                atomic_fetch_add(&bad, 1);
            rt_sleep_ms(r == 0 ? 1500 : 3); /* the first hold outlasts the 1 s expiry */
            atomic_fetch_sub(&permits, 1);
            break;
        }
        }
        w->rc = redis_lock_release(l);
    }
    redis_lock_free(l);
    return NULL;
}

static void prims_threads_one_client(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    static const kind kinds[] = {FAIR, SHARED_READ, PLAIN_WRITE, PERMIT};
    enum { N = THREADS * 4 };
    worker ws[N];
    pthread_t t[N];
    for (int i = 0; i < N; i++) {
        ws[i] = (worker){.c = c, .k = kinds[i % 4]};
        assert_int_equal(pthread_create(&t[i], NULL, work, &ws[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        if (ws[i].rc)
            fail_msg("thread %d (kind %d): %s: %s", i, ws[i].k, redis_lock_code_name(ws[i].rc),
                     redis_lock_last_error());
    }
    print_message("%d threads on a fair lock, a shared lock (readers and writers) and a "
                  "semaphore of 3: %d violations, up to %d shared holders and %d permits at "
                  "once\n", N, atomic_load(&bad), atomic_load(&max_readers),
                  atomic_load(&max_permits));
    assert_int_equal(atomic_load(&bad), 0);
    assert_true(atomic_load(&max_permits) <= 3);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:t-fair lock:t-rw semaphore:t-sem"), 0);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(prims_threads_one_client, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
