/* labels: threaded */
/* Every row of docs/design.md's error table (ENOMEM aside: see test_oom.c), the details the
 * table leaves open, redis_lock_with's semantics and redis_lock_cancel. */
#include "harness.h"

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static redis_lock *new_lock_id(redis_lock_client *c, const char *name, const char *id)
{
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.id = id;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, name, &o));
    return l;
}

static void assert_error_mentions(const char *needle)
{
    const char *e = redis_lock_last_error();
    if (!e || !strstr(e, needle))
        fail_msg("last error \"%s\" does not mention \"%s\"", e ? e : "(null)", needle);
}

/* ---- BUSY ---- */

static void busy_try_and_timeout(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *a = rt_new_lock(c, "busy", 0), *b = rt_new_lock(c, "busy", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(b, 0));
    assert_true(redis_lock_last_error()[0] != '\0');
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(b, 200));
    int64_t took = rt_now_ms() - t0;
    assert_true(took >= 200 && took < 1500);
    /* a BUSY acquire left the key alone */
    redisReply *r = rt_cmd(&rt_main, "GET lock:busy");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, redis_lock_id(a));
    freeReplyObject(r);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(a));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(b, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(b));
    redis_lock_free(a);
    redis_lock_free(b);
    redis_lock_client_close(c);
}

/* ---- EALREADY ---- */

static void ealready_same_handle_and_same_id(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *a = new_lock_id(c, "al", "owner-1"), *b = new_lock_id(c, "al", "owner-1");
    redis_lock *other = new_lock_id(c, "al", "owner-2");
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    assert_rl(REDIS_LOCK_EALREADY, redis_lock_acquire(a, 0));
    /* blocking acquires say so at once as well, not at their deadline */
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_EALREADY, redis_lock_acquire(a, 5000));
    assert_rl(REDIS_LOCK_EALREADY, redis_lock_acquire(b, -1));
    assert_true(rt_now_ms() - t0 < 1000);
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(other, 0));
    /* another handle with the same id may release it: the owner is the id in Redis */
    assert_rl(REDIS_LOCK_OK, redis_lock_release(b));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(a));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(other, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(other));
    redis_lock_free(a);
    redis_lock_free(b);
    redis_lock_free(other);
    redis_lock_client_close(c);
}

static void ealready_not_after_expiry(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *a = rt_new_lock(c, "alx", 150);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    assert_rl(REDIS_LOCK_EALREADY, redis_lock_acquire(a, 0));
    rt_sleep_ms(400);
    /* the key expired: this handle may simply acquire again */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(a));
    redis_lock_free(a);
    redis_lock_client_close(c);
}

/* ---- ENOTHELD ---- */

static void enotheld_never_acquired_and_twice(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *a = rt_new_lock(c, "nh", 1000), *b = rt_new_lock(c, "nh", 1000);
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(a));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_extend(a, 1000));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    /* held by someone else */
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(b));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_extend(b, 1000));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:nh"), 1);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(a));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(a));
    redis_lock_free(a);
    redis_lock_free(b);
    redis_lock_client_close(c);
}

static void enotheld_after_expiry(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *a = rt_new_lock(c, "nhx", 150);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    rt_sleep_ms(400);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:nhx"), 0);
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_extend(a, 1000));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(a));
    /* and when someone else took it after the expiry */
    redis_lock *b = rt_new_lock(c, "nhx", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    rt_sleep_ms(400);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(b, 0));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(a));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_extend(a, 0));
    rt_assert_owner(a, redis_lock_id(b));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(b));
    redis_lock_free(a);
    redis_lock_free(b);
    redis_lock_client_close(c);
}

static void enotheld_after_reset(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *a = rt_new_lock(c, "nhr", 0), *b = rt_new_lock(c, "nhr", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(a, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(b));
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(a));
    /* reset of a free lock is fine too */
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(b));
    redis_lock_free(a);
    redis_lock_free(b);
    redis_lock_client_close(c);
}

/* ---- EINVAL ---- */

static void einval_lock_options(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = (redis_lock *)(uintptr_t)1;
    redis_lock_options o;

    redis_lock_options_init(&o);
    o.expire_ms = -1;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "x", &o));
    assert_null(l);
    assert_error_mentions("expire");

    redis_lock_options_init(&o);
    o.auto_renewal = true;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "x", &o));
    assert_null(l);
    assert_error_mentions("auto_renewal");

    redis_lock_options_init(&o);
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "", &o));
    assert_null(l);
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, NULL, &o));
    assert_null(l);
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "", NULL));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, NULL, "x", NULL));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(NULL, c, "x", NULL));

    /* option struct versions */
    redis_lock_options_init(&o);
    assert_int_equal(o.version, REDIS_LOCK_OPTIONS_VERSION);
    o.version = 0;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "x", &o));
    assert_error_mentions("version");
    o.version = REDIS_LOCK_OPTIONS_VERSION + 1;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "x", &o));
    assert_null(l);

    /* the other numeric options */
    redis_lock_options_init(&o);
    o.expire_ms = 1000;
    o.auto_renewal = true;
    o.renewal_interval_ms = 1000;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "x", &o));
    o.renewal_interval_ms = -1;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "x", &o));
    redis_lock_options_init(&o);
    o.signal_expire_ms = 0;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "x", &o));
    redis_lock_options_init(&o);
    o.max_hold_ms = -5;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "x", &o));
    redis_lock_options_init(&o);
    o.id = "";
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "x", &o));
    assert_null(l);

    /* NULL handles and outputs */
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_acquire(NULL, 0));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_release(NULL));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_extend(NULL, 10));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_reset(NULL));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cancel(NULL));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_reset_all(NULL, NULL));
    redis_lock *ok = rt_new_lock(c, "x", 0);
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_locked(ok, NULL));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_ttl(ok, NULL));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_get_owner_id(ok, NULL));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_with(ok, 0, NULL, NULL));
    /* nothing was written by any of it */
    assert_int_equal(rt_cmd_int(&rt_main, "DBSIZE"), 0);
    redis_lock_free(ok);
    redis_lock_client_close(c);
}

static void einval_timeouts_and_extend(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = rt_new_lock(c, "to", 0), *e = rt_new_lock(c, "to2", 1000);
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_acquire(l, -2));
    assert_error_mentions("timeout");
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_acquire(l, INT64_MIN));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:to"), 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e, 0));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_extend(e, -1));
    /* extend(0) without an expiry of its own: python's TypeError */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_extend(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(e));
    redis_lock_free(l);
    redis_lock_free(e);
    redis_lock_client_close(c);
}

static void einval_client_options(void **state)
{
    (void)state;
    redis_lock_client_options o;
    redis_lock_client *c = (redis_lock_client *)(uintptr_t)1;
    redis_lock_client_options_init(&o);
    assert_int_equal(o.version, REDIS_LOCK_CLIENT_OPTIONS_VERSION);
    assert_int_equal(o.connect_timeout_ms, 2000);
    assert_int_equal(o.command_timeout_ms, 2000);
    o.url = rt_main.url;
    o.version = 99;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_client_open(&c, &o));
    assert_null(c);
    assert_error_mentions("version");
    o.version = 0;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_client_open(&c, &o));
    redis_lock_client_options_init(&o);
    o.url = rt_main.url;
    o.connect_timeout_ms = 0;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_client_open(&c, &o));
    o.connect_timeout_ms = 100;
    o.command_timeout_ms = -1;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_client_open(&c, &o));
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_client_open(NULL, &o));
    /* the good options open */
    o.command_timeout_ms = 100;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &o));
    assert_non_null(c);
    redis_lock_client_close(c);
    redis_lock_client_close(NULL); /* a no-op */
    redis_lock_free(NULL);
}

/* ---- ETOOLONG ---- */

static void etoolong_only_positive_timeouts(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = rt_new_lock(c, "tl", 300), *h = rt_new_lock(c, "tl", 0);
    assert_rl(REDIS_LOCK_ETOOLONG, redis_lock_acquire(l, 301));
    assert_error_mentions("expir");
    assert_rl(REDIS_LOCK_ETOOLONG, redis_lock_acquire(l, 100000));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:tl"), 0);
    /* -1 (forever) and 0 are always allowed, and a timeout up to the expiry */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, -1));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 300));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    /* ETOOLONG is decided before anything is sent: also while another holds it */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_ETOOLONG, redis_lock_acquire(l, 5000));
    assert_true(rt_now_ms() - t0 < 500);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
    /* with auto-renewal a long timeout is fine */
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 300;
    o.auto_renewal = true;
    redis_lock *r = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&r, c, "tl", &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(r, 60000));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(r));
    redis_lock_free(r);
    redis_lock_free(l);
    redis_lock_free(h);
    redis_lock_client_close(c);
}

/* ---- ENOEXPIRE ---- */

static void enoexpire(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *n = rt_new_lock(c, "ne", 0), *e = rt_new_lock(c, "ne2", 5000);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(n, 0));
    assert_rl(REDIS_LOCK_ENOEXPIRE, redis_lock_extend(n, 1000));
    assert_int_equal(rt_cmd_int(&rt_main, "PTTL lock:ne"), -1);
    /* a lock created with an expiry whose key lost its TTL (PERSIST by someone) */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e, 0));
    assert_int_equal(rt_cmd_int(&rt_main, "PERSIST lock:ne2"), 1);
    assert_rl(REDIS_LOCK_ENOEXPIRE, redis_lock_extend(e, 0));
    assert_rl(REDIS_LOCK_ENOEXPIRE, redis_lock_extend(e, 2000));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(n));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(e));
    redis_lock_free(n);
    redis_lock_free(e);
    redis_lock_client_close(c);
}

/* ---- ECONN ---- */

static void open_econn(const char *url, const char *mention)
{
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = url;
    o.connect_timeout_ms = 1000;
    redis_lock_client *c = (redis_lock_client *)(uintptr_t)1;
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_ECONN, redis_lock_client_open(&c, &o));
    assert_null(c);
    assert_true(rt_now_ms() - t0 < 3000);
    if (mention)
        assert_error_mentions(mention);
}

static void econn_missing_unix_socket(void **state)
{
    (void)state;
    char url[300];
    snprintf(url, sizeof url, "unix://%s/no-such.sock", rt_main.dir);
    open_econn(url, "no-such.sock");
}

static void econn_closed_tcp_port(void **state)
{
    (void)state;
    /* a port nobody listens on: bind, learn the port, close */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    socklen_t len = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    char url[64], port[16];
    snprintf(port, sizeof port, "%d", ntohs(a.sin_port));
    snprintf(url, sizeof url, "redis://127.0.0.1:%s/0", port);
    open_econn(url, port);
}

/* ---- ESERVER ---- */

static void eserver_wrongtype(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = rt_new_lock(c, "x", 1000);
    assert_int_equal(rt_cmd_int(&rt_main, "RPUSH lock:x a b"), 2);
    assert_rl(REDIS_LOCK_ESERVER, redis_lock_acquire(l, 0));
    assert_error_mentions("WRONGTYPE");
    assert_rl(REDIS_LOCK_ESERVER, redis_lock_acquire(l, 500));
    assert_error_mentions("WRONGTYPE");
    assert_rl(REDIS_LOCK_ESERVER, redis_lock_release(l));
    assert_error_mentions("WRONGTYPE");
    assert_rl(REDIS_LOCK_ESERVER, redis_lock_extend(l, 1000));
    assert_error_mentions("WRONGTYPE");
    char *owner = NULL;
    assert_rl(REDIS_LOCK_ESERVER, redis_lock_get_owner_id(l, &owner));
    assert_null(owner);
    assert_error_mentions("WRONGTYPE");
    /* the list is untouched */
    assert_int_equal(rt_cmd_int(&rt_main, "LLEN lock:x"), 2);
    /* the client is still fine after error replies */
    redis_lock *ok = rt_new_lock(c, "fine", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(ok, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(ok));
    /* the signal list of another type */
    redis_lock *s = rt_new_lock(c, "sig", 0), *h = rt_new_lock(c, "sig", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    redisReply *r = rt_cmd(&rt_main, "SET lock-signal:sig notalist");
    freeReplyObject(r);
    assert_rl(REDIS_LOCK_ESERVER, redis_lock_acquire(s, 300));
    assert_error_mentions("WRONGTYPE");
    /* release deletes whatever the signal key held, then pushes */
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
    assert_int_equal(rt_cmd_int(&rt_main, "LLEN lock-signal:sig"), 1);
    redis_lock_free(s);
    redis_lock_free(h);
    redis_lock_free(ok);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

/* ---- EUSER and redis_lock_with ---- */

typedef struct {
    redis_lock *lock;
    redis_lock_client *c;
    int calls;
    int ret;
    bool held_inside;
    bool reset_inside;
} with_arg;

static int with_fn(void *p)
{
    with_arg *a = p;
    a->calls++;
    char *owner = NULL;
    if (redis_lock_get_owner_id(a->lock, &owner) == 0 && owner)
        a->held_inside = strcmp(owner, redis_lock_id(a->lock)) == 0;
    free(owner);
    if (a->reset_inside)
        redis_lock_reset(a->lock);
    return a->ret;
}

static void with_runs_fn_under_lock(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = rt_new_lock(c, "w", 0);
    with_arg a = {l, c, 0, 0, false, false};
    assert_rl(REDIS_LOCK_OK, redis_lock_with(l, 0, with_fn, &a));
    assert_int_equal(a.calls, 1);
    assert_true(a.held_inside);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:w"), 0);
    /* fn failing: EUSER, and the lock is released anyway */
    a.ret = 7;
    a.held_inside = false;
    assert_rl(REDIS_LOCK_EUSER, redis_lock_with(l, 1000, with_fn, &a));
    assert_int_equal(a.calls, 2);
    assert_true(a.held_inside);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:w"), 0);
    assert_true(redis_lock_last_error()[0] != '\0');
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static void with_busy_does_not_call_fn(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = rt_new_lock(c, "wb", 0), *h = rt_new_lock(c, "wb", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    with_arg a = {l, c, 0, 0, false, false};
    assert_rl(REDIS_LOCK_BUSY, redis_lock_with(l, 0, with_fn, &a));
    assert_rl(REDIS_LOCK_BUSY, redis_lock_with(l, 200, with_fn, &a));
    assert_int_equal(a.calls, 0);
    /* acquire's errors too */
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_with(l, -7, with_fn, &a));
    assert_rl(REDIS_LOCK_EALREADY, redis_lock_with(h, 0, with_fn, &a));
    assert_int_equal(a.calls, 0);
    /* the holder still holds it */
    rt_assert_owner(l, redis_lock_id(h));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
    redis_lock_free(l);
    redis_lock_free(h);
    redis_lock_client_close(c);
}

static void with_release_result(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = rt_new_lock(c, "wr", 0);
    /* fn succeeded but the lock was lost meanwhile: the release's ENOTHELD */
    with_arg a = {l, c, 0, 0, false, true};
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_with(l, 0, with_fn, &a));
    assert_int_equal(a.calls, 1);
    /* fn failed and the lock was lost: the first failure, fn's */
    a.ret = -3;
    assert_rl(REDIS_LOCK_EUSER, redis_lock_with(l, 0, with_fn, &a));
    assert_int_equal(a.calls, 2);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

/* ---- ECANCELED ---- */

typedef struct {
    redis_lock *lock;
    int64_t timeout;
    int64_t took_ms;
    int rc;
    atomic_int started;
} acq_arg;

static void *acq_thread(void *p)
{
    acq_arg *a = p;
    atomic_store(&a->started, 1);
    int64_t t0 = rt_now_ms();
    a->rc = redis_lock_acquire(a->lock, a->timeout);
    a->took_ms = rt_now_ms() - t0;
    return NULL;
}

static void cancel_from_another_thread(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *h = rt_new_lock(c, "cx", 0), *w = rt_new_lock(c, "cx", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    for (int round = 0; round < 2; round++) {
        acq_arg a = {w, round == 0 ? -1 : 10000, 0, -100, 0};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, acq_thread, &a), 0);
        rt_sleep_ms(300);
        int64_t t0 = rt_now_ms();
        assert_rl(REDIS_LOCK_OK, redis_lock_cancel(w));
        pthread_join(t, NULL);
        assert_rl(REDIS_LOCK_ECANCELED, a.rc);
        assert_true(rt_now_ms() - t0 < 1000);
        assert_true(a.took_ms >= 250);
    }
    /* the cancel was used up: the next acquire waits normally */
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(w, 200));
    assert_true(rt_now_ms() - t0 >= 200);
    /* holding nothing */
    assert_rl(REDIS_LOCK_ENOTHELD, redis_lock_release(w));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
    /* and the lock is free for it after the holder's release */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(w, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(c);
}

static void cancel_pending_before_wait(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *h = rt_new_lock(c, "cp", 0), *w = rt_new_lock(c, "cp", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    /* a cancel that lands before the wait begins still cancels it, at once */
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel(w));
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_ECANCELED, redis_lock_acquire(w, -1));
    assert_true(rt_now_ms() - t0 < 500);
    /* it was used up */
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(w, 0));
    /* two cancels are one pending cancel */
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel(w));
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel(w));
    assert_rl(REDIS_LOCK_ECANCELED, redis_lock_acquire(w, 5000));
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(w, 100));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
    /* a try-once acquire of a free lock uses the cancel up too, holding nothing */
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel(w));
    assert_rl(REDIS_LOCK_ECANCELED, redis_lock_acquire(w, 0));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:cp"), 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(w, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    /* pending cancel and redis_lock_with: fn is not called */
    with_arg a = {w, c, 0, 0, false, false};
    assert_rl(REDIS_LOCK_OK, redis_lock_cancel(w));
    assert_rl(REDIS_LOCK_ECANCELED, redis_lock_with(w, 1000, with_fn, &a));
    assert_int_equal(a.calls, 0);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:cp"), 0);
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(c);
}

static redis_lock *volatile alarm_lock;
static void on_alarm(int sig)
{
    (void)sig;
    int saved = errno;
    redis_lock_cancel(alarm_lock);
    errno = saved;
}

static void cancel_from_signal_handler(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *h = rt_new_lock(c, "cs", 0), *w = rt_new_lock(c, "cs", 0);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    alarm_lock = w;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, &old), 0);
    struct itimerval it = {{0, 0}, {0, 300000}}, off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &it, NULL);
    int64_t t0 = rt_now_ms();
    int rc = redis_lock_acquire(w, -1);
    int64_t took = rt_now_ms() - t0;
    setitimer(ITIMER_REAL, &off, NULL);
    sigaction(SIGALRM, &old, NULL);
    assert_rl(REDIS_LOCK_ECANCELED, rc);
    assert_true(took >= 250 && took < 1500);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(c);
}

/* ---- strerror / code names ---- */

static void strerror_and_names(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *name;
    } codes[] = {
        {REDIS_LOCK_OK, "REDIS_LOCK_OK"},           {REDIS_LOCK_BUSY, "REDIS_LOCK_BUSY"},
        {REDIS_LOCK_EINVAL, "REDIS_LOCK_EINVAL"},   {REDIS_LOCK_ETOOLONG, "REDIS_LOCK_ETOOLONG"},
        {REDIS_LOCK_ENOEXPIRE, "REDIS_LOCK_ENOEXPIRE"},
        {REDIS_LOCK_ENOTHELD, "REDIS_LOCK_ENOTHELD"},
        {REDIS_LOCK_EALREADY, "REDIS_LOCK_EALREADY"}, {REDIS_LOCK_ECONN, "REDIS_LOCK_ECONN"},
        {REDIS_LOCK_ESERVER, "REDIS_LOCK_ESERVER"}, {REDIS_LOCK_ENOMEM, "REDIS_LOCK_ENOMEM"},
        {REDIS_LOCK_EUSER, "REDIS_LOCK_EUSER"},     {REDIS_LOCK_ECANCELED, "REDIS_LOCK_ECANCELED"},
        {REDIS_LOCK_EAUTH, "REDIS_LOCK_EAUTH"},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_string_equal(redis_lock_code_name(codes[i].code), codes[i].name);
        const char *msg = redis_lock_strerror(codes[i].code);
        assert_non_null(msg);
        assert_true(strlen(msg) > 3);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(msg, redis_lock_strerror(codes[j].code));
    }
    assert_non_null(redis_lock_strerror(12345));
    assert_non_null(redis_lock_code_name(-12345));
    assert_string_equal(redis_lock_version(), "1.1.0");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(busy_try_and_timeout, rt_flush),
        cmocka_unit_test_setup(ealready_same_handle_and_same_id, rt_flush),
        cmocka_unit_test_setup(ealready_not_after_expiry, rt_flush),
        cmocka_unit_test_setup(enotheld_never_acquired_and_twice, rt_flush),
        cmocka_unit_test_setup(enotheld_after_expiry, rt_flush),
        cmocka_unit_test_setup(enotheld_after_reset, rt_flush),
        cmocka_unit_test_setup(einval_lock_options, rt_flush),
        cmocka_unit_test_setup(einval_timeouts_and_extend, rt_flush),
        cmocka_unit_test_setup(einval_client_options, rt_flush),
        cmocka_unit_test_setup(etoolong_only_positive_timeouts, rt_flush),
        cmocka_unit_test_setup(enoexpire, rt_flush),
        cmocka_unit_test_setup(econn_missing_unix_socket, rt_flush),
        cmocka_unit_test_setup(econn_closed_tcp_port, rt_flush),
        cmocka_unit_test_setup(eserver_wrongtype, rt_flush),
        cmocka_unit_test_setup(with_runs_fn_under_lock, rt_flush),
        cmocka_unit_test_setup(with_busy_does_not_call_fn, rt_flush),
        cmocka_unit_test_setup(with_release_result, rt_flush),
        cmocka_unit_test_setup(cancel_from_another_thread, rt_flush),
        cmocka_unit_test_setup(cancel_pending_before_wait, rt_flush),
        cmocka_unit_test_setup(cancel_from_signal_handler, rt_flush),
        cmocka_unit_test(strerror_and_names),
    };
    return RT_RUN(tests, argc, argv, 1);
}
