/* labels: forks */
/* The cache stampede: many processes miss one cold key at once and the value is
 * computed exactly once; a computer killed mid-compute does not stall the others past
 * its lock's expiry. */
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

#define VALUE_LEN 4096

typedef struct {
    int64_t start_us, end_us;
    int64_t made_us; /* when this process's make finished (it computed) */
    int rc;
    int computed;
    int same;  /* got exactly the expected bytes */
    int done;
} result;

typedef struct {
    atomic_int computing; /* a make is running */
    atomic_int hang;      /* process 0's make hangs (to be killed) */
    int64_t killed_us;
    result r[64];
} shared_state;

static shared_state *sh;
static const char *server_sock;
static int my_index;

static void expected_value(char *buf)
{
    for (int i = 0; i < VALUE_LEN; i++)
        buf[i] = (char)(i % 7 == 0 ? 0 : (i * 31) & 0xff); /* NULs included */
}

static int slow_make(void *payload, char **value, size_t *len)
{
    (void)payload;
    redisContext *ctx = redisConnectUnix(server_sock);
    if (!ctx || ctx->err)
        return 2;
    redisReply *r = redisCommand(ctx, "INCR make-count");
    if (r)
        freeReplyObject(r);
    redisFree(ctx);
    atomic_store(&sh->computing, 1);
    if (my_index == 0 && atomic_load(&sh->hang))
        for (;;)
            pause(); /* killed here */
    rt_sleep_ms(300);
    *value = malloc(VALUE_LEN);
    if (!*value)
        return 3;
    expected_value(*value);
    *len = VALUE_LEN;
    sh->r[my_index].computed = 1;
    sh->r[my_index].made_us = rt_now_us();
    return 0;
}

/* A child: its own client, one get_or_set once the pipe opens. */
static void child(int i, int go_fd, int64_t lock_expire_ms)
{
    my_index = i;
    result *r = &sh->r[i];
    char ch;
    while (read(go_fd, &ch, 1) < 0 && errno == EINTR) {
    }
    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    co.url = rt_main.url;
    redis_lock_client *c = NULL;
    if (redis_lock_client_open(&c, &co))
        _exit(2);
    redis_lock_cache_options o;
    redis_lock_cache_options_init(&o);
    o.ttl_ms = 30000;
    o.timeout_ms = -1;
    if (lock_expire_ms)
        o.lock.expire_ms = lock_expire_ms; /* auto-renewed: a killed computer's lock expires */
    char *v = NULL;
    size_t n = 0;
    r->start_us = rt_now_us();
    r->rc = redis_lock_cache_get_or_set(c, "cold", &o, slow_make, NULL, &v, &n);
    r->end_us = rt_now_us();
    char want[VALUE_LEN];
    expected_value(want);
    r->same = r->rc == 0 && n == VALUE_LEN && v && memcmp(v, want, VALUE_LEN) == 0;
    r->done = 1;
    free(v);
    redis_lock_client_close(c);
    _exit(r->rc == 0 ? 0 : 1);
}

static pid_t spawn(int i, int go_fd, int go_other, int64_t lock_expire_ms)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(go_other);
        child(i, go_fd, lock_expire_ms);
    }
    return pid;
}

static int reap(pid_t *pids, int n, int64_t ms)
{
    int64_t end = rt_now_ms() + ms;
    int left = n, bad = 0;
    while (left > 0) {
        int status;
        pid_t p = waitpid(-1, &status, WNOHANG);
        if (p > 0) {
            left--;
            for (int i = 0; i < n; i++)
                if (pids[i] == p && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                    bad++;
            continue;
        }
        if (p < 0 && errno == ECHILD)
            break;
        if (rt_now_ms() > end) {
            for (int i = 0; i < n; i++)
                kill(pids[i], SIGKILL);
            while (waitpid(-1, NULL, 0) > 0) {
            }
            fail_msg("%d processes still waiting after %lld ms", left, (long long)ms);
        }
        rt_sleep_ms(2);
    }
    return bad;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static long long get_int(const char *key)
{
    redisReply *r = rt_cmd(&rt_main, "GET %s", key);
    long long v = r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : -1;
    freeReplyObject(r);
    return v;
}

static void stampede_50_processes(void **state)
{
    (void)state;
    enum { N = 50 };
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    server_sock = rt_main.sock;
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pids[N];
    for (int i = 0; i < N; i++)
        pids[i] = spawn(i, go[0], go[1], 0);
    close(go[0]);
    rt_sleep_ms(200); /* all forked and waiting at the pipe */
    close(go[1]);
    int bad = reap(pids, N, 60000);
    int computed = 0, same = 0, maker = -1;
    for (int i = 0; i < N; i++) {
        if (sh->r[i].computed) {
            computed++;
            maker = i;
        }
        same += sh->r[i].same;
        if (!sh->r[i].done || sh->r[i].rc)
            print_message("process %d: done %d rc %s\n", i, sh->r[i].done,
                          redis_lock_code_name(sh->r[i].rc));
    }
    assert_int_equal(bad, 0);
    assert_int_equal(get_int("make-count"), 1); /* make ran exactly once */
    assert_int_equal(computed, 1);
    assert_int_equal(same, N); /* all got identical, correct bytes */
    /* the 49 waiters: how long they waited in all, and how long after the value was ready */
    int64_t waited[N], after[N];
    int k = 0;
    for (int i = 0; i < N; i++) {
        if (i == maker)
            continue;
        waited[k] = sh->r[i].end_us - sh->r[i].start_us;
        after[k] = sh->r[i].end_us - sh->r[maker].made_us;
        k++;
    }
    qsort(waited, (size_t)k, sizeof *waited, cmp_i64);
    qsort(after, (size_t)k, sizeof *after, cmp_i64);
    print_message("stampede: %d processes, make ran once (300 ms); the %d waiters waited "
                  "max %.1f ms, median %.1f ms; after the value was computed: max %.1f ms, "
                  "median %.1f ms\n",
                  N, k, (double)waited[k - 1] / 1000, (double)waited[k / 2] / 1000,
                  (double)after[k - 1] / 1000, (double)after[k / 2] / 1000);
    assert_int_equal(k, N - 1);
    assert_true(waited[k - 1] < 10 * 1000000); /* generous: nobody waited for a timeout */
    /* the value is there for its TTL */
    long long pttl = rt_cmd_int(&rt_main, "PTTL cold");
    assert_true(pttl > 20000 && pttl <= 30000);
    munmap(sh, sizeof *sh);
}

static void killed_computer_does_not_stall_others(void **state)
{
    (void)state;
    enum { N = 6 };
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);
    server_sock = rt_main.sock;
    atomic_store(&sh->hang, 1);
    /* the first process starts computing and hangs there */
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pids[N];
    pids[0] = spawn(0, go[0], go[1], 1000);
    close(go[0]);
    close(go[1]);
    int64_t end = rt_now_ms() + 5000;
    while (!atomic_load(&sh->computing) && rt_now_ms() < end)
        rt_sleep_ms(2);
    assert_true(atomic_load(&sh->computing));
    /* the others miss and wait for it */
    int go2[2];
    assert_int_equal(pipe(go2), 0);
    for (int i = 1; i < N; i++)
        pids[i] = spawn(i, go2[0], go2[1], 1000);
    close(go2[0]);
    close(go2[1]);
    /* long enough for its renewal to have kept the lock past its first expiry */
    rt_sleep_ms(1300);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:get_or_set:cold"), 1);
    int64_t killed = rt_now_us();
    kill(pids[0], SIGKILL);
    int status;
    waitpid(pids[0], &status, 0);
    assert_true(WIFSIGNALED(status));
    int bad = reap(pids + 1, N - 1, 30000);
    assert_int_equal(bad, 0);
    int computed = 0;
    int64_t worst = 0;
    for (int i = 1; i < N; i++) {
        assert_int_equal(sh->r[i].done, 1);
        assert_int_equal(sh->r[i].same, 1);
        computed += sh->r[i].computed;
        int64_t ms = (sh->r[i].end_us - killed) / 1000;
        if (ms > worst)
            worst = ms;
    }
    print_message("computer killed -9; the others all had the value %lld ms later (its "
                  "lock: expire 1000 ms, then one 300 ms computation)\n",
                  (long long)worst);
    assert_int_equal(computed, 1);
    assert_int_equal(get_int("make-count"), 2); /* the killed one and one more */
    /* within the dead lock's expiry (<= 1 s) plus one computation (300 ms), with slack */
    assert_true(worst < 2300);
    munmap(sh, sizeof *sh);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(stampede_50_processes, rt_flush),
        cmocka_unit_test_setup(killed_computer_does_not_stall_others, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
