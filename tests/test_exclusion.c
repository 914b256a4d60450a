/* labels: forks */
/* Mutual exclusion and fencing tokens across many processes, each with its own client. */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    int64_t enter_us, exit_us;
    int64_t token;
    int rc;
    int done;
} hold;

static void *shared(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    memset(p, 0, n);
    return p;
}

/* Children wait on a pipe until the parent closes its end, so they all start at once. */
static void wait_go(int fd)
{
    char ch;
    while (read(fd, &ch, 1) < 0 && errno == EINTR) {
    }
}

static int cmp_enter(const void *a, const void *b)
{
    const hold *x = a, *y = b;
    return x->enter_us < y->enter_us ? -1 : x->enter_us > y->enter_us;
}

/* Fork n children running body(i); wait for them all (at most limit_ms), fail on any
 * child that did not exit 0. */
static void run_children(int n, void (*body)(int i, int go_fd, void *arg), void *arg,
                         int64_t limit_ms)
{
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    assert_non_null(pids);
    for (int i = 0; i < n; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(go[1]);
            body(i, go[0], arg);
            _exit(0);
        }
    }
    close(go[0]);
    close(go[1]); /* go */
    int64_t deadline = rt_now_ms() + limit_ms;
    int left = n, bad = 0;
    while (left > 0) {
        int status;
        pid_t p = waitpid(-1, &status, WNOHANG);
        if (p > 0) {
            left--;
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                bad++;
            continue;
        }
        if (rt_now_ms() > deadline) {
            for (int i = 0; i < n; i++)
                kill(pids[i], SIGKILL);
            while (waitpid(-1, NULL, 0) > 0) {
            }
            free(pids);
            fail_msg("%d of %d children still running after %lld ms", left, n,
                     (long long)limit_ms);
        }
        rt_sleep_ms(5);
    }
    free(pids);
    assert_int_equal(bad, 0);
}

static long long get_int(const char *key)
{
    redisReply *r = rt_cmd(&rt_main, "GET %s", key);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    long long v = strtoll(r->str, NULL, 10);
    freeReplyObject(r);
    return v;
}

/* ---- exclusion ---- */

#define NPROC 100

static const char *server_url;

static void exclusion_child(int i, int go_fd, void *arg)
{
    hold *h = (hold *)arg + i;
    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    co.url = server_url;
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    wait_go(go_fd);
    h->rc = redis_lock_client_open(&c, &co);
    if (h->rc)
        _exit(2);
    h->rc = redis_lock_new(&l, c, "excl", NULL);
    if (h->rc)
        _exit(3);
    h->rc = redis_lock_acquire(l, 60000);
    if (h->rc == 0) {
        h->enter_us = rt_now_us();
        /* hold it for a while, doing nothing a scheduler could skip */
        int64_t until = rt_now_us() + 2000;
        while (rt_now_us() < until) {
        }
        h->exit_us = rt_now_us();
        h->rc = redis_lock_release(l);
        h->done = 1;
    }
    redis_lock_free(l);
    redis_lock_client_close(c);
    _exit(h->rc == 0 ? 0 : 4);
}

static void exclusion_100_processes(void **state)
{
    (void)state;
    hold *holds = shared(sizeof(hold) * NPROC);
    server_url = rt_main.url;
    int64_t t0 = rt_now_ms();
    run_children(NPROC, exclusion_child, holds, 120000);
    int64_t took = rt_now_ms() - t0;
    int acquired = 0;
    for (int i = 0; i < NPROC; i++) {
        if (holds[i].done && holds[i].rc == 0)
            acquired++;
        else
            print_message("child %d: rc %d (%s)\n", i, holds[i].rc,
                          redis_lock_code_name(holds[i].rc));
    }
    assert_int_equal(acquired, NPROC);
    qsort(holds, NPROC, sizeof *holds, cmp_enter);
    int overlaps = 0;
    for (int i = 1; i < NPROC; i++) {
        assert_true(holds[i].exit_us > holds[i].enter_us);
        if (holds[i].enter_us < holds[i - 1].exit_us)
            overlaps++;
    }
    print_message("%d processes took the lock one after another in %lld ms\n", NPROC,
                  (long long)took);
    assert_int_equal(overlaps, 0);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:excl"), 0);
    munmap(holds, sizeof(hold) * NPROC);
}

/* ---- fencing ---- */

#define FENCE_PROCS 20
#define FENCE_ROUNDS 10

static void fencing_child(int i, int go_fd, void *arg)
{
    hold *h = (hold *)arg + i * FENCE_ROUNDS;
    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    co.url = server_url;
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.fencing = true;
    o.expire_ms = 10000;
    wait_go(go_fd);
    if (redis_lock_client_open(&c, &co) || redis_lock_new(&l, c, "fenced", &o))
        _exit(2);
    int bad = 0;
    for (int r = 0; r < FENCE_ROUNDS; r++) {
        h[r].rc = redis_lock_acquire(l, 10000);
        if (h[r].rc) {
            bad = 1;
            continue;
        }
        h[r].enter_us = rt_now_us();
        h[r].token = redis_lock_fencing_token(l);
        h[r].exit_us = rt_now_us();
        h[r].rc = redis_lock_release(l);
        h[r].done = 1;
        bad |= h[r].rc != 0;
    }
    redis_lock_free(l);
    redis_lock_client_close(c);
    _exit(bad);
}

static void fencing_tokens_increase_across_processes(void **state)
{
    (void)state;
    const int n = FENCE_PROCS * FENCE_ROUNDS;
    hold *holds = shared(sizeof(hold) * (size_t)n);
    server_url = rt_main.url;
    run_children(FENCE_PROCS, fencing_child, holds, 60000);
    qsort(holds, (size_t)n, sizeof *holds, cmp_enter);
    for (int i = 0; i < n; i++) {
        assert_int_equal(holds[i].done, 1);
        assert_true(holds[i].token > 0);
        if (i > 0 && holds[i].token <= holds[i - 1].token)
            fail_msg("token %lld taken after token %lld", (long long)holds[i].token,
                     (long long)holds[i - 1].token);
    }
    /* tokens are max(counter + 1, the server's clock in microseconds): strictly increasing
     * (above), from the clock, and the counter holds the last one */
    assert_true(holds[0].token > 1000000000000000LL);
    assert_int_equal(get_int("lock-fence:fenced"), holds[n - 1].token);
    munmap(holds, sizeof(hold) * (size_t)n);
}

static void fencing_token_zero_without_fencing(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *plain = NULL, *fenced = NULL;
    redis_lock_options o;
    redis_lock_options_init(&o);
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&plain, c, "f0", &o));
    o.fencing = true;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&fenced, c, "f0", &o));
    assert_int_equal(redis_lock_fencing_token(fenced), 0); /* before any acquire */
    assert_int_equal(redis_lock_fencing_token(NULL), 0);
    for (int i = 0; i < 3; i++) {
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(plain, 0));
        assert_int_equal(redis_lock_fencing_token(plain), 0);
        assert_rl(REDIS_LOCK_OK, redis_lock_release(plain));
    }
    /* acquisitions without fencing do not count */
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock-fence:f0"), 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(fenced, 0));
    int64_t first = redis_lock_fencing_token(fenced);
    assert_true(first > 1000000000000000LL);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(fenced));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(plain, 0));
    assert_int_equal(redis_lock_fencing_token(plain), 0);
    /* a BUSY acquire does not count either */
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(fenced, 0));
    assert_int_equal(get_int("lock-fence:f0"), first);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(plain));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(fenced, 0));
    int64_t second = redis_lock_fencing_token(fenced);
    assert_true(second > first); /* max(counter + 1, clock) */
    assert_int_equal(get_int("lock-fence:f0"), second);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(fenced));
    redis_lock_free(plain);
    redis_lock_free(fenced);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(exclusion_100_processes, rt_flush),
        cmocka_unit_test_setup(fencing_tokens_increase_across_processes, rt_flush),
        cmocka_unit_test_setup(fencing_token_zero_without_fencing, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
