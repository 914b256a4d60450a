/* labels: threaded */
/* Passwords (requirepass) and ACL users; a user without the CLIENT command; passwords
 * never shown in errors or logs. Each test starts a server of its own. */
#include "harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>

#define PASSWORD "s3cret-Pw"

/* A raw connection to a server that wants AUTH. */
static redisReply *auth_cmd(const rt_server *s, const char *user, const char *pass,
                            const char *cmd)
{
    redisContext *ctx = rt_raw(s);
    redisReply *r = user ? redisCommand(ctx, "AUTH %s %s", user, pass)
                         : redisCommand(ctx, "AUTH %s", pass);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    /* cmd: words separated by single spaces */
    char buf[256];
    const char *argv[8];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", cmd);
    for (char *tok = strtok(buf, " "); tok && argc < 8; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    r = redisCommandArgv(ctx, argc, argv, NULL);
    assert_non_null(r);
    redisFree(ctx);
    return r;
}

static int open_url(const char *url, redis_lock_client **out)
{
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = url;
    *out = NULL;
    return redis_lock_client_open(out, &o);
}

static void assert_no_secret(const char *text, const char *secret)
{
    if (text && strstr(text, secret))
        fail_msg("\"%s\" shows the password", text);
}

static void lock_roundtrip(redis_lock_client *c, const char *name)
{
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, name, NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    bool locked = false;
    assert_rl(REDIS_LOCK_OK, redis_lock_locked(l, &locked));
    assert_true(locked);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
}

/* ---- requirepass ---- */

typedef struct {
    char text[8192];
    size_t len;
    pthread_mutex_t mu;
} log_sink;

static void collect(int level, const char *message, void *payload)
{
    (void)level;
    log_sink *s = payload;
    pthread_mutex_lock(&s->mu);
    int n = snprintf(s->text + s->len, sizeof s->text - s->len, "%s\n", message);
    if (n > 0 && s->len + (size_t)n < sizeof s->text)
        s->len += (size_t)n;
    pthread_mutex_unlock(&s->mu);
}

static void requirepass_url_password(void **state)
{
    (void)state;
    rt_server s;
    rt_server_start(&s, "requirepass " PASSWORD, 1);
    char url[400];
    snprintf(url, sizeof url, "unix://:" PASSWORD "@%s", s.sock);
    log_sink sink = {.len = 0};
    pthread_mutex_init(&sink.mu, NULL);
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = url;
    o.log = collect;
    o.log_payload = &sink;
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &o));
    lock_roundtrip(c, "pw");
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.expire_ms = 900;
    lo.auto_renewal = true;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "pw-renewed", &lo));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    rt_sleep_ms(1200); /* the renewal thread authenticates its own connection */
    redisReply *r = auth_cmd(&s, NULL, PASSWORD, "EXISTS lock:pw-renewed");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
    /* TCP, too */
    snprintf(url, sizeof url, "redis://:" PASSWORD "@127.0.0.1:%d/0", s.port);
    c = rt_client_url(url);
    lock_roundtrip(c, "pw-tcp");
    redis_lock_client_close(c);
    /* the log told where it connected, with the password masked */
    pthread_mutex_lock(&sink.mu);
    assert_no_secret(sink.text, PASSWORD);
    if (!strstr(sink.text, "***"))
        fail_msg("no masked URL in the log: %s", sink.text);
    pthread_mutex_unlock(&sink.mu);
    pthread_mutex_destroy(&sink.mu);
    rt_server_stop(&s);
}

static void password_and_database(void **state)
{
    (void)state;
    /* AUTH then SELECT: the lock lands in the URL's database */
    rt_server s;
    rt_server_start(&s, "requirepass " PASSWORD, 1);
    char url[400];
    snprintf(url, sizeof url, "unix://:" PASSWORD "@%s?db=5", s.sock);
    redis_lock_client *c = rt_client_url(url);
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "in-db5", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    redisContext *ctx = rt_raw(&s);
    redisReply *r = redisCommand(ctx, "AUTH %s", PASSWORD);
    freeReplyObject(r);
    r = redisCommand(ctx, "EXISTS lock:in-db5");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = redisCommand(ctx, "SELECT 5");
    freeReplyObject(r);
    r = redisCommand(ctx, "EXISTS lock:in-db5");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(ctx);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
    snprintf(url, sizeof url, "redis://:" PASSWORD "@127.0.0.1:%d/7", s.port);
    c = rt_client_url(url);
    lock_roundtrip(c, "in-db7");
    redis_lock_client_close(c);
    rt_server_stop(&s);
}

static void password_not_in_connection_errors(void **state)
{
    (void)state;
    /* errors about the connection name the server with the password masked */
    rt_server s;
    rt_server_start(&s, "requirepass " PASSWORD, 1);
    char url[400];
    snprintf(url, sizeof url, "redis://:" PASSWORD "@127.0.0.1:%d/0", s.port);
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = url;
    o.command_timeout_ms = 300;
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &o));
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "masked", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    kill(s.pid, SIGSTOP); /* no answer: a reply timeout */
    bool locked;
    assert_rl(REDIS_LOCK_ECONN, redis_lock_locked(l, &locked));
    assert_no_secret(redis_lock_last_error(), PASSWORD);
    kill(s.pid, SIGCONT);
    rt_server_restart(&s); /* a dropped connection */
    int rc = redis_lock_locked(l, &locked);
    assert_no_secret(redis_lock_last_error(), PASSWORD);
    assert_true(rc == REDIS_LOCK_OK || rc == REDIS_LOCK_ECONN);
    kill(s.pid, SIGKILL); /* nobody there */
    waitpid(s.pid, NULL, 0);
    s.pid = 0;
    assert_rl(REDIS_LOCK_ECONN, redis_lock_release(l));
    assert_no_secret(redis_lock_last_error(), PASSWORD);
    assert_rl(REDIS_LOCK_ECONN, redis_lock_acquire(l, 200));
    assert_no_secret(redis_lock_last_error(), PASSWORD);
    redis_lock_free(l);
    redis_lock_client_close(c);
    rt_server_stop(&s);
}

static void requirepass_wrong_or_missing(void **state)
{
    (void)state;
    rt_server s;
    rt_server_start(&s, "requirepass " PASSWORD, 1);
    char url[400];
    redis_lock_client *c = NULL;
    /* wrong password */
    snprintf(url, sizeof url, "unix://:Wrong-Guess-77@%s", s.sock);
    assert_rl(REDIS_LOCK_EAUTH, open_url(url, &c));
    assert_null(c);
    if (!strstr(redis_lock_last_error(), "WRONGPASS"))
        fail_msg("wrong password: %s", redis_lock_last_error());
    assert_no_secret(redis_lock_last_error(), "Wrong-Guess-77");
    assert_no_secret(redis_lock_last_error(), PASSWORD);
    snprintf(url, sizeof url, "redis://:Wrong-Guess-77@127.0.0.1:%d", s.port);
    assert_rl(REDIS_LOCK_EAUTH, open_url(url, &c));
    assert_no_secret(redis_lock_last_error(), "Wrong-Guess-77");
    /* no password at all */
    snprintf(url, sizeof url, "unix://%s", s.sock);
    assert_rl(REDIS_LOCK_EAUTH, open_url(url, &c));
    assert_null(c);
    if (!strstr(redis_lock_last_error(), "NOAUTH"))
        fail_msg("no password: %s", redis_lock_last_error());
    /* a password for a user that does not exist */
    snprintf(url, sizeof url, "unix://nobody:" PASSWORD "@%s", s.sock);
    assert_rl(REDIS_LOCK_EAUTH, open_url(url, &c));
    assert_no_secret(redis_lock_last_error(), PASSWORD);
    rt_server_stop(&s);
}

static void requirepass_password_changes_under_client(void **state)
{
    (void)state;
    /* the password changes while the client is open: new connections fail with EAUTH
     * (no secret shown), the next ones work once it is back */
    rt_server s;
    rt_server_start(&s, "requirepass " PASSWORD, 0);
    char url[400];
    snprintf(url, sizeof url, "unix://:" PASSWORD "@%s", s.sock);
    redis_lock_client *c = rt_client_url(url);
    redisReply *r = auth_cmd(&s, NULL, PASSWORD, "CONFIG SET requirepass other-Pw-9");
    freeReplyObject(r);
    r = auth_cmd(&s, NULL, "other-Pw-9", "CLIENT KILL TYPE normal SKIPME yes");
    freeReplyObject(r);
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "chg", NULL));
    assert_rl(REDIS_LOCK_EAUTH, redis_lock_acquire(l, 0));
    assert_true(strstr(redis_lock_last_error(), "WRONGPASS") != NULL);
    assert_no_secret(redis_lock_last_error(), PASSWORD);
    r = auth_cmd(&s, NULL, "other-Pw-9", "CONFIG SET requirepass " PASSWORD);
    freeReplyObject(r);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
    rt_server_stop(&s);
}

static void password_with_special_characters(void **state)
{
    (void)state;
    rt_server s;
    /* '@', ':', '%' and '/' in the password: %-escaped in the URL */
    rt_server_start(&s, "requirepass \"p@ss:w%rd/x\"", 1);
    char url[400];
    snprintf(url, sizeof url, "unix://:p%%40ss%%3Aw%%25rd%%2Fx@%s", s.sock);
    redis_lock_client *c = rt_client_url(url);
    lock_roundtrip(c, "special");
    redis_lock_client_close(c);
    snprintf(url, sizeof url, "redis://:p%%40ss%%3Aw%%25rd%%2Fx@127.0.0.1:%d/0", s.port);
    c = rt_client_url(url);
    lock_roundtrip(c, "special-tcp");
    redis_lock_client_close(c);
    /* unescaped '@' in the password is taken up to the last '@' */
    snprintf(url, sizeof url, "redis://:p@ss:w%%25rd%%2Fx@127.0.0.1:%d/0", s.port);
    c = rt_client_url(url);
    lock_roundtrip(c, "lenient");
    redis_lock_client_close(c);
    rt_server_stop(&s);
}

/* ---- ACL users ---- */

#define ACL_CONF                                        \
    "user alice on >secret ~* &* +@all\n"               \
    "user bob on >bobs-Pass ~* &* +@all -client\n"            \
    "user carol on >carols-Pass ~* &* +@all -client +client|id\n"

static bool connection_of_user(const rt_server *s, const char *user)
{
    redisReply *r = rt_cmd(s, "CLIENT LIST");
    char needle[64];
    snprintf(needle, sizeof needle, "user=%s ", user);
    bool yes = r->type == REDIS_REPLY_STRING && strstr(r->str, needle);
    freeReplyObject(r);
    return yes;
}

static void acl_user(void **state)
{
    (void)state;
    rt_server s;
    rt_server_start(&s, ACL_CONF, 1);
    char url[400];
    snprintf(url, sizeof url, "redis://alice:secret@127.0.0.1:%d/0", s.port);
    redis_lock_client *c = rt_client_url(url);
    lock_roundtrip(c, "alice-tcp");
    assert_true(connection_of_user(&s, "alice"));
    redis_lock_client_close(c);
    snprintf(url, sizeof url, "unix://alice:secret@%s", s.sock);
    c = rt_client_url(url);
    lock_roundtrip(c, "alice-unix");
    redis_lock_client_close(c);
    /* wrong password for the user */
    snprintf(url, sizeof url, "unix://alice:not-it@%s", s.sock);
    redis_lock_client *bad = NULL;
    assert_rl(REDIS_LOCK_EAUTH, open_url(url, &bad));
    assert_true(strstr(redis_lock_last_error(), "WRONGPASS") != NULL);
    assert_no_secret(redis_lock_last_error(), "not-it");
    /* a user name with no password is refused up front */
    snprintf(url, sizeof url, "unix://alice@%s", s.sock);
    int rc = open_url(url, &bad);
    assert_true(rc == REDIS_LOCK_EINVAL || rc == REDIS_LOCK_EAUTH);
    assert_null(bad);
    rt_server_stop(&s);
}

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

/* A user who may not run CLIENT UNBLOCK: waits must still end on time (the library then
 * drops the waiting connection), cancels and releases still wake it. */
static void waits_without_unblock(const char *credentials)
{
    rt_server s;
    rt_server_start(&s, ACL_CONF, 0);
    char alice_url[400], bob_url[400];
    snprintf(alice_url, sizeof alice_url, "unix://alice:secret@%s", s.sock);
    snprintf(bob_url, sizeof bob_url, "unix://%s@%s", credentials, s.sock);
    redis_lock_client *ac = rt_client_url(alice_url);
    redis_lock_client *bc = NULL;
    int rc = open_url(bob_url, &bc);
    if (rc) {
        redis_lock_client_close(ac);
        rt_server_stop(&s);
        fail_msg("a user without the CLIENT command cannot even open a client: %s: %s",
                 redis_lock_code_name(rc), redis_lock_last_error());
    }
    lock_roundtrip(bc, "bob-alone");
    redis_lock *h = NULL, *w = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&h, ac, "shared", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&w, bc, "shared", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    for (int i = 0; i < 3; i++) {
        int64_t t0 = rt_now_ms();
        assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(w, 300));
        int64_t took = rt_now_ms() - t0;
        assert_true(took >= 300 && took < 1300);
    }
    /* the dropped connections left no BLPOP behind on the server */
    rt_sleep_ms(100);
    redisReply *r = rt_cmd(&s, "CLIENT LIST");
    assert_null(strstr(r->str, "cmd=blpop"));
    freeReplyObject(r);
    /* a cancel from another thread ends bob's wait as well */
    acq_arg a = {w, 10000, -100, 0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acq_thread, &a), 0);
    rt_sleep_ms(300);
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel(w));
    pthread_join(t, NULL);
    assert_rl(REDIS_LOCK_ECANCELED, a.rc);
    assert_true(a.took_ms < 1500);
    /* and a release still wakes bob promptly */
    a = (acq_arg){w, 10000, -100, 0};
    assert_int_equal(pthread_create(&t, NULL, acq_thread, &a), 0);
    rt_sleep_ms(300);
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
    pthread_join(t, NULL);
    assert_rl(REDIS_LOCK_OK, a.rc);
    assert_true(rt_now_ms() - t0 < 1000);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(ac);
    redis_lock_client_close(bc);
    rt_server_stop(&s);
}

static void acl_user_without_client_command(void **state)
{
    (void)state;
    /* bob may not run CLIENT at all: neither CLIENT ID nor CLIENT UNBLOCK */
    waits_without_unblock("bob:bobs-Pass");
}

static void acl_user_without_client_unblock(void **state)
{
    (void)state;
    /* carol may run CLIENT ID but not CLIENT UNBLOCK */
    waits_without_unblock("carol:carols-Pass");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(requirepass_url_password),
        cmocka_unit_test(password_and_database),
        cmocka_unit_test(password_not_in_connection_errors),
        cmocka_unit_test(requirepass_wrong_or_missing),
        cmocka_unit_test(requirepass_password_changes_under_client),
        cmocka_unit_test(password_with_special_characters),
        cmocka_unit_test(acl_user),
        cmocka_unit_test(acl_user_without_client_command),
        cmocka_unit_test(acl_user_without_client_unblock),
    };
    return RT_RUN(tests, argc, argv, 0);
}
