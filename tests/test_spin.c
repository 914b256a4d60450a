/* labels: threaded */
/* Every retry loop backs off: at least 100 ms (with jitter) between attempts at a server
 * that fails. Each test makes the server fail for 2 s and counts, on the server, what the
 * library sent it in that time:
 *   - a demoted master (REPLICAOF to a closed port: writes answer READONLY): the renewal
 *     thread's EVALSHA/EVAL calls (INFO commandstats);
 *   - a stopped server (SIGSTOP: connections queue in its backlog, nothing answers): the
 *     renewal thread's, then an acquire's, connection attempts, counted by the server
 *     when it resumes (INFO stats total_connections_received);
 *   - a server that is down (killed, restarted 2 s later): it refuses every connection at
 *     once and cannot count them, so the test counts the connect() calls to its socket
 *     (this program's connect() counts them and calls the real one).
 * The renewal batches locks due soon (within a tenth of their interval) with those due
 * now: with an interval of 2 s that window (200 ms) is longer than a retry, which is what
 * made a failing renewal retry at once, tens of thousands of times in 2 s. */
#include "harness.h"
#include "internal.h"

#include <dlfcn.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define FAIL_MS 2000
#define MAX_ATTEMPTS 30

/* connect() calls to the test server's socket, counted on their way to the real one: a
 * server that is down cannot count the attempts it refuses. */
static atomic_long server_connects;

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    static int (*real)(int, const struct sockaddr *, socklen_t);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "connect");
    if (addr && addr->sa_family == AF_UNIX && rt_main.sock[0] &&
        strcmp(((const struct sockaddr_un *)addr)->sun_path, rt_main.sock) == 0)
        atomic_fetch_add(&server_connects, 1);
    return real(fd, addr, len);
}

static int flush_and_load(void **state)
{
    rt_flush(state);
    for (int i = 0; i < RL_SCRIPT_COUNT; i++) {
        redisReply *r = rt_cmd(&rt_main, "SCRIPT LOAD %s", rl_script_source(i));
        if (r->type != REDIS_REPLY_STRING || strcmp(r->str, rl_script_sha(i)) != 0)
            fail_msg("SCRIPT LOAD of script %d: %s", i, r->str ? r->str : "?");
        freeReplyObject(r);
    }
    return 0;
}

/* A loopback port nothing listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    socklen_t len = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        fail_msg("cannot find a closed port");
    close(fd);
    return ntohs(a.sin_port);
}

/* The value of "field:N" in an INFO section (0 if absent). */
static long long info_field(const char *section, const char *field)
{
    redisReply *r = rt_cmd(&rt_main, "INFO %s", section);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    long long v = 0;
    const char *p = strstr(r->str, field);
    if (p && p[strlen(field)] == ':')
        v = atoll(p + strlen(field) + 1);
    freeReplyObject(r);
    return v;
}

/* EVALSHA and EVAL calls the server has seen, including those it refused. */
static long long script_calls(void)
{
    redisReply *r = rt_cmd(&rt_main, "INFO commandstats");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    long long n = 0;
    static const char *const cmds[] = {"cmdstat_evalsha:", "cmdstat_eval:"};
    for (int i = 0; i < 2; i++) {
        const char *p = strstr(r->str, cmds[i]);
        if (!p)
            continue;
        const char *calls = strstr(p, "calls=");
        const char *rejected = strstr(p, "rejected_calls=");
        const char *eol = strchr(p, '\r');
        if (calls && (!eol || calls < eol))
            n += atoll(calls + 6);
        if (rejected && (!eol || rejected < eol))
            n += atoll(rejected + 15);
    }
    freeReplyObject(r);
    return n;
}

typedef struct {
    atomic_int calls;
} lost_arg;

static void on_lost(redis_lock *l, void *payload)
{
    (void)l;
    lost_arg *a = payload;
    atomic_fetch_add(&a->calls, 1);
}

/* A lock of 6 s, renewed every 2 s. */
static redis_lock *renewed_lock(redis_lock_client *c, const char *name, lost_arg *a)
{
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 6000;
    o.renewal_interval_ms = 2000;
    o.auto_renewal = true;
    o.on_lost = on_lost;
    o.on_lost_payload = a;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, name, &o));
    return l;
}

static redis_lock_client *client_with_timeouts(int ms)
{
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = rt_main.url;
    o.connect_timeout_ms = ms;
    o.command_timeout_ms = ms;
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &o));
    return c;
}

/* After the server came back: the renewal goes on and the lock stays ours. */
static void assert_still_held(redis_lock *l, const char *key, lost_arg *a, int64_t t0)
{
    /* past the expiry of the last renewal before the failure (t0 + 2 s + 6 s): only a
     * renewal after the failure keeps the key */
    int64_t until = t0 + 8500;
    while (rt_now_ms() < until)
        rt_sleep_ms(50);
    assert_int_equal(atomic_load(&a->calls), 0);
    rt_assert_owner(l, redis_lock_id(l));
    long long pttl = rt_cmd_int(&rt_main, "PTTL %s", key);
    assert_true(pttl > 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
}

static void renewal_backs_off_on_readonly(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    lost_arg a = {0};
    redis_lock *l = renewed_lock(c, "spin-ro", &a);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    int64_t t0 = rt_now_ms();
    rt_sleep_ms(1800); /* the first renewal is due at 2 s: it meets the failure */
    long long before = script_calls();
    redisReply *r = rt_cmd(&rt_main, "REPLICAOF 127.0.0.1 %d", closed_port());
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    rt_sleep_ms(FAIL_MS);
    long long sent = script_calls() - before;
    r = rt_cmd(&rt_main, "REPLICAOF NO ONE");
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    print_message("READONLY for %d ms: the renewal sent %lld EVALSHA/EVAL (at most %d "
                  "allowed)\n", FAIL_MS, sent, MAX_ATTEMPTS);
    assert_true(sent >= 1); /* the renewal did meet the failure */
    assert_true(sent <= MAX_ATTEMPTS);
    assert_still_held(l, "lock:spin-ro", &a, t0);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

/* Stop the server for FAIL_MS and return how many connections it accepted meanwhile
 * (counted when it resumes), less the INFO connections of the count itself. */
static long long connections_while_stopped(void (*during)(void *), void *arg)
{
    long long before = info_field("stats", "total_connections_received");
    assert_int_equal(kill(rt_main.pid, SIGSTOP), 0);
    int64_t end = rt_now_ms() + FAIL_MS;
    if (during)
        during(arg);
    while (rt_now_ms() < end)
        rt_sleep_ms(10);
    assert_int_equal(kill(rt_main.pid, SIGCONT), 0);
    rt_sleep_ms(200); /* let it accept what queued up */
    /* the connection of this INFO counts itself */
    return info_field("stats", "total_connections_received") - before - 1;
}

static void renewal_backs_off_when_server_stopped(void **state)
{
    (void)state;
    /* a short command timeout makes every attempt end fast, as a refused one would */
    redis_lock_client *c = client_with_timeouts(20);
    lost_arg a = {0};
    redis_lock *l = renewed_lock(c, "spin-stopped", &a);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    int64_t t0 = rt_now_ms();
    rt_sleep_ms(1800);
    long long n = connections_while_stopped(NULL, NULL);
    print_message("server stopped for %d ms: the renewal made %lld connection attempts "
                  "(at most %d allowed)\n", FAIL_MS, n, MAX_ATTEMPTS);
    assert_true(n >= 1);
    assert_true(n <= MAX_ATTEMPTS);
    assert_still_held(l, "lock:spin-stopped", &a, t0);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static void renewal_backs_off_when_server_down(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    lost_arg a = {0};
    redis_lock *l = renewed_lock(c, "spin-down", &a);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    int64_t t0 = rt_now_ms();
    rt_sleep_ms(1800);
    /* killed: every connection attempt is refused at once (the socket file stays) */
    assert_int_equal(kill(rt_main.pid, SIGKILL), 0);
    long before = atomic_load(&server_connects);
    rt_sleep_ms(FAIL_MS);
    long n = atomic_load(&server_connects) - before;
    rt_server_restart(&rt_main); /* empty: the lock is gone with the old server */
    print_message("server down for %d ms: the renewal made %ld connection attempts (at most "
                  "%d allowed)\n", FAIL_MS, n, MAX_ATTEMPTS);
    assert_true(n >= 1);
    assert_true(n <= MAX_ATTEMPTS);
    /* the restarted server has no key: the next renewal finds it gone */
    int64_t end = t0 + 8000;
    while (atomic_load(&a.calls) == 0 && rt_now_ms() < end)
        rt_sleep_ms(20);
    assert_int_equal(atomic_load(&a.calls), 1);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

typedef struct {
    redis_lock *l;
    int rc;
    char err[256];
} acquire_arg;

static void acquire_during(void *p)
{
    acquire_arg *a = p;
    a->rc = redis_lock_acquire(a->l, FAIL_MS - 200);
    snprintf(a->err, sizeof a->err, "%s", redis_lock_last_error());
}

static void acquire_backs_off_when_server_stopped(void **state)
{
    (void)state;
    redis_lock_client *c = client_with_timeouts(20);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 10000;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "spin-acquire", &o));
    acquire_arg a = {l, 0, ""};
    long long n = connections_while_stopped(acquire_during, &a);
    print_message("server stopped for %d ms: an acquire with a %d ms timeout returned %s "
                  "(%s) after %lld connection attempts (at most %d allowed)\n", FAIL_MS,
                  FAIL_MS - 200, redis_lock_code_name(a.rc), a.err, n, MAX_ATTEMPTS);
    assert_int_equal(a.rc, REDIS_LOCK_ECONN);
    assert_true(n >= 1);
    assert_true(n <= MAX_ATTEMPTS);
    /* The server is back. The tries it queued while stopped ran when it resumed, after
     * the acquire had given up (and its give-back had found the server silent too): the
     * key may hold our id, but only with the lock's expiry, and the handle can free it. */
    long long pttl = rt_cmd_int(&rt_main, "PTTL lock:spin-acquire");
    assert_true(pttl == -2 || (pttl > 0 && pttl <= o.expire_ms));
    int rc = redis_lock_release(l);
    assert_true(rc == REDIS_LOCK_OK || rc == REDIS_LOCK_ENOTHELD);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:spin-acquire"), 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
}

/* The back-off itself: never under the minimum, doubling to the cap, with a random part of
 * up to half the step (so that two clients that failed together drift apart). */
static void backoff_grows_with_jitter(void **state)
{
    (void)state;
    rl_backoff b = {0};
    int64_t step = RL_BACKOFF_MIN_MS;
    for (int i = 0; i < 8; i++) {
        int64_t w = rl_backoff_next(&b, 1000);
        if (w < step || w > step + step / 2)
            fail_msg("wait %d: %lld ms, expected %lld..%lld", i, (long long)w,
                     (long long)step, (long long)(step + step / 2));
        step = step * 2 > 1000 ? 1000 : step * 2;
    }
    rl_backoff_reset(&b);
    assert_true(rl_backoff_next(&b, 1000) <= RL_BACKOFF_MIN_MS * 3 / 2);
    /* a cap under the minimum still waits the minimum */
    rl_backoff tiny = {0};
    assert_true(rl_backoff_next(&tiny, 10) >= RL_BACKOFF_MIN_MS);
    /* jitter: 50 first waits are not all the same */
    int64_t first = -1;
    bool differ = false;
    for (int i = 0; i < 50; i++) {
        rl_backoff one = {0};
        int64_t w = rl_backoff_next(&one, 1000);
        if (first >= 0 && w != first)
            differ = true;
        first = w;
    }
    assert_true(differ);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(backoff_grows_with_jitter),
        cmocka_unit_test_setup(renewal_backs_off_on_readonly, flush_and_load),
        cmocka_unit_test_setup(renewal_backs_off_when_server_stopped, flush_and_load),
        cmocka_unit_test_setup(renewal_backs_off_when_server_down, flush_and_load),
        cmocka_unit_test_setup(acquire_backs_off_when_server_stopped, flush_and_load),
    };
    return RT_RUN(tests, argc, argv, 1);
}
