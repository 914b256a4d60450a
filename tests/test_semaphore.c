/* labels: forks */
/* The semaphore (docs/design.md 7.3) on a real server: never more than N holders across
 * processes (measured by the holders), a holder killed while holding a permit (it comes
 * back at its expiry), a limit conflict, a release waking a waiter, renewal, fencing and
 * the holders' list. */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static redis_lock *sem(redis_lock_client *c, const char *name, int limit, int64_t expire_ms,
                       bool renew)
{
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = expire_ms;
    o.auto_renewal = renew;
    o.fencing = true;
    redis_lock *l = NULL;
    if (redis_lock_semaphore_new(&l, c, name, limit, &o))
        fail_msg("redis_lock_semaphore_new: %s", redis_lock_last_error());
    return l;
}

static redis_lock_client *child_client(void)
{
    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    co.url = rt_main.url;
    redis_lock_client *c = NULL;
    if (redis_lock_client_open(&c, &co))
        _exit(2);
    return c;
}

static void semaphore_basics(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *bad = NULL;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_semaphore_new(&bad, c, "s", 0, NULL));
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.fair = true;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_semaphore_new(&bad, c, "s", 2, &o));
    redis_lock *a = sem(c, "s", 2, 0, false), *b = sem(c, "s", 2, 300, true);
    redis_lock *d = sem(c, "s", 2, 5000, false), *other = sem(c, "s", 3, 0, false);
    assert_int_equal(redis_lock_semaphore_limit(a), 2);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    int64_t ta = redis_lock_fencing_token(a);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(b, 0));
    assert_true(redis_lock_fencing_token(b) > ta);
    assert_rl(REDIS_LOCK_EALREADY, redis_lock_acquire(a, 0));
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(d, 0));
    /* another limit while permits are held: EINVAL naming both */
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_acquire(other, 0));
    const char *msg = redis_lock_last_error();
    assert_non_null(strstr(msg, "limit 2"));
    assert_non_null(strstr(msg, "limit 3"));
    char *owner = NULL;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_get_owner_id(a, &owner));
    bool locked = false;
    assert_rl(REDIS_LOCK_OK, redis_lock_locked(d, &locked));
    assert_true(locked);
    /* b's 300 ms permit is renewed by the renewal thread */
    rt_sleep_ms(900);
    redis_lock_holder *h = NULL;
    size_t n = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_holders(d, &h, &n));
    assert_int_equal(n, 2);
    int with_ttl = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(strcmp(h[i].id, redis_lock_id(a)) == 0 ||
                    strcmp(h[i].id, redis_lock_id(b)) == 0);
        if (strcmp(h[i].id, redis_lock_id(a)) == 0)
            assert_int_equal(h[i].ttl_ms, -1);
        else
            with_ttl += h[i].ttl_ms > 0 && h[i].ttl_ms <= 300;
    }
    assert_int_equal(with_ttl, 1);
    redis_lock_holders_free(h, n);
    assert_rl(REDIS_LOCK_ENOEXPIRE, redis_lock_extend(a, 1000));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(a));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(a));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(d, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(d, 9000));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(b));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(d));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS semaphore:s semaphore-limit:s"), 0);
    /* with no holder left, another limit is taken */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(other, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(other));
    /* the lock of the same name is another thing */
    redis_lock *l = rt_new_lock(c, "s", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_holders(l, &h, &n));
    assert_int_equal(n, 1);
    assert_string_equal(h[0].id, redis_lock_id(l));
    redis_lock_holders_free(h, n);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(a));
    redis_lock_free(l);
    redis_lock_free(other);
    redis_lock_free(d);
    redis_lock_free(b);
    redis_lock_free(a);
    redis_lock_client_close(c);
}

/* ---- never more than N, across processes ---- */

#define PROCS 12
#define LIMIT 3
#define ROUNDS 10

typedef struct {
    int rc, rounds, over, max_inside;
} report;

static void counting_child(report *rep, int i)
{
    redis_lock_client *c = child_client();
    redis_lock *l = sem(c, "n", LIMIT, 10000, true);
    redisContext *ctx = redisConnectUnix(rt_main.sock);
    if (!ctx || ctx->err)
        _exit(2);
    for (int r = 0; r < ROUNDS; r++) {
        if ((rep->rc = redis_lock_acquire(l, 60000)))
            break;
        redisReply *x = redisCommand(ctx, "INCR n-inside");
        int inside = x && x->type == REDIS_REPLY_INTEGER ? (int)x->integer : 1000;
        if (x)
            freeReplyObject(x);
        rep->over += inside > LIMIT;
        if (inside > rep->max_inside)
            rep->max_inside = inside;
        rt_sleep_ms(5 + i % 4);
        x = redisCommand(ctx, "DECR n-inside");
        if (x)
            freeReplyObject(x);
        if ((rep->rc = redis_lock_release(l)))
            break;
        rep->rounds++;
    }
    redisFree(ctx);
    redis_lock_free(l);
    redis_lock_client_close(c);
    _exit(rep->rc ? 3 : 0);
}

static void semaphore_never_more_than_n(void **state)
{
    (void)state;
    report *reps = mmap(NULL, sizeof(report) * PROCS, PROT_READ | PROT_WRITE,
                        MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(reps != MAP_FAILED);
    memset(reps, 0, sizeof(report) * PROCS);
    pid_t pids[PROCS];
    int64_t t0 = rt_now_ms();
    for (int i = 0; i < PROCS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            counting_child(&reps[i], i);
    }
    int bad = 0;
    for (int i = 0; i < PROCS; i++) {
        int status;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    assert_int_equal(bad, 0);
    int over = 0, max_inside = 0;
    for (int i = 0; i < PROCS; i++) {
        assert_int_equal(reps[i].rounds, ROUNDS);
        over += reps[i].over;
        if (reps[i].max_inside > max_inside)
            max_inside = reps[i].max_inside;
    }
    print_message("%d processes x %d rounds through a semaphore of %d in %lld ms: at most %d "
                  "inside at once, %d times more than %d\n", PROCS, ROUNDS, LIMIT,
                  (long long)(rt_now_ms() - t0), max_inside, over, LIMIT);
    assert_int_equal(over, 0);
    assert_true(max_inside > 1 && max_inside <= LIMIT);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS semaphore:n semaphore-limit:n"), 0);
    munmap(reps, sizeof(report) * PROCS);
}

/* ---- a holder killed while holding its permit ---- */

static void semaphore_killed_holder_permit_comes_back(void **state)
{
    (void)state;
    enum { EXPIRE = 1500 };
    int ready[2];
    assert_int_equal(pipe(ready), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        redis_lock_client *c = child_client();
        redis_lock *l = sem(c, "k", 1, EXPIRE, true);
        if (redis_lock_acquire(l, 0))
            _exit(3);
        assert_int_equal(write(ready[1], "x", 1), 1);
        for (;;)
            pause();
    }
    char ch;
    assert_int_equal(read(ready[0], &ch, 1), 1);
    rt_sleep_ms(EXPIRE); /* renewed meanwhile: still held */
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *w = sem(c, "k", 1, 5000, true);
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(w, 0));
    kill(pid, SIGKILL);
    int64_t killed = rt_now_ms();
    waitpid(pid, NULL, 0);
    /* what was left of the dead holder's permit when it died */
    redis_lock_holder *h = NULL;
    size_t n = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_holders(w, &h, &n));
    assert_int_equal(n, 1);
    int64_t left = h[0].ttl_ms + (rt_now_ms() - killed);
    redis_lock_holders_free(h, n);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(w, 20000));
    int64_t took = rt_now_ms() - killed;
    print_message("a permit of a killed holder (expiry %d ms, %lld ms left at the kill) taken "
                  "over %lld ms after the kill, %lld ms after the permit expired\n", EXPIRE,
                  (long long)left, (long long)took, (long long)(took - left));
    assert_true(took <= EXPIRE + 1000);
    assert_true(took >= left - 50); /* not before it expired (clock slack) */
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    close(ready[0]);
    close(ready[1]);
    redis_lock_free(w);
    redis_lock_client_close(c);
}

/* ---- a release wakes a waiter (its only timer is its deadline) ---- */

typedef struct {
    redis_lock *l;
    atomic_int rc; /* read by the main thread while the waiter runs */
} waiter_arg;

static void *waiter(void *p)
{
    waiter_arg *a = p;
    a->rc = redis_lock_acquire(a->l, -1);
    return NULL;
}

static void semaphore_release_wakes_a_waiter(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *h1 = sem(c, "w", 2, 0, false), *h2 = sem(c, "w", 2, 0, false);
    redis_lock *w = sem(c, "w", 2, 0, false);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h1, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h2, 0));
    waiter_arg a = {.l = w, .rc = -100};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter, &a), 0);
    rt_sleep_ms(300);
    assert_int_equal(a.rc, -100);
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h2));
    pthread_join(t, NULL);
    int64_t took = rt_now_ms() - t0;
    assert_rl(REDIS_LOCK_OK, a.rc);
    print_message("a semaphore waiter took the freed permit %lld ms after the release\n",
                  (long long)took);
    assert_true(took < 1000);
    /* cancel ends a waiting acquire holding nothing */
    a.rc = -100;
    a.l = h2;
    assert_int_equal(pthread_create(&t, NULL, waiter, &a), 0);
    rt_sleep_ms(200);
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel(h2));
    pthread_join(t, NULL);
    assert_rl(REDIS_LOCK_ECANCELED, a.rc);
    assert_int_equal(rt_cmd_int(&rt_main, "ZCARD semaphore:w"), 2);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h1));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    redis_lock_free(w);
    redis_lock_free(h2);
    redis_lock_free(h1);
    redis_lock_client_close(c);
}

/* Each release leaves one wake-up, the last one out too: N releases in a row while no
 * waiter is blocked leave N elements for the waiters to come (none is trimmed away). */
static void semaphore_every_release_signals(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *h[3];
    for (int i = 0; i < 3; i++) {
        h[i] = sem(c, "r", 3, 60000, false);
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h[i], 0));
    }
    for (int i = 0; i < 3; i++) {
        assert_rl(REDIS_LOCK_OK, redis_lock_release(h[i]));
        assert_int_equal(rt_cmd_int(&rt_main, "LLEN semaphore-signal:r"), i + 1);
    }
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS semaphore:r semaphore-limit:r"), 0);
    for (int i = 0; i < 3; i++)
        redis_lock_free(h[i]);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(semaphore_basics, rt_flush),
        cmocka_unit_test_setup(semaphore_every_release_signals, rt_flush),
        cmocka_unit_test_setup(semaphore_release_wakes_a_waiter, rt_flush),
        cmocka_unit_test_setup(semaphore_killed_holder_permit_comes_back, rt_flush),
        cmocka_unit_test_setup(semaphore_never_more_than_n, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
