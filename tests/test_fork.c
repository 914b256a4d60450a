/* labels: forks */
/* A forked child uses its parent's client: it gets connections of its own, never
 * touches the parent's sockets, does not inherit renewals; the parent goes on unharmed. */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static redis_lock *new_lock(redis_lock_client *c, const char *name, int64_t expire_ms,
                            bool renew)
{
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = expire_ms;
    o.auto_renewal = renew;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, name, &o));
    return l;
}

/* Wait for pid at most ms; kill it and fail if it is still running. Returns its status. */
static int wait_child(pid_t pid, int64_t ms, const char *what)
{
    int64_t end = rt_now_ms() + ms;
    int status = 0;
    for (;;) {
        pid_t p = waitpid(pid, &status, WNOHANG);
        if (p == pid)
            return status;
        if (rt_now_ms() > end) {
            rt_dump_stacks(pid);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("%s: the child did not finish within %lld ms (hung)", what, (long long)ms);
        }
        rt_sleep_ms(5);
    }
}

/* The CLIENT LIST line of connection id, or NULL; caller frees. */
static char *client_line(long long id)
{
    redisReply *r = rt_cmd(&rt_main, "CLIENT LIST ID %lld", id);
    char *line = NULL;
    if (r->type == REDIS_REPLY_STRING && r->len > 0)
        line = strdup(r->str);
    freeReplyObject(r);
    return line;
}

typedef struct {
    long long conn_id;
    int rc[6];
} child_report;

static void child_uses_inherited_client(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *held = new_lock(c, "parent", 0, false);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(held, 0));
    bool locked = false;
    assert_rl(REDIS_LOCK_OK, redis_lock_locked(held, &locked)); /* last command: EXISTS */
    assert_true(locked);
    assert_non_null(c->pool);
    assert_null(c->pool->next); /* one pooled connection */
    long long parent_id = c->pool->client_id;
    int parent_fd = c->pool->fd;

    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        child_report rep;
        memset(&rep, 0, sizeof rep);
        redis_lock *mine = NULL, *theirs = NULL;
        rep.rc[0] = redis_lock_new(&mine, c, "child", NULL);
        if (!rep.rc[0]) {
            rep.rc[1] = redis_lock_acquire(mine, 1000);
            rep.rc[2] = redis_lock_release(mine);
        }
        rep.rc[3] = redis_lock_new(&theirs, c, "parent", NULL);
        if (!rep.rc[3])
            rep.rc[4] = redis_lock_acquire(theirs, 0); /* BUSY: the parent holds it */
        bool lk = false;
        rep.rc[5] = redis_lock_locked(held, &lk) || !lk; /* the inherited handle works */
        rep.conn_id = c->pool ? c->pool->client_id : -1;
        redis_lock_free(mine);
        redis_lock_free(theirs);
        redis_lock_free(held);
        redis_lock_client_close(c);
        ssize_t n = write(pfd[1], &rep, sizeof rep);
        _exit(n == (ssize_t)sizeof rep ? 0 : 1);
    }
    close(pfd[1]);
    int status = wait_child(pid, 10000, "child_uses_inherited_client");
    child_report rep;
    ssize_t n = read(pfd[0], &rep, sizeof rep);
    close(pfd[0]);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(n, (ssize_t)sizeof rep);
    assert_rl(REDIS_LOCK_OK, rep.rc[0]);
    assert_rl(REDIS_LOCK_OK, rep.rc[1]);
    assert_rl(REDIS_LOCK_OK, rep.rc[2]);
    assert_rl(REDIS_LOCK_OK, rep.rc[3]);
    assert_rl(REDIS_LOCK_BUSY, rep.rc[4]);
    assert_int_equal(rep.rc[5], 0);
    /* the child had a connection of its own */
    assert_true(rep.conn_id > 0);
    assert_true(rep.conn_id != parent_id);
    /* the parent's connection is still there, untouched: its last command is ours */
    char *line = client_line(parent_id);
    assert_non_null(line);
    if (!strstr(line, "cmd=exists"))
        fail_msg("the parent's connection ran something else: %s", line);
    free(line);
    /* and the parent's client goes on with the same connection */
    assert_ptr_not_equal(c->pool, NULL);
    assert_int_equal(c->pool->fd, parent_fd);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(held));
    assert_int_equal(c->pool->client_id, parent_id);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:parent lock:child"), 0);
    redis_lock_free(held);
    redis_lock_client_close(c);
}

static void child_does_not_renew_parents_locks(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = new_lock(c, "renewed", 400, true);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the child lets go of its copy without releasing; the parent keeps renewing */
        redis_lock_free(l);
        redis_lock_client_close(c);
        _exit(0);
    }
    int status = wait_child(pid, 5000, "child_does_not_renew_parents_locks");
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* the parent's renewal goes on: the key outlives several expiry periods */
    for (int i = 0; i < 12; i++) {
        rt_sleep_ms(100);
        assert_true(rt_cmd_int(&rt_main, "PTTL lock:renewed") > 0);
    }
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static void child_renews_its_own_locks(void **state)
{
    (void)state;
    /* the parent renews a lock; the child, with the inherited client, takes another
     * auto-renewed lock: the child gets a renewal thread of its own */
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *p = new_lock(c, "p-renewed", 300, true);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(p, 0));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        redis_lock_options o;
        redis_lock_options_init(&o);
        o.expire_ms = 300;
        o.auto_renewal = true;
        redis_lock *l = NULL;
        int bad = redis_lock_new(&l, c, "c-renewed", &o) || redis_lock_acquire(l, 0);
        redisContext *ctx = redisConnectUnix(rt_main.sock);
        for (int i = 0; !bad && i < 10; i++) {
            rt_sleep_ms(100);
            redisReply *r = redisCommand(ctx, "PTTL lock:c-renewed");
            bad |= !r || r->integer <= 0;
            if (r)
                freeReplyObject(r);
        }
        redisFree(ctx);
        bad |= redis_lock_release(l) != 0;
        redis_lock_free(l);
        redis_lock_free(p);
        redis_lock_client_close(c);
        _exit(bad ? 1 : 0);
    }
    int status = wait_child(pid, 10000, "child_renews_its_own_locks");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* the parent's lock lived on all the while */
    assert_true(rt_cmd_int(&rt_main, "PTTL lock:p-renewed") > 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(p));
    redis_lock_free(p);
    redis_lock_client_close(c);
}

/* One fork of fork_racing_renewal_threads: the parent (client c) forks at once; the child
 * takes an auto-renewed lock (it starts a renewal thread of its own), lets the thread renew
 * it, and closes everything. Fails the test if the child hangs. */
static void fork_and_renew_in_child(redis_lock_client *c, int round)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        redis_lock_options o;
        redis_lock_options_init(&o);
        o.expire_ms = 1000;
        o.renewal_interval_ms = 20;
        o.auto_renewal = true;
        char name[32];
        snprintf(name, sizeof name, "race-child-%d", round);
        redis_lock *l = NULL;
        int bad = redis_lock_new(&l, c, name, &o) || redis_lock_acquire(l, 0);
        rt_sleep_ms(50); /* a couple of renewals */
        bad |= redis_lock_release(l) != 0;
        redis_lock_free(l);
        redis_lock_client_close(c);
        _exit(bad ? 1 : 0);
    }
    int status = wait_child(pid, 10000, "fork_racing_renewal_threads");
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void fork_racing_renewal_threads(void **state)
{
    (void)state;
    /* fork() at the moments the parent's renewal thread allocates: while it is being
     * born (right after the first auto-renewed acquire), while it renews (every 20 ms),
     * and while it ends. A lock the thread held there (the allocator's, OpenSSL's) must
     * not be copied held into the child, which would hang as soon as it needed it. */
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 1000;
    o.renewal_interval_ms = 20;
    o.auto_renewal = true;
    for (int round = 0; round < 20; round++) {
        redis_lock_client *c = rt_client(&rt_main);
        redis_lock *l[4];
        for (int i = 0; i < 4; i++) {
            char name[32];
            snprintf(name, sizeof name, "race-%d-%d", round, i);
            assert_rl(REDIS_LOCK_OK, redis_lock_new(&l[i], c, name, &o));
        }
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l[0], 0)); /* the thread starts */
        fork_and_renew_in_child(c, round);
        for (int i = 1; i < 4; i++)
            assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l[i], 0));
        rt_sleep_ms(round % 5 * 7); /* somewhere in the thread's renewals */
        fork_and_renew_in_child(c, round);
        for (int i = 0; i < 4; i++) {
            assert_rl(REDIS_LOCK_OK, redis_lock_release(l[i]));
            redis_lock_free(l[i]);
        }
        redis_lock_client_close(c); /* the thread ends */
    }
    redisReply *r = rt_cmd(&rt_main, "KEYS lock:race*"); /* every lock was released */
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
}

static void child_frees_handle_during_parents_renewal(void **state)
{
    (void)state;
    /* fork() while the parent's renewal thread waits for a reply (the server is paused):
     * the child's copy of the handle says a renewal is in flight, yet no thread in the
     * child will ever finish it. Freeing the handle in the child must not hang. */
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = new_lock(c, "inflight", 600, true); /* renewed every 400 ms */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    redisReply *r = rt_cmd(&rt_main, "CLIENT PAUSE 1200 ALL");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    rt_sleep_ms(700); /* the renewal at ~400 ms is stuck in the pause */
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        redis_lock_free(l);
        redis_lock_client_close(c);
        _exit(0);
    }
    int64_t t0 = rt_now_ms();
    int status = 0;
    bool hung = false;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (rt_now_ms() - t0 > 3000) {
            hung = true;
            rt_dump_stacks(pid);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        rt_sleep_ms(5);
    }
    rt_sleep_ms(600); /* the pause ends; the parent's renewal completes */
    int rrc = redis_lock_release(l); /* the pause may have outlasted the key: either is fine */
    assert_true(rrc == REDIS_LOCK_OK || rrc == REDIS_LOCK_ENOTHELD);
    redis_lock_free(l);
    redis_lock_client_close(c);
    if (hung)
        fail_msg("the child hung in redis_lock_free (waiting for its parent's renewal thread)");
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void child_cancel(bool use_first)
{
    /* a cancel in the child of a handle the parent is waiting with */
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *h = new_lock(c, "cw", 0, false), *w = new_lock(c, "cw", 0, false);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        rt_sleep_ms(100);
        bool locked = false;
        int rc = use_first ? redis_lock_locked(w, &locked) : 0;
        rc |= redis_lock_cancel(w);
        rc |= redis_lock_acquire(w, 0) != REDIS_LOCK_ECANCELED;
        _exit(rc ? 1 : 0);
    }
    int64_t t0 = rt_now_ms();
    int rc = redis_lock_acquire(w, 600);
    int64_t took = rt_now_ms() - t0;
    int status = wait_child(pid, 5000, "child_cancel");
    /* and the parent's later waits on that handle are not canceled either */
    int rc2 = redis_lock_acquire(w, 100);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(c);
    assert_rl(REDIS_LOCK_BUSY, rc);
    assert_true(took >= 600);
    assert_rl(REDIS_LOCK_BUSY, rc2);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void child_cancel_after_use_does_not_wake_parent(void **state)
{
    (void)state;
    /* the child uses the handle first, then cancels its copy */
    child_cancel(true);
}

static void child_cancel_first_does_not_wake_parent(void **state)
{
    (void)state;
    /* the child's very first call on its copy is the cancel (say, from a signal handler
     * installed before fork): it must not cancel the parent's wait */
    child_cancel(false);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(child_uses_inherited_client, rt_flush),
        cmocka_unit_test_setup(child_does_not_renew_parents_locks, rt_flush),
        cmocka_unit_test_setup(child_renews_its_own_locks, rt_flush),
        cmocka_unit_test_setup(fork_racing_renewal_threads, rt_flush),
        cmocka_unit_test_setup(child_frees_handle_during_parents_renewal, rt_flush),
        cmocka_unit_test_setup(child_cancel_after_use_does_not_wake_parent, rt_flush),
        cmocka_unit_test_setup(child_cancel_first_does_not_wake_parent, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
