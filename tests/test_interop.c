/* labels: threaded */
/* Interoperability with python-redis-lock 4.x (docs/design.md, 1.6): a Python process
 * (tests/interop/prl_peer.py under Debian's /usr/bin/python3 with python3-redis, driven by
 * tests/interop/prl_driver.py) and this library exclude each other, wake each other's
 * waiters, and work on each other's ids. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"

typedef struct {
    pid_t pid;
    int in;  /* python's stdin */
    int out; /* python's stdout */
    char buf[4096];
    size_t len;
} py_peer;

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

/* One line from python, waiting at most ms; fails the test on timeout or EOF. */
static void py_line(py_peer *p, char *line, size_t n, int64_t ms)
{
    int64_t end = rt_now_ms() + ms;
    for (;;) {
        char *nl = memchr(p->buf, '\n', p->len);
        if (nl) {
            size_t l = (size_t)(nl - p->buf);
            snprintf(line, n, "%.*s", (int)l, p->buf);
            memmove(p->buf, nl + 1, p->len - l - 1);
            p->len -= l + 1;
            return;
        }
        int64_t left = end - rt_now_ms();
        if (left <= 0)
            fail_msg("no answer from the python peer within %lld ms", (long long)ms);
        struct pollfd pf = {p->out, POLLIN, 0};
        int rc = poll(&pf, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            continue;
        ssize_t got = read(p->out, p->buf + p->len, sizeof p->buf - p->len - 1);
        if (got <= 0)
            fail_msg("the python peer exited (read %zd: %s)", got, strerror(errno));
        p->len += (size_t)got;
    }
}

static void py_send(py_peer *p, const char *line)
{
    size_t n = strlen(line);
    assert_int_equal(write(p->in, line, n), (ssize_t)n);
    assert_int_equal(write(p->in, "\n", 1), 1);
}

/* Send a command and return its answer. */
static void py_ask(py_peer *p, const char *cmd, char *answer, size_t n)
{
    py_send(p, cmd);
    py_line(p, answer, n, 10000);
}

static void py_expect(py_peer *p, const char *cmd, const char *expected)
{
    char answer[512];
    py_ask(p, cmd, answer, sizeof answer);
    if (strcmp(answer, expected) != 0)
        fail_msg("python %s: \"%s\", expected \"%s\"", cmd, answer, expected);
}

static void py_start(py_peer *p, const rt_server *s)
{
    char script[600];
    driver_path(script, sizeof script);
    if (access(script, R_OK) != 0)
        fail_msg("cannot read %s", script);
    if (access(PYTHON, X_OK) != 0)
        fail_msg("%s is missing: the interoperability tests need Debian's python3 with "
                 "python3-redis",
                 PYTHON);
    int to[2], from[2];
    assert_int_equal(pipe2(to, O_CLOEXEC), 0);
    assert_int_equal(pipe2(from, O_CLOEXEC), 0);
    memset(p, 0, sizeof *p);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        /* over TLS when the harness runs over TLS: redis-py with ssl=True */
        execl(PYTHON, PYTHON, "-u", script, rt_tls() ? s->url : s->sock, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    p->in = to[1];
    p->out = from[0];
    char line[512];
    py_line(p, line, sizeof line, 15000);
    if (strcmp(line, "ready") != 0)
        fail_msg("the python peer said \"%s\" instead of ready", line);
}

static void py_stop(py_peer *p)
{
    py_send(p, "quit");
    close(p->in);
    int64_t end = rt_now_ms() + 5000;
    int status = 0;
    while (waitpid(p->pid, &status, WNOHANG) != p->pid) {
        if (rt_now_ms() > end) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            break;
        }
        rt_sleep_ms(5);
    }
    close(p->out);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* "ok H ID" from a lock command: the handle number; id copied out if wanted. */
static int py_lock(py_peer *p, const char *name, const char *expire, const char *id,
                   char *id_out, size_t n)
{
    char cmd[300], answer[512];
    snprintf(cmd, sizeof cmd, "lock %s %s %s", name, expire ? expire : "-", id ? id : "");
    py_ask(p, cmd, answer, sizeof answer);
    int h = -1;
    char got[128] = "";
    if (sscanf(answer, "ok %d %127s", &h, got) != 2)
        fail_msg("python lock: \"%s\"", answer);
    if (id_out)
        snprintf(id_out, n, "%s", got);
    return h;
}

static void py_cmd(py_peer *p, const char *verb, int h, const char *expected)
{
    char cmd[64];
    snprintf(cmd, sizeof cmd, "%s %d", verb, h);
    py_expect(p, cmd, expected);
}

static redis_lock *new_lock(redis_lock_client *c, const char *name, int64_t expire_ms,
                            const char *id)
{
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = expire_ms;
    o.id = id;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, name, &o));
    return l;
}

static bool some_client_in_blpop(void)
{
    redisReply *r = rt_cmd(&rt_main, "CLIENT LIST");
    bool yes = false;
    /* a line of a client blocked in BLPOP: flags with 'b' and cmd=blpop */
    for (char *line = r->type == REDIS_REPLY_STRING ? r->str : NULL; line && *line && !yes;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        const char *flags = strstr(line, " flags=");
        if (flags && strstr(line, "cmd=blpop") && strcspn(flags + 7, " b") <
                                                      strcspn(flags + 7, " "))
            yes = true;
        line = end ? end + 1 : NULL;
    }
    freeReplyObject(r);
    return yes;
}

static void wait_blocked(void)
{
    int64_t end = rt_now_ms() + 5000;
    while (!some_client_in_blpop() && rt_now_ms() < end)
        rt_sleep_ms(5);
    assert_true(some_client_in_blpop());
}

/* ---- each sees the other's lock ---- */

static void python_sees_c_lock_held(void **state)
{
    (void)state;
    py_peer py;
    py_start(&py, &rt_main);
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = new_lock(c, "shared", 0, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    int h = py_lock(&py, "shared", NULL, NULL, NULL, 0);
    py_cmd(&py, "try", h, "busy");
    py_cmd(&py, "locked", h, "true");
    py_cmd(&py, "owner", h, redis_lock_id(l));
    py_cmd(&py, "release", h, "notacquired");
    /* a C lock with an expiry: python sees the same */
    redis_lock *e = new_lock(c, "shared-exp", 5000, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e, 0));
    int he = py_lock(&py, "shared-exp", "5", NULL, NULL, 0);
    py_cmd(&py, "try", he, "busy");
    py_cmd(&py, "extend", he, "notacquired");
    /* released by C: python gets it */
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    py_cmd(&py, "try", h, "acquired");
    py_cmd(&py, "release", h, "ok");
    assert_rl(REDIS_LOCK_OK, redis_lock_release(e));
    py_cmd(&py, "try", he, "acquired");
    py_cmd(&py, "release", he, "ok");
    py_stop(&py);
    redis_lock_free(l);
    redis_lock_free(e);
    redis_lock_client_close(c);
}

static void c_sees_python_lock_held(void **state)
{
    (void)state;
    py_peer py;
    py_start(&py, &rt_main);
    redis_lock_client *c = rt_client(&rt_main);
    char pyid[128];
    int h = py_lock(&py, "pyheld", NULL, NULL, pyid, sizeof pyid);
    assert_int_equal(strlen(pyid), 24); /* the same id format */
    py_cmd(&py, "try", h, "acquired");
    redis_lock *l = new_lock(c, "pyheld", 0, NULL);
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(l, 200));
    bool locked = false;
    assert_rl(REDIS_LOCK_OK, redis_lock_locked(l, &locked));
    assert_true(locked);
    rt_assert_owner(l, pyid);
    int64_t ttl = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(l, &ttl));
    assert_int_equal(ttl, -1);
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(l));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_extend(l, 1000));
    /* a python lock with expire (SET NX EX): C sees its TTL */
    int he = py_lock(&py, "pyexp", "5", NULL, NULL, 0);
    py_cmd(&py, "try", he, "acquired");
    redis_lock *e = new_lock(c, "pyexp", 0, NULL);
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(e, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(e, &ttl));
    assert_true(ttl > 4000 && ttl <= 5000);
    /* python releases: C gets it */
    py_cmd(&py, "release", h, "ok");
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    py_cmd(&py, "try", h, "busy");
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    py_cmd(&py, "release", he, "ok");
    py_stop(&py);
    redis_lock_free(l);
    redis_lock_free(e);
    redis_lock_client_close(c);
}

/* ---- each wakes the other's waiter ---- */

typedef struct {
    redis_lock *lock;
    int64_t timeout;
    int rc;
    int64_t took_ms;
} acq_arg;

static void *acq_thread(void *p)
{
    acq_arg *a = p;
    int64_t t0 = rt_now_ms();
    a->rc = redis_lock_acquire(a->lock, a->timeout);
    a->took_ms = rt_now_ms() - t0;
    return NULL;
}

static void c_waiter_woken_by_python_release(void **state)
{
    (void)state;
    py_peer py;
    py_start(&py, &rt_main);
    redis_lock_client *c = rt_client(&rt_main);
    int h = py_lock(&py, "wake-c", NULL, NULL, NULL, 0);
    py_cmd(&py, "try", h, "acquired");
    redis_lock *w = new_lock(c, "wake-c", 0, NULL);
    acq_arg a = {w, 20000, -100, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acq_thread, &a), 0);
    wait_blocked();
    rt_sleep_ms(200);
    int64_t t0 = rt_now_ms();
    py_cmd(&py, "release", h, "ok");
    pthread_join(t, NULL);
    int64_t after = rt_now_ms() - t0;
    print_message("C waiter woken %lld ms after python's release was sent\n", (long long)after);
    assert_rl(REDIS_LOCK_OK, a.rc);
    assert_true(after < 1000); /* the signal, not the 20 s timeout */
    py_cmd(&py, "try", h, "busy");
    py_cmd(&py, "owner", h, redis_lock_id(w));
    /* python with an expiry (its wait capped by the TTL on our side, woken earlier) */
    int he = py_lock(&py, "wake-c2", "30", NULL, NULL, 0);
    py_cmd(&py, "try", he, "acquired");
    redis_lock *w2 = new_lock(c, "wake-c2", 0, NULL);
    acq_arg a2 = {w2, 20000, -100, 0};
    assert_int_equal(pthread_create(&t, NULL, acq_thread, &a2), 0);
    wait_blocked();
    t0 = rt_now_ms();
    py_cmd(&py, "release", he, "ok");
    pthread_join(t, NULL);
    assert_rl(REDIS_LOCK_OK, a2.rc);
    assert_true(rt_now_ms() - t0 < 1000);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w2));
    py_stop(&py);
    redis_lock_free(w);
    redis_lock_free(w2);
    redis_lock_client_close(c);
}

static void python_waiter_woken_by_c_release(void **state)
{
    (void)state;
    py_peer py;
    py_start(&py, &rt_main);
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = new_lock(c, "wake-py", 0, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    char pyid[128];
    int h = py_lock(&py, "wake-py", NULL, NULL, pyid, sizeof pyid);
    char cmd[32];
    snprintf(cmd, sizeof cmd, "acquire %d 20", h);
    py_send(&py, cmd); /* blocking, python's BLPOP timeout 20 s */
    wait_blocked();
    rt_sleep_ms(200);
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    char answer[128];
    py_line(&py, answer, sizeof answer, 25000);
    int64_t after = rt_now_ms() - t0;
    print_message("python waiter answered \"%s\" %lld ms after the C release\n", answer,
                  (long long)after);
    assert_true(strncmp(answer, "acquired ", 9) == 0);
    assert_true(after < 1500); /* woken, not timed out */
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(l, 0));
    rt_assert_owner(l, pyid);
    /* and the same with a C lock that expires and a C reset */
    py_cmd(&py, "release", h, "ok");
    redis_lock *e = new_lock(c, "wake-py", 30000, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e, 0));
    py_send(&py, cmd);
    wait_blocked();
    t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(l));
    py_line(&py, answer, sizeof answer, 25000);
    assert_true(strncmp(answer, "acquired ", 9) == 0);
    assert_true(rt_now_ms() - t0 < 1500);
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(e));
    py_cmd(&py, "release", h, "ok");
    py_stop(&py);
    redis_lock_free(l);
    redis_lock_free(e);
    redis_lock_client_close(c);
}

/* ---- each works on the other's ids ---- */

static void python_extend_release_on_c_id(void **state)
{
    (void)state;
    py_peer py;
    py_start(&py, &rt_main);
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = new_lock(c, "cid", 10000, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    int h = py_lock(&py, "cid", "30", redis_lock_id(l), NULL, 0);
    py_cmd(&py, "try", h, "already"); /* python's AlreadyAcquired: its id owns it */
    py_cmd(&py, "extend", h, "ok");
    int64_t ttl = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(l, &ttl));
    assert_true(ttl > 25000 && ttl <= 30000);
    py_expect(&py, "extend 0 60", "ok");
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(l, &ttl));
    assert_true(ttl > 55000);
    /* C extends what python extended, and python releases it */
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(l, 0));
    py_cmd(&py, "release", h, "ok");
    bool locked = true;
    assert_rl(REDIS_LOCK_OK, redis_lock_locked(l, &locked));
    assert_false(locked);
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(l));
    /* a C lock with no expiry: python's extend says it has none */
    redis_lock *n = new_lock(c, "cid-noexp", 0, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(n, 0));
    int hn = py_lock(&py, "cid-noexp", "30", redis_lock_id(n), NULL, 0);
    py_cmd(&py, "extend", hn, "noexpire");
    py_cmd(&py, "release", hn, "ok");
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(n));
    py_stop(&py);
    redis_lock_free(l);
    redis_lock_free(n);
    redis_lock_client_close(c);
}

static void c_extend_release_on_python_id(void **state)
{
    (void)state;
    py_peer py;
    py_start(&py, &rt_main);
    redis_lock_client *c = rt_client(&rt_main);
    char pyid[128];
    int h = py_lock(&py, "pyid", "5", NULL, pyid, sizeof pyid);
    py_cmd(&py, "try", h, "acquired");
    redis_lock *l = new_lock(c, "pyid", 20000, pyid);
    assert_rl(REDIS_LOCK_EALREADY, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(l, 0));
    int64_t ttl = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(l, &ttl));
    assert_true(ttl > 19000);
    py_cmd(&py, "extend", h, "ok"); /* back to 5 s */
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(l, &ttl));
    assert_true(ttl <= 5000);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    py_cmd(&py, "release", h, "notacquired");
    py_cmd(&py, "locked", h, "false");
    py_stop(&py);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

/* ---- reset_all both ways ---- */

static void python_reset_all_on_c_locks(void **state)
{
    (void)state;
    py_peer py;
    py_start(&py, &rt_main);
    redis_lock_client *c = rt_client(&rt_main);
    const char *names[] = {"ra-1", "ra:2", "ra-3", "ra-4", "ra-5"};
    enum { N = 5 };
    redis_lock *l[N];
    for (int i = 0; i < N; i++) {
        l[i] = new_lock(c, names[i], i % 2 ? 30000 : 0, NULL);
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l[i], 0));
    }
    redis_lock *w = new_lock(c, "ra-1", 0, NULL);
    acq_arg a = {w, 20000, -100, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acq_thread, &a), 0);
    wait_blocked();
    int64_t t0 = rt_now_ms();
    py_expect(&py, "reset_all", "ok 5");
    pthread_join(t, NULL);
    assert_rl(REDIS_LOCK_OK, a.rc); /* python's reset_all signal woke the C waiter */
    assert_true(rt_now_ms() - t0 < 1000);
    for (int i = 0; i < N; i++) {
        assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(l[i]));
        redis_lock_free(l[i]);
    }
    redisReply *r = rt_cmd(&rt_main, "KEYS lock:*");
    assert_int_equal(r->elements, 1); /* only the waiter's new lock */
    assert_string_equal(r->element[0]->str, "lock:ra-1");
    freeReplyObject(r);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    redis_lock_free(w);
    py_stop(&py);
    redis_lock_client_close(c);
}

static void c_reset_all_on_python_locks(void **state)
{
    (void)state;
    py_peer py;
    py_start(&py, &rt_main);
    redis_lock_client *c = rt_client(&rt_main);
    int h1 = py_lock(&py, "pr-1", NULL, NULL, NULL, 0);
    int h2 = py_lock(&py, "pr-2", "30", NULL, NULL, 0);
    py_cmd(&py, "try", h1, "acquired");
    py_cmd(&py, "try", h2, "acquired");
    /* a python waiter on pr-1, woken by our reset_all */
    int hw = py_lock(&py, "pr-1", NULL, NULL, NULL, 0);
    char cmd[32];
    snprintf(cmd, sizeof cmd, "acquire %d 20", hw);
    py_send(&py, cmd);
    wait_blocked();
    size_t count = 0;
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_reset_all(c, &count));
    assert_int_equal(count, 2);
    char answer[128];
    py_line(&py, answer, sizeof answer, 25000);
    assert_true(strncmp(answer, "acquired ", 9) == 0);
    assert_true(rt_now_ms() - t0 < 1500);
    py_cmd(&py, "release", h1, "notacquired");
    py_cmd(&py, "release", h2, "notacquired");
    py_cmd(&py, "release", hw, "ok");
    py_stop(&py);
    redis_lock_client_close(c);
}

/* ---- both at once ---- */

typedef struct {
    redis_lock_client *c;
    int rounds;
    int violations;
    int failures;
} c_loop_arg;

static void *c_loop(void *p)
{
    c_loop_arg *a = p;
    redis_lock *l = NULL;
    if (redis_lock_new(&l, a->c, "mixed", NULL)) {
        a->failures = a->rounds;
        return NULL;
    }
    redisContext *ctx = redisConnectUnix(rt_main.sock);
    for (int i = 0; i < a->rounds; i++) {
        if (redis_lock_acquire(l, 10000) != 0) {
            a->failures++;
            continue;
        }
        redisReply *r = redisCommand(ctx, "INCR mixed-inside");
        if (!r || r->integer != 1)
            a->violations++;
        if (r)
            freeReplyObject(r);
        rt_sleep_ms(2);
        r = redisCommand(ctx, "DECR mixed-inside");
        if (r)
            freeReplyObject(r);
        if (redis_lock_release(l) != 0)
            a->failures++;
    }
    redisFree(ctx);
    redis_lock_free(l);
    return NULL;
}

static void python_and_c_exclude_each_other(void **state)
{
    (void)state;
    py_peer py1, py2;
    py_start(&py1, &rt_main);
    py_start(&py2, &rt_main);
    redis_lock_client *c = rt_client(&rt_main);
    enum { ROUNDS = 40 };
    c_loop_arg a = {c, ROUNDS, 0, 0}, b = {c, ROUNDS, 0, 0};
    pthread_t ta, tb;
    int64_t t0 = rt_now_ms();
    py_send(&py1, "loop mixed 40 mixed-inside");
    py_send(&py2, "loop mixed 40 mixed-inside");
    assert_int_equal(pthread_create(&ta, NULL, c_loop, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, c_loop, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    char ans1[128], ans2[128];
    py_line(&py1, ans1, sizeof ans1, 60000);
    py_line(&py2, ans2, sizeof ans2, 60000);
    print_message("2 C threads and 2 python processes, %d rounds each, in %lld ms: python "
                  "said \"%s\", \"%s\"\n",
                  ROUNDS, (long long)(rt_now_ms() - t0), ans1, ans2);
    assert_string_equal(ans1, "done 0 0");
    assert_string_equal(ans2, "done 0 0");
    assert_int_equal(a.violations + b.violations, 0);
    assert_int_equal(a.failures + b.failures, 0);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:mixed"), 0);
    py_stop(&py1);
    py_stop(&py2);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(python_sees_c_lock_held, rt_flush),
        cmocka_unit_test_setup(c_sees_python_lock_held, rt_flush),
        cmocka_unit_test_setup(c_waiter_woken_by_python_release, rt_flush),
        cmocka_unit_test_setup(python_waiter_woken_by_c_release, rt_flush),
        cmocka_unit_test_setup(python_extend_release_on_c_id, rt_flush),
        cmocka_unit_test_setup(c_extend_release_on_python_id, rt_flush),
        cmocka_unit_test_setup(python_reset_all_on_c_locks, rt_flush),
        cmocka_unit_test_setup(c_reset_all_on_python_locks, rt_flush),
        cmocka_unit_test_setup(python_and_c_exclude_each_other, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
