/* labels: forks */
/* The fair lock (docs/design.md 7.1) across processes on a real server: exclusion measured
 * by the holders themselves (with plain and python-redis-lock peers on the same name),
 * arrival order, a waiter killed in the middle of the queue, waiters that time out or are
 * canceled leaving the queue, and the plain lock's calls on a fair handle. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"

typedef struct {
    int64_t enter_us, exit_us;
} span;

typedef struct {
    int rc;            /* the first failure of the child, 0 if none */
    int rounds_done;
    int violations;    /* INCR of the shared counter did not answer 1 */
    int place;         /* arrival-order test: the order in which it got the lock */
    int64_t acquired_ms;
    span spans[64];
} child_report;

static void *shared(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 0, n);
    return p;
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

static redis_lock *fair_lock(redis_lock_client *c, const char *name, int64_t expire_ms,
                             int64_t lease_ms, bool fair)
{
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = expire_ms;
    o.auto_renewal = expire_ms > 0;
    o.fair = fair;
    if (lease_ms)
        o.queue_lease_ms = lease_ms;
    redis_lock *l = NULL;
    int rc = redis_lock_new(&l, c, name, &o);
    if (rc)
        fail_msg("redis_lock_new: %s", redis_lock_last_error());
    return l;
}

/* A raw connection of the child's own, for the shared counter. */
static long long child_incr(redisContext *ctx, const char *verb, const char *key)
{
    redisReply *r = redisCommand(ctx, "%s %s", verb, key);
    long long v = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1000;
    if (r)
        freeReplyObject(r);
    return v;
}

static void wait_children(pid_t *pids, int n, int64_t limit_ms)
{
    int64_t deadline = rt_now_ms() + limit_ms;
    int left = n, bad = 0;
    for (int i = 0; i < n; i++)
        if (pids[i] <= 0)
            left--;
    while (left > 0) {
        int status;
        pid_t p = waitpid(-1, &status, WNOHANG);
        if (p > 0) {
            for (int i = 0; i < n; i++)
                if (pids[i] == p) {
                    left--;
                    pids[i] = 0;
                    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        bad++;
                }
            continue;
        }
        if (rt_now_ms() > deadline) {
            for (int i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGKILL);
            while (waitpid(-1, NULL, 0) > 0) {
            }
            fail_msg("%d of %d children still running after %lld ms", left, n,
                     (long long)limit_ms);
        }
        rt_sleep_ms(5);
    }
    assert_int_equal(bad, 0);
}

/* ---- the plain lock's calls on a fair handle ---- */

static void fair_basics(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    assert_int_equal(o.version, REDIS_LOCK_OPTIONS_VERSION);
    assert_int_equal(o.queue_lease_ms, 2000);
    assert_false(o.fair);
    o.fair = true;
    o.queue_lease_ms = 29;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "basics", &o));
    assert_non_null(strstr(redis_lock_last_error(), "queue_lease_ms"));
    o.queue_lease_ms = 2000;
    o.expire_ms = 5000;
    o.fencing = true;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "basics", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    int64_t t1 = redis_lock_fencing_token(l);
    assert_true(t1 > 0);
    rt_assert_owner(l, redis_lock_id(l));
    assert_rl(REDIS_LOCK_EALREADY, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(l, 9000));
    assert_true(rt_cmd_int(&rt_main, "PTTL lock:basics") > 8000);
    /* a plain handle and a fair one exclude each other on the one key */
    redis_lock *p = fair_lock(c, "basics", 5000, 0, false);
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(p, 0));
    redis_lock *f2 = fair_lock(c, "basics", 5000, 0, true);
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(f2, 0));
    /* a try-once acquire does not queue */
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock-queue:basics"), 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(l));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:basics"), 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 1000));
    assert_true(redis_lock_fencing_token(l) > t1);
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(l));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(l));
    /* a caller built against options version 1 (a struct that ends at on_lost_payload)
     * gets a plain lock, with the defaults for the later fields */
    struct {
        redis_lock_options o;
        char guard[64];
    } v1;
    memset(&v1, 0xff, sizeof v1);
    redis_lock_options_init(&v1.o);
    v1.o.version = 1;
    memset(&v1.o.fair, 0x01, sizeof v1.o - offsetof(redis_lock_options, fair));
    redis_lock *old = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&old, c, "basics-v1", &v1.o));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(old, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(old));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock-queue:basics-v1"), 0);
    redis_lock_free(old);
    v1.o.version = 3;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&old, c, "basics-v1", &v1.o));
    assert_null(old);
    redis_lock_free(f2);
    redis_lock_free(p);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

/* ---- exclusion with fair, plain and python-redis-lock peers ---- */

#define FAIR_PROCS 12
#define PLAIN_PROCS 4
#define ROUNDS 15

static void mixed_child(int i, child_report *rep, bool fair)
{
    redis_lock_client *c = child_client();
    redis_lock *l = fair_lock(c, "mixed", 10000, 0, fair);
    redisContext *ctx = redisConnectUnix(rt_main.sock);
    if (!ctx || ctx->err)
        _exit(2);
    for (int r = 0; r < ROUNDS; r++) {
        int rc = redis_lock_acquire(l, 60000);
        if (rc) {
            rep->rc = rc;
            break;
        }
        rep->spans[r].enter_us = rt_now_us();
        if (child_incr(ctx, "INCR", "mixed-counter") != 1)
            rep->violations++;
        rt_sleep_ms(1 + i % 3);
        child_incr(ctx, "DECR", "mixed-counter");
        rep->spans[r].exit_us = rt_now_us();
        if ((rc = redis_lock_release(l))) {
            rep->rc = rc;
            break;
        }
        rep->rounds_done++;
    }
    redisFree(ctx);
    redis_lock_free(l);
    redis_lock_client_close(c);
    _exit(rep->rc ? 3 : 0);
}

static void driver_path(char *out, size_t n)
{
    const char *src = getenv("REDIS_LOCK_TEST_SRC");
    if (src && *src) {
        snprintf(out, n, "%s/tests/interop/prl_driver.py", src);
    } else {
        char here[512];
        snprintf(here, sizeof here, "%s", __FILE__);
        snprintf(out, n, "%s/interop/prl_driver.py", dirname(here));
    }
}

/* Start python-redis-lock's protocol (tests/interop) running `commands`; its output goes
 * to a pipe whose read end is returned in *out_fd. */
static pid_t python_peer(const char *commands, int *out_fd)
{
    char script[600];
    driver_path(script, sizeof script);
    if (access(script, R_OK) != 0 || access(PYTHON, X_OK) != 0)
        fail_msg("%s or %s is missing: the test needs Debian's python3 with python3-redis",
                 script, PYTHON);
    int to[2], from[2];
    assert_int_equal(pipe2(to, O_CLOEXEC), 0);
    assert_int_equal(pipe2(from, O_CLOEXEC), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        execl(PYTHON, PYTHON, "-u", script, rt_main.sock, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    size_t n = strlen(commands);
    assert_int_equal(write(to[1], commands, n), (ssize_t)n);
    close(to[1]);
    *out_fd = from[0];
    return pid;
}

static void read_all(int fd, char *buf, size_t n)
{
    size_t len = 0;
    for (;;) {
        ssize_t got = read(fd, buf + len, n - 1 - len);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    buf[len] = '\0';
    close(fd);
}

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->enter_us < y->enter_us ? -1 : x->enter_us > y->enter_us;
}

static void fair_excludes_plain_and_python(void **state)
{
    (void)state;
    enum { N = FAIR_PROCS + PLAIN_PROCS };
    child_report *reps = shared(sizeof(child_report) * N);
    int py_out;
    pid_t py = python_peer("loop mixed 40 mixed-counter\nquit\n", &py_out);
    pid_t pids[N];
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            mixed_child(i, &reps[i], i < FAIR_PROCS);
    }
    int64_t t0 = rt_now_ms();
    wait_children(pids, N, 180000);
    char out[512];
    read_all(py_out, out, sizeof out);
    int status;
    waitpid(py, &status, 0);
    int pv = -1, pt = -1;
    if (sscanf(out, "ready\ndone %d %d", &pv, &pt) != 2)
        fail_msg("the python peer said \"%s\"", out);
    span *all = calloc(N * ROUNDS, sizeof *all);
    assert_non_null(all);
    int n = 0, violations = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(reps[i].rc, 0);
        assert_int_equal(reps[i].rounds_done, ROUNDS);
        violations += reps[i].violations;
        for (int r = 0; r < ROUNDS; r++)
            all[n++] = reps[i].spans[r];
    }
    qsort(all, (size_t)n, sizeof *all, cmp_span);
    int overlaps = 0;
    for (int i = 1; i < n; i++)
        overlaps += all[i].enter_us < all[i - 1].exit_us;
    print_message("%d fair and %d plain processes x %d rounds and a python-redis-lock peer "
                  "x 40 in %lld ms: %d overlaps, %d+%d counter violations, %d python "
                  "timeouts\n", FAIR_PROCS, PLAIN_PROCS, ROUNDS, (long long)(rt_now_ms() - t0),
                  overlaps, violations, pv, pt);
    assert_int_equal(overlaps, 0);
    assert_int_equal(violations, 0);
    assert_int_equal(pv, 0);
    assert_int_equal(pt, 0);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:mixed"), 0);
    assert_int_equal(rt_cmd_int(&rt_main, "ZCARD lock-queue:mixed"), 0);
    free(all);
    munmap(reps, sizeof(child_report) * N);
}

/* ---- arrival order ---- */

#define ORDER_PROCS 8

static void order_child(child_report *rep, int64_t lease_ms)
{
    redis_lock_client *c = child_client();
    redis_lock *l = fair_lock(c, "order", 10000, lease_ms, true);
    redisContext *ctx = redisConnectUnix(rt_main.sock);
    if (!ctx || ctx->err)
        _exit(2);
    int rc = redis_lock_acquire(l, 60000);
    if (rc) {
        fprintf(stderr, "child: acquire: %s\n", redis_lock_last_error());
        rep->rc = rc;
        _exit(3);
    }
    rep->acquired_ms = rt_now_ms();
    rep->place = (int)child_incr(ctx, "INCR", "order-place");
    rt_sleep_ms(20);
    rep->rc = redis_lock_release(l);
    redisFree(ctx);
    redis_lock_free(l);
    redis_lock_client_close(c);
    _exit(rep->rc ? 4 : 0);
}

/* Wait until the queue holds n waiters. */
static void wait_queue(const char *key, long long n)
{
    int64_t end = rt_now_ms() + 10000;
    while (rt_cmd_int(&rt_main, "ZCARD %s", key) != n) {
        if (rt_now_ms() > end)
            fail_msg("%s never held %lld waiters (has %lld)", key, n,
                     rt_cmd_int(&rt_main, "ZCARD %s", key));
        rt_sleep_ms(10);
    }
}

static void fair_arrival_order(void **state)
{
    (void)state;
    child_report *reps = shared(sizeof(child_report) * ORDER_PROCS);
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *holder = fair_lock(c, "order", 10000, 0, true);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(holder, 0));
    pid_t pids[ORDER_PROCS];
    for (int i = 0; i < ORDER_PROCS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            order_child(&reps[i], 300); /* short leases: many renewals while they wait */
        wait_queue("lock-queue:order", i + 1);
    }
    rt_sleep_ms(700); /* a few lease renewals each: nobody loses its place */
    assert_int_equal(rt_cmd_int(&rt_main, "ZCARD lock-queue:order"), ORDER_PROCS);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(holder));
    wait_children(pids, ORDER_PROCS, 60000);
    for (int i = 0; i < ORDER_PROCS; i++) {
        if (reps[i].place != i + 1)
            fail_msg("waiter %d (started %d-th) got the lock %d-th", i, i + 1, reps[i].place);
        if (i > 0)
            print_message("hand-off %d -> %d: %lld ms (holds 20 ms)\n", i - 1, i,
                          (long long)(reps[i].acquired_ms - reps[i - 1].acquired_ms));
    }
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:order"), 0);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock-queue:order"), 0);
    redis_lock_free(holder);
    redis_lock_client_close(c);
    munmap(reps, sizeof(child_report) * ORDER_PROCS);
}

/* ---- a waiter killed in the middle of the queue ---- */

#define LEASE_MS 600

static void dead_child(child_report *rep)
{
    redis_lock_client *c = child_client();
    redis_lock *l = fair_lock(c, "dead", 10000, LEASE_MS, true);
    int rc = redis_lock_acquire(l, 60000);
    if (rc) {
        fprintf(stderr, "child: acquire: %s\n", redis_lock_last_error());
        rep->rc = rc;
        _exit(3);
    }
    rep->acquired_ms = rt_now_ms();
    rt_sleep_ms(10);
    rep->rc = redis_lock_release(l);
    redis_lock_free(l);
    redis_lock_client_close(c);
    _exit(rep->rc ? 4 : 0);
}

static void fair_dead_waiter_delays_at_most_its_lease(void **state)
{
    (void)state;
    child_report *reps = shared(sizeof(child_report) * 3);
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *holder = fair_lock(c, "dead", 10000, LEASE_MS, true);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(holder, 0));
    pid_t pids[3];
    for (int i = 0; i < 3; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            dead_child(&reps[i]);
        wait_queue("lock-queue:dead", i + 1);
    }
    /* the middle one dies; the first gets the lock at once and, 10 ms later, grants it to
     * the dead one: the last must have it within the dead one's lease (+ slack) */
    kill(pids[1], SIGKILL);
    int64_t killed = rt_now_ms();
    waitpid(pids[1], NULL, 0);
    pids[1] = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_release(holder));
    wait_children(pids, 3, 30000);
    assert_true(reps[0].acquired_ms > 0);
    assert_true(reps[2].acquired_ms > reps[0].acquired_ms);
    int64_t delay = reps[2].acquired_ms - killed;
    print_message("the waiter behind a killed one got the lock %lld ms after the kill "
                  "(queue_lease_ms %d)\n", (long long)delay, LEASE_MS);
    assert_true(delay <= LEASE_MS + 1000);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:dead"), 0);
    redis_lock_free(holder);
    redis_lock_client_close(c);
    munmap(reps, sizeof(child_report) * 3);
}

/* ---- timeouts and cancel leave the queue ---- */

typedef struct {
    redis_lock *l;
    atomic_int rc; /* read by the main thread while the waiter runs */
} waiter_arg;

static void *waiter_thread(void *p)
{
    waiter_arg *a = p;
    a->rc = redis_lock_acquire(a->l, -1);
    return NULL;
}

static void fair_timeout_and_cancel_leave_the_queue(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *holder = fair_lock(c, "leave", 0, 0, true);
    redis_lock *w = fair_lock(c, "leave", 0, 0, true);
    redis_lock *w2 = fair_lock(c, "leave", 0, 0, true);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(holder, 0));
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(w, 300));
    int64_t took = rt_now_ms() - t0;
    assert_true(took >= 300 && took < 3000);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock-queue:leave"), 0);
    assert_int_equal(rt_cmd_int(&rt_main, "ZCARD lock-lease:leave"), 0);
    /* cancel from another thread */
    waiter_arg a = {.l = w};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter_thread, &a), 0);
    wait_queue("lock-queue:leave", 1);
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel(w));
    pthread_join(t, NULL);
    assert_rl(REDIS_LOCK_ECANCELED, a.rc);
    assert_int_equal(rt_cmd_int(&rt_main, "ZCARD lock-queue:leave"), 0);
    /* a waiter that leaves does not hold up the one behind it: w queues, w2 behind it,
     * w gives up, and the release goes to w2 */
    waiter_arg b = {.l = w2};
    a.rc = -100;
    pthread_t tw, tw2;
    assert_int_equal(pthread_create(&tw, NULL, waiter_thread, &a), 0);
    wait_queue("lock-queue:leave", 1);
    assert_int_equal(pthread_create(&tw2, NULL, waiter_thread, &b), 0);
    wait_queue("lock-queue:leave", 2);
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel(w));
    pthread_join(tw, NULL);
    assert_rl(REDIS_LOCK_ECANCELED, a.rc);
    wait_queue("lock-queue:leave", 1);
    t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_release(holder));
    pthread_join(tw2, NULL);
    assert_rl(REDIS_LOCK_OK, b.rc);
    print_message("the remaining waiter took the lock %lld ms after the release\n",
                  (long long)(rt_now_ms() - t0));
    rt_assert_owner(w2, redis_lock_id(w2));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w2));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock-queue:leave"), 0);
    redis_lock_free(w2);
    redis_lock_free(w);
    redis_lock_free(holder);
    redis_lock_client_close(c);
}

/* A plain holder's release (which knows nothing of the queue) wakes a fair waiter through
 * the signal list, long before the waiter's own timer. */
static void fair_waiter_woken_by_plain_release(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *plain = fair_lock(c, "woken", 0, 0, false);
    redis_lock *w = fair_lock(c, "woken", 0, 9000, true); /* its own timer: every 3 s */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(plain, 0));
    waiter_arg a = {.l = w};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, waiter_thread, &a), 0);
    wait_queue("lock-queue:woken", 1);
    rt_sleep_ms(100);
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_release(plain));
    pthread_join(t, NULL);
    int64_t took = rt_now_ms() - t0;
    assert_rl(REDIS_LOCK_OK, a.rc);
    print_message("a fair waiter took the lock %lld ms after a plain release\n",
                  (long long)took);
    assert_true(took < 1500);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    redis_lock_free(w);
    redis_lock_free(plain);
    redis_lock_client_close(c);
}

/* A server restart (kill -9: the queue and the lock are gone) and a flushed script cache
 * while fair waiters wait: they come back, queue again, and get the lock one at a time. */
static void fair_waiters_survive_restart_and_script_flush(void **state)
{
    (void)state;
    rt_server s;
    rt_server_start(&s, NULL, 0);
    redis_lock_client *hc = rt_client(&s), *wc = rt_client(&s);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.fair = true;
    o.queue_lease_ms = 600;
    redis_lock *h = NULL, *w1 = NULL, *w2 = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&h, hc, "rs", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&w1, wc, "rs", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&w2, wc, "rs", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    waiter_arg a1 = {.l = w1, .rc = -100}, a2 = {.l = w2, .rc = -100};
    pthread_t t1, t2;
    assert_int_equal(pthread_create(&t1, NULL, waiter_thread, &a1), 0);
    int64_t end = rt_now_ms() + 5000;
    while (rt_cmd_int(&s, "ZCARD lock-queue:rs") != 1 && rt_now_ms() < end)
        rt_sleep_ms(10);
    assert_int_equal(pthread_create(&t2, NULL, waiter_thread, &a2), 0);
    while (rt_cmd_int(&s, "ZCARD lock-queue:rs") != 2 && rt_now_ms() < end)
        rt_sleep_ms(10);
    assert_int_equal(rt_cmd_int(&s, "ZCARD lock-queue:rs"), 2);
    redisReply *r = rt_cmd(&s, "SCRIPT FLUSH");
    freeReplyObject(r);
    rt_sleep_ms(400); /* a lease renewal or two after the flush: EVAL, places kept */
    assert_int_equal(rt_cmd_int(&s, "ZCARD lock-queue:rs"), 2);
    int64_t t0 = rt_now_ms();
    rt_server_restart(&s);
    /* one of them gets the lock (the key died with the server) */
    end = rt_now_ms() + 10000;
    while (a1.rc == -100 && a2.rc == -100 && rt_now_ms() < end)
        rt_sleep_ms(10);
    int64_t took = rt_now_ms() - t0;
    print_message("a fair waiter got the lock %lld ms after a server restart began\n",
                  (long long)took);
    assert_true(took < 5000);
    redis_lock *first = a1.rc != -100 ? w1 : w2;
    pthread_t other_t = a1.rc != -100 ? t2 : t1;
    waiter_arg *other = a1.rc != -100 ? &a2 : &a1;
    pthread_join(a1.rc != -100 ? t1 : t2, NULL);
    assert_rl(REDIS_LOCK_OK, a1.rc != -100 ? a1.rc : a2.rc);
    rt_sleep_ms(200);
    assert_int_equal(other->rc, -100); /* still waiting, queued behind */
    assert_rl(REDIS_LOCK_OK, redis_lock_release(first));
    pthread_join(other_t, NULL);
    assert_rl(REDIS_LOCK_OK, other->rc);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(other->l));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(h));
    redis_lock_free(h);
    redis_lock_free(w1);
    redis_lock_free(w2);
    redis_lock_client_close(hc);
    redis_lock_client_close(wc);
    rt_server_stop(&s);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(fair_basics, rt_flush),
        cmocka_unit_test_setup(fair_timeout_and_cancel_leave_the_queue, rt_flush),
        cmocka_unit_test_setup(fair_waiter_woken_by_plain_release, rt_flush),
        cmocka_unit_test_setup(fair_arrival_order, rt_flush),
        cmocka_unit_test_setup(fair_dead_waiter_delays_at_most_its_lease, rt_flush),
        cmocka_unit_test_setup(fair_excludes_plain_and_python, rt_flush),
        cmocka_unit_test(fair_waiters_survive_restart_and_script_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
