/* labels: threaded */
/* Recovery: a flushed script cache, killed connections, a restarted or dead server; no
 * SIGPIPE; every descriptor close-on-exec. */
#include "harness.h"
#include "internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void script_flush(const rt_server *s)
{
    redisReply *r = rt_cmd(s, "SCRIPT FLUSH");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

static long long evalsha_calls(const rt_server *s, const char *cmd)
{
    redisReply *r = rt_cmd(s, "INFO commandstats");
    char field[64];
    snprintf(field, sizeof field, "cmdstat_%s:calls=", cmd);
    const char *p = strstr(r->str, field);
    long long v = p ? strtoll(p + strlen(field), NULL, 10) : 0;
    freeReplyObject(r);
    return v;
}

/* ---- SCRIPT FLUSH ---- */

static void script_flush_falls_back_to_eval(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = rt_new_lock(c, "sf", 5000), *o = rt_new_lock(c, "sf", 0);
    redisReply *r = rt_cmd(&rt_main, "CONFIG RESETSTAT");
    freeReplyObject(r);
    /* every script on a flushed cache: acquire, extend, release, reset */
    script_flush(&rt_main);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    script_flush(&rt_main);
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(l, 8000));
    int64_t ttl = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(l, &ttl));
    assert_true(ttl > 7000);
    script_flush(&rt_main);
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(o, 0));
    script_flush(&rt_main);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    script_flush(&rt_main);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(o, 0));
    script_flush(&rt_main);
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(l));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(o));
    /* EVALSHA first, EVAL after each NOSCRIPT */
    assert_true(evalsha_calls(&rt_main, "evalsha") >= 7);
    assert_true(evalsha_calls(&rt_main, "eval") >= 6);
    /* and EVAL put them in the cache: once each has run, no more fallbacks */
    for (int round = 0; round < 2; round++) {
        long long eval_before = evalsha_calls(&rt_main, "eval");
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
        assert_rl(REDIS_LOCK_OK, redis_lock_extend(l, 0));
        assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
        if (round == 1)
            assert_int_equal(evalsha_calls(&rt_main, "eval"), eval_before);
    }
    /* reset_all too */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    script_flush(&rt_main);
    size_t n = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_reset_all(c, &n));
    assert_int_equal(n, 1);
    redis_lock_free(l);
    redis_lock_free(o);
    redis_lock_client_close(c);
}

/* ---- CLIENT KILL ---- */

static void kill_normal_clients(const rt_server *s)
{
    redisReply *r = rt_cmd(s, "CLIENT KILL TYPE normal SKIPME yes");
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_true(r->integer >= 1);
    freeReplyObject(r);
}

/* A call after its connection was killed works, or reports ECONN once and then works. */
#define AT_MOST_ONE_ECONN(expected, expr)                                                 \
    do {                                                                                  \
        int rc1_ = (expr);                                                                \
        if (rc1_ == REDIS_LOCK_ECONN) {                                                   \
            print_message("%s: ECONN once (%s)\n", #expr, redis_lock_last_error());       \
            rc1_ = (expr);                                                                \
        }                                                                                 \
        assert_rl(expected, rc1_);                                                        \
    } while (0)

static void client_kill_next_call_works(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = rt_new_lock(c, "ck", 10000);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    kill_normal_clients(&rt_main);
    AT_MOST_ONE_ECONN(REDIS_LOCK_OK, redis_lock_extend(l, 20000));
    kill_normal_clients(&rt_main);
    bool locked = false;
    AT_MOST_ONE_ECONN(REDIS_LOCK_OK, redis_lock_locked(l, &locked));
    assert_true(locked);
    kill_normal_clients(&rt_main);
    int64_t ttl = 0;
    AT_MOST_ONE_ECONN(REDIS_LOCK_OK, redis_lock_ttl(l, &ttl));
    assert_true(ttl > 15000);
    kill_normal_clients(&rt_main);
    AT_MOST_ONE_ECONN(REDIS_LOCK_OK, redis_lock_release(l));
    kill_normal_clients(&rt_main);
    AT_MOST_ONE_ECONN(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    kill_normal_clients(&rt_main);
    size_t n = 0;
    AT_MOST_ONE_ECONN(REDIS_LOCK_OK, redis_lock_reset_all(c, &n));
    assert_int_equal(n, 1);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

typedef struct {
    redis_lock *lock;
    int64_t timeout;
    int rc;
    int64_t took_ms;
    atomic_int finished;
} acq_arg;

static void *acq_thread(void *p)
{
    acq_arg *a = p;
    int64_t t0 = rt_now_ms();
    a->rc = redis_lock_acquire(a->lock, a->timeout);
    a->took_ms = rt_now_ms() - t0;
    atomic_store(&a->finished, 1);
    return NULL;
}

static bool some_client_in_blpop(const rt_server *s)
{
    redisReply *r = rt_cmd(s, "CLIENT LIST");
    bool yes = r->type == REDIS_REPLY_STRING && strstr(r->str, "cmd=blpop") != NULL &&
               strstr(r->str, "flags=b") != NULL;
    freeReplyObject(r);
    return yes;
}

static void wait_blocked(const rt_server *s)
{
    int64_t end = rt_now_ms() + 3000;
    while (!some_client_in_blpop(s) && rt_now_ms() < end)
        rt_sleep_ms(5);
    assert_true(some_client_in_blpop(s));
}

static void waiting_acquire_survives_client_kill(void **state)
{
    (void)state;
    redis_lock_client *hc = rt_client(&rt_main), *wc = rt_client(&rt_main);
    redis_lock *h = rt_new_lock(hc, "wk", 0), *w = rt_new_lock(wc, "wk", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    acq_arg a = {w, 10000, -100, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acq_thread, &a), 0);
    wait_blocked(&rt_main);
    kill_normal_clients(&rt_main); /* the waiter's BLPOP connection among them */
    rt_sleep_ms(200);
    assert_false(atomic_load(&a.finished));
    /* it reconnected and waits again */
    wait_blocked(&rt_main);
    kill_normal_clients(&rt_main);
    rt_sleep_ms(200);
    wait_blocked(&rt_main);
    assert_false(atomic_load(&a.finished));
    int64_t t0 = rt_now_ms();
    AT_MOST_ONE_ECONN(REDIS_LOCK_OK, redis_lock_release(h));
    pthread_join(t, NULL);
    assert_rl(REDIS_LOCK_OK, a.rc);
    assert_true(rt_now_ms() - t0 < 1500); /* the release's signal woke it */
    rt_assert_owner(h, redis_lock_id(w));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(hc);
    redis_lock_client_close(wc);
}

/* ---- server restart ---- */

static void waiting_acquire_survives_server_restart(void **state)
{
    (void)state;
    rt_server s;
    rt_server_start(&s, NULL, 0);
    redis_lock_client *hc = rt_client(&s), *wc = rt_client(&s);
    redis_lock *h = rt_new_lock(hc, "rs", 0), *w = rt_new_lock(wc, "rs", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    acq_arg a = {w, 15000, -100, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acq_thread, &a), 0);
    wait_blocked(&s);
    int64_t t0 = rt_now_ms();
    rt_server_restart(&s); /* SIGKILL: the lock key is gone with the data */
    pthread_join(t, NULL);
    int64_t took = rt_now_ms() - t0;
    print_message("the waiter got the lock %lld ms after the restart began\n", (long long)took);
    assert_rl(REDIS_LOCK_OK, a.rc);
    assert_true(took < 5000);
    redisReply *r = rt_cmd(&s, "GET lock:rs");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, redis_lock_id(w));
    freeReplyObject(r);
    /* the old holder lost it with the restart */
    AT_MOST_ONE_ECONN(REDIS_LOCK_ENOTHELD, redis_lock_release(h));
    AT_MOST_ONE_ECONN(REDIS_LOCK_OK, redis_lock_release(w));
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(hc);
    redis_lock_client_close(wc);
    rt_server_stop(&s);
}

/* ---- a dead server: ECONN, never SIGPIPE ---- */

typedef struct {
    atomic_int calls;
} lost_arg;

static void on_lost(redis_lock *l, void *payload)
{
    (void)l;
    atomic_fetch_add(&((lost_arg *)payload)->calls, 1);
}

static void kill_dead(rt_server *s)
{
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

static void assert_sigpipe_untouched(void)
{
    struct sigaction sa;
    assert_int_equal(sigaction(SIGPIPE, NULL, &sa), 0);
    assert_true(sa.sa_handler == SIG_DFL);
    sigset_t mask;
    assert_int_equal(pthread_sigmask(SIG_BLOCK, NULL, &mask), 0);
    assert_false(sigismember(&mask, SIGPIPE));
}

static void dead_server_econn_no_sigpipe(void **state)
{
    (void)state;
    /* over the unix socket, plain TCP and TLS */
    for (int tcp = 0; tcp <= 2; tcp++) {
        rt_server s;
        rt_server_start(&s, NULL, tcp == 2 ? RT_TLS : tcp);
        char url[sizeof s.url];
        if (tcp == 1)
            snprintf(url, sizeof url, "redis://127.0.0.1:%d", s.port);
        else
            snprintf(url, sizeof url, "%s", s.url);
        redis_lock_client *c = rt_client_url(url);
        lost_arg lost = {0};
        redis_lock_options o;
        redis_lock_options_init(&o);
        o.expire_ms = 300;
        o.auto_renewal = true;
        o.on_lost = on_lost;
        o.on_lost_payload = &lost;
        redis_lock *l = NULL, *p = rt_new_lock(c, "plain", 0), *w = rt_new_lock(c, "plain", 0);
        assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "renewed", &o));
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(p, 0));
        /* a waiter in flight when the server dies */
        acq_arg a = {w, 1000, -100, 0, 0};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, acq_thread, &a), 0);
        wait_blocked(&s);
        kill_dead(&s);
        pthread_join(t, NULL);
        /* it kept trying until its deadline, then said why */
        assert_rl(REDIS_LOCK_ECONN, a.rc);
        assert_true(a.took_ms >= 900 && a.took_ms < 3000);
        /* the renewal thread writes to its dead connection: no SIGPIPE, the lock is lost */
        int64_t end = rt_now_ms() + 3000;
        while (!atomic_load(&lost.calls) && rt_now_ms() < end)
            rt_sleep_ms(10);
        assert_int_equal(atomic_load(&lost.calls), 1);
        /* every call now reports ECONN, promptly */
        int64_t t0 = rt_now_ms();
        assert_rl(REDIS_LOCK_ECONN, redis_lock_release(p));
        assert_true(redis_lock_last_error()[0] != '\0');
        /* the lost lock says so without asking the server */
        assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_extend(l, 1000));
        assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(l));
        assert_rl(REDIS_LOCK_ECONN, redis_lock_acquire(p, 0));
        bool locked;
        assert_rl(REDIS_LOCK_ECONN, redis_lock_locked(p, &locked));
        assert_rl(REDIS_LOCK_ECONN, redis_lock_reset(p));
        assert_rl(REDIS_LOCK_ECONN, redis_lock_reset_all(c, NULL));
        assert_rl(REDIS_LOCK_ECONN, redis_lock_cache_delete(c, "k"));
        assert_true(rt_now_ms() - t0 < 3000);
        assert_sigpipe_untouched();
        redis_lock_free(l);
        redis_lock_free(p);
        redis_lock_free(w);
        redis_lock_client_close(c);
        rt_server_stop(&s);
    }
}

static void killed_connection_mid_write_no_sigpipe(void **state)
{
    (void)state;
    /* a pooled connection the server dropped, then a big write on it: EPIPE, not SIGPIPE.
     * A large cache value makes the write outlast the health check. */
    rt_server s;
    rt_server_start(&s, NULL, 1);
    char url[sizeof s.url];
    if (rt_tls())
        snprintf(url, sizeof url, "%s", s.url); /* the same over TLS */
    else
        snprintf(url, sizeof url, "redis://127.0.0.1:%d", s.port);
    redis_lock_client *c = rt_client_url(url);
    rl_conn *conn = NULL;
    assert_rl(REDIS_LOCK_OK, rl_client_get(c, &conn));
    kill_dead(&s);
    rt_sleep_ms(50);
    /* write until the kernel notices the peer is gone */
    static char big[1 << 16];
    memset(big, 'x', sizeof big);
    int rc = 0;
    for (int i = 0; i < 64 && rc == 0; i++)
        rc = rl_conn_send(c, conn, big, sizeof big);
    assert_rl(REDIS_LOCK_ECONN, rc);
    rl_client_put(c, conn, false);
    assert_sigpipe_untouched();
    redis_lock_client_close(c);
    rt_server_stop(&s);
}

static void unanswered_command_is_econn(void **state)
{
    (void)state;
    /* a server that stops answering: ECONN after command_timeout_ms, then fine again */
    rt_server s;
    rt_server_start(&s, NULL, 0);
    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    co.url = s.url;
    co.command_timeout_ms = 300;
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &co));
    redis_lock *l = rt_new_lock(c, "frozen", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    kill(s.pid, SIGSTOP);
    int64_t t0 = rt_now_ms();
    bool locked = false;
    int rc = redis_lock_locked(l, &locked);
    int64_t took = rt_now_ms() - t0;
    kill(s.pid, SIGCONT);
    assert_rl(REDIS_LOCK_ECONN, rc);
    assert_true(took >= 250 && took < 2000);
    /* the answer that came late is not mistaken for the next command's */
    int64_t ttl = 0;
    AT_MOST_ONE_ECONN(REDIS_LOCK_OK, redis_lock_ttl(l, &ttl));
    assert_int_equal(ttl, -1);
    AT_MOST_ONE_ECONN(REDIS_LOCK_OK, redis_lock_locked(l, &locked));
    assert_true(locked);
    AT_MOST_ONE_ECONN(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
    rt_server_stop(&s);
}

static void cancel_while_reconnecting(void **state)
{
    (void)state;
    /* the server is gone and the waiter is backing off between reconnects: a cancel
     * still ends the wait at once */
    rt_server s;
    rt_server_start(&s, NULL, 0);
    redis_lock_client *c = rt_client(&s);
    redis_lock *h = rt_new_lock(c, "gone", 0), *w = rt_new_lock(c, "gone", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    acq_arg a = {w, 30000, -100, 0, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acq_thread, &a), 0);
    wait_blocked(&s);
    kill_dead(&s);
    rt_sleep_ms(1500); /* a few failed reconnects, backoff grown to ~1 s */
    assert_false(atomic_load(&a.finished));
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel(w));
    pthread_join(t, NULL);
    assert_rl(REDIS_LOCK_ECANCELED, a.rc);
    assert_true(rt_now_ms() - t0 < 500);
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(c);
    rt_server_stop(&s);
}

/* ---- close-on-exec ---- */

static int check_fds(int *sockets)
{
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int bad = 0;
    *sockets = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd <= 2 || fd == dirfd(d))
            continue;
        char path[64], target[256];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (!strstr(target, "socket:") && !strstr(target, "eventfd"))
            continue;
        (*sockets)++;
        int flags = fcntl(fd, F_GETFD);
        if (flags < 0 || !(flags & FD_CLOEXEC)) {
            print_message("fd %d (%s) is not close-on-exec\n", fd, target);
            bad++;
        }
    }
    closedir(d);
    return bad;
}

static void descriptors_close_on_exec(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 1000;
    o.auto_renewal = true;
    redis_lock *l = NULL, *h = rt_new_lock(c, "cx", 0), *w = rt_new_lock(c, "cx", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "cloexec", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(w, 100)); /* opens the unblock connection */
    rt_sleep_ms(800);                                        /* a renewal ran */
    /* the pooled connection itself */
    assert_non_null(c->pool);
    assert_true(fcntl(c->pool->fd, F_GETFD) & FD_CLOEXEC);
    int sockets = 0;
    assert_int_equal(check_fds(&sockets), 0);
    assert_true(sockets >= 4); /* pool, renewal thread, and the handles' eventfds */
    /* and a program we run sees none of them */
    FILE *p = popen("ls -l /proc/self/fd/ 2>&1", "r");
    assert_non_null(p);
    char line[512];
    int inherited = 0, lines = 0;
    while (fgets(line, sizeof line, p)) {
        lines++;
        if (strstr(line, "socket:") || strstr(line, "eventfd"))
            inherited++;
    }
    assert_int_equal(pclose(p), 0);
    assert_true(lines >= 3);
    assert_int_equal(inherited, 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
    redis_lock_free(l);
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(script_flush_falls_back_to_eval, rt_flush),
        cmocka_unit_test_setup(client_kill_next_call_works, rt_flush),
        cmocka_unit_test_setup(waiting_acquire_survives_client_kill, rt_flush),
        cmocka_unit_test_setup(waiting_acquire_survives_server_restart, rt_flush),
        cmocka_unit_test_setup(dead_server_econn_no_sigpipe, rt_flush),
        cmocka_unit_test_setup(killed_connection_mid_write_no_sigpipe, rt_flush),
        cmocka_unit_test_setup(unanswered_command_is_econn, rt_flush),
        cmocka_unit_test_setup(cancel_while_reconnecting, rt_flush),
        cmocka_unit_test_setup(descriptors_close_on_exec, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
