/* labels: forks */
/* The shared lock (docs/design.md 7.2) on a real server: many shared holders at once or one
 * exclusive holder (a plain handle of the same name, or python-redis-lock), measured by the
 * processes themselves; a waiting writer is not starved by a stream of shared holders;
 * renewal, extend and loss of a shared hold. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"

typedef struct {
    int rc;
    int rounds;
    int violations;
    int max_readers; /* the most shared holders this one saw inside with it */
    int64_t acquired_ms;
} report;

static void *shared_mem(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 0, n);
    return p;
}

static redis_lock *new_lock(redis_lock_client *c, const char *name, int64_t expire_ms,
                            bool shared)
{
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = expire_ms;
    o.auto_renewal = expire_ms > 0;
    o.shared = shared;
    redis_lock *l = NULL;
    if (redis_lock_new(&l, c, name, &o))
        fail_msg("redis_lock_new: %s", redis_lock_last_error());
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

static long long cmd_int(redisContext *ctx, const char *fmt, const char *key)
{
    redisReply *r = redisCommand(ctx, fmt, key);
    long long v = -1000;
    if (r && r->type == REDIS_REPLY_INTEGER)
        v = r->integer;
    else if (r && r->type == REDIS_REPLY_STRING)
        v = strtoll(r->str, NULL, 10);
    else if (r && r->type == REDIS_REPLY_NIL)
        v = 0;
    if (r)
        freeReplyObject(r);
    return v;
}

static void wait_all(pid_t *pids, int n, int64_t limit_ms)
{
    int64_t deadline = rt_now_ms() + limit_ms;
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int status;
        while (waitpid(pids[i], &status, WNOHANG) == 0) {
            if (rt_now_ms() > deadline) {
                for (int j = 0; j < n; j++)
                    kill(pids[j], SIGKILL);
                while (waitpid(-1, NULL, 0) > 0) {
                }
                fail_msg("children still running after %lld ms", (long long)limit_ms);
            }
            rt_sleep_ms(5);
        }
        bad += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    assert_int_equal(bad, 0);
}

static void shared_basics(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *r1 = new_lock(c, "b", 300, true), *r2 = new_lock(c, "b", 0, true);
    redis_lock *w = new_lock(c, "b", 0, false);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.shared = o.fair = true;
    redis_lock *bad = NULL;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&bad, c, "b", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(r1, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(r2, 0));
    assert_rl(REDIS_LOCK_EALREADY, redis_lock_acquire(r2, 0));
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(w, 0));
    /* a try-once exclusive acquire does not count as a waiting writer */
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock-writers:b"), 0);
    assert_int_equal(rt_cmd_int(&rt_main, "ZCARD lock-shared:b"), 2);
    /* r2 has no expiry: neither has the key */
    assert_int_equal(rt_cmd_int(&rt_main, "PTTL lock:b"), -1);
    char *owner = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_get_owner_id(w, &owner));
    assert_string_equal(owner, "(shared)");
    free(owner);
    assert_rl(REDIS_LOCK_ENOEXPIRE, redis_lock_extend(r2, 1000));
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(r1, 1000));
    /* r1 auto-renews a 300 ms hold */
    rt_sleep_ms(900);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(r2));
    assert_true(rt_cmd_int(&rt_main, "PTTL lock:b") > 0);
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(r2));
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(w, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(r1));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:b lock-shared:b"), 0);
    /* exclusive held: shared refused */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(w, 0));
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(r1, 0));
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(r1, 200));
    assert_true(rt_now_ms() - t0 >= 200);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    /* reset: a shared holder learns it has lost its hold */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(r2, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(w));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(w, 0));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(r2));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    /* a reset while shared: the next shared holder is alone (the reset ones hold nothing) */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(r2, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(w));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(r1, 0));
    assert_int_equal(rt_cmd_int(&rt_main, "ZCARD lock-shared:b"), 1);
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(r2));
    redis_lock_holder *h = NULL;
    size_t n = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_holders(w, &h, &n));
    assert_int_equal(n, 1);
    assert_string_equal(h[0].id, redis_lock_id(r1));
    assert_true(h[0].ttl_ms > 0 && h[0].ttl_ms <= 300);
    redis_lock_holders_free(h, n);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(r1));
    redis_lock_free(w);
    redis_lock_free(r2);
    redis_lock_free(r1);
    redis_lock_client_close(c);
}

/* ---- readers, plain writers and a python-redis-lock writer ---- */

#define READERS 8
#define WRITERS 3
#define ROUNDS 12

static void reader(report *rep, int i)
{
    redis_lock_client *c = child_client();
    redis_lock *l = new_lock(c, "rw", 10000, true);
    redisContext *ctx = redisConnectUnix(rt_main.sock);
    if (!ctx || ctx->err)
        _exit(2);
    for (int r = 0; r < ROUNDS; r++) {
        if ((rep->rc = redis_lock_acquire(l, 60000)))
            break;
        int inside = (int)cmd_int(ctx, "INCR %s", "rw-readers");
        if (inside > rep->max_readers)
            rep->max_readers = inside;
        if (cmd_int(ctx, "GET %s", "rw-writers") != 0)
            rep->violations++;
        rt_sleep_ms(5 + i % 5);
        if (cmd_int(ctx, "GET %s", "rw-writers") != 0)
            rep->violations++;
        cmd_int(ctx, "DECR %s", "rw-readers");
        if ((rep->rc = redis_lock_release(l)))
            break;
        rep->rounds++;
    }
    redisFree(ctx);
    redis_lock_free(l);
    redis_lock_client_close(c);
    _exit(rep->rc ? 3 : 0);
}

static void writer(report *rep)
{
    redis_lock_client *c = child_client();
    redis_lock *l = new_lock(c, "rw", 10000, false);
    redisContext *ctx = redisConnectUnix(rt_main.sock);
    if (!ctx || ctx->err)
        _exit(2);
    for (int r = 0; r < ROUNDS; r++) {
        if ((rep->rc = redis_lock_acquire(l, 60000)))
            break;
        if (cmd_int(ctx, "INCR %s", "rw-writers") != 1)
            rep->violations++;
        if (cmd_int(ctx, "GET %s", "rw-readers") != 0)
            rep->violations++;
        rt_sleep_ms(3);
        cmd_int(ctx, "DECR %s", "rw-writers");
        if ((rep->rc = redis_lock_release(l)))
            break;
        rep->rounds++;
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

static void shared_readers_and_writers(void **state)
{
    (void)state;
    enum { N = READERS + WRITERS };
    report *reps = shared_mem(sizeof(report) * N);
    int py_out;
    /* python-redis-lock as a writer: INCR rw-writers must answer 1 (no other writer), and
     * the readers check that it is 0 while they are inside */
    pid_t py = python_peer("loop rw 20 rw-writers\nquit\n", &py_out);
    pid_t pids[N];
    int64_t t0 = rt_now_ms();
    for (int i = 0; i < N; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            if (i < READERS)
                reader(&reps[i], i);
            writer(&reps[i]);
        }
    }
    wait_all(pids, N, 180000);
    char out[512];
    read_all(py_out, out, sizeof out);
    waitpid(py, NULL, 0);
    int pv = -1, pt = -1;
    if (sscanf(out, "ready\ndone %d %d", &pv, &pt) != 2)
        fail_msg("the python peer said \"%s\"", out);
    int violations = 0, max_readers = 0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(reps[i].rc, 0);
        assert_int_equal(reps[i].rounds, ROUNDS);
        violations += reps[i].violations;
        if (reps[i].max_readers > max_readers)
            max_readers = reps[i].max_readers;
    }
    print_message("%d shared and %d plain exclusive processes x %d rounds, python-redis-lock "
                  "x 20, in %lld ms: %d violations (python %d, %d timeouts); up to %d shared "
                  "holders at once\n", READERS, WRITERS, ROUNDS, (long long)(rt_now_ms() - t0),
                  violations, pv, pt, max_readers);
    assert_int_equal(violations, 0);
    assert_int_equal(pv, 0);
    assert_int_equal(pt, 0);
    assert_true(max_readers > 1);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:rw lock-shared:rw lock-writers:rw"), 0);
    munmap(reps, sizeof(report) * N);
}

/* ---- a writer is not starved by shared holders that keep overlapping ---- */

static void overlapping_reader(volatile int *stop)
{
    redis_lock_client *c = child_client();
    redis_lock *l = new_lock(c, "starve", 10000, true);
    int rc = 0;
    while (!*stop && !rc) {
        if ((rc = redis_lock_acquire(l, 30000)))
            break;
        rt_sleep_ms(60);
        rc = redis_lock_release(l);
    }
    redis_lock_free(l);
    redis_lock_client_close(c);
    _exit(rc ? 3 : 0);
}

static void shared_writer_not_starved(void **state)
{
    (void)state;
    enum { R = 4 };
    volatile int *stop = shared_mem(sizeof(int));
    pid_t pids[R];
    for (int i = 0; i < R; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            overlapping_reader(stop);
        rt_sleep_ms(15); /* staggered: at every moment some reader is inside */
    }
    int64_t end = rt_now_ms() + 5000;
    while (rt_cmd_int(&rt_main, "ZCARD lock-shared:starve") < 2 && rt_now_ms() < end)
        rt_sleep_ms(5);
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *w = new_lock(c, "starve", 10000, false);
    int64_t t0 = rt_now_ms();
    int rc = redis_lock_acquire(w, 20000);
    int64_t took = rt_now_ms() - t0;
    *stop = 1;
    print_message("a writer among 4 overlapping shared holders (60 ms each) got the lock "
                  "after %lld ms\n", (long long)took);
    assert_rl(REDIS_LOCK_OK, rc);
    assert_true(took < 3000);
    assert_int_equal(rt_cmd_int(&rt_main, "ZCARD lock-shared:starve"), 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    wait_all(pids, R, 60000);
    redis_lock_free(w);
    redis_lock_client_close(c);
    munmap((void *)stop, sizeof(int));
}

/* An id equal to the shared marker would be taken for shared holders (a shared try drops
 * a marker without holders; a release by that id deletes the holders' marker): refused. */
static void shared_marker_id_refused(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.id = "(shared)";
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "m", &o));
    assert_null(l);
    o.shared = true;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "m", &o));
    o.shared = false;
    o.fair = true;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "m", &o));
    o.fair = false;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_semaphore_new(&l, c, "m", 2, &o));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:m"), 0);
    redis_lock_client_close(c);
}

/* The holders' set lives no longer than its latest holder: a holder that died (never
 * released, never renewed) or was reset leaves no key behind. */
static void shared_holders_key_expires(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 300;
    o.shared = true;
    redis_lock *a = NULL, *b = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&a, c, "e", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&b, c, "e", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(b, 0));
    long long pttl = rt_cmd_int(&rt_main, "PTTL lock-shared:e");
    assert_true(pttl > 0 && pttl <= 300);
    /* extend moves it with the holder's expiry; a release, to the latest remaining one */
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(a, 5000));
    assert_true(rt_cmd_int(&rt_main, "PTTL lock-shared:e") > 1000);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(a));
    pttl = rt_cmd_int(&rt_main, "PTTL lock-shared:e");
    assert_true(pttl > 0 && pttl <= 300);
    /* b is never released: both keys are gone after its expiry */
    rt_sleep_ms(700);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:e lock-shared:e"), 0);
    /* a reset: the holders' set expires with its holders */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(a));
    rt_sleep_ms(700);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:e lock-shared:e"), 0);
    redis_lock_free(a);
    redis_lock_free(b);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(shared_basics, rt_flush),
        cmocka_unit_test_setup(shared_marker_id_refused, rt_flush),
        cmocka_unit_test_setup(shared_holders_key_expires, rt_flush),
        cmocka_unit_test_setup(shared_writer_not_starved, rt_flush),
        cmocka_unit_test_setup(shared_readers_and_writers, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
