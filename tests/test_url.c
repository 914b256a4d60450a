/* URLs: every accepted form reaches the right server and database; every bad one is
 * EINVAL with a message that says what is wrong (and never shows a password). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int open_url(const char *url, redis_lock_client **out)
{
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = url;
    o.connect_timeout_ms = 1000;
    *out = (redis_lock_client *)(uintptr_t)1;
    return redis_lock_client_open(out, &o);
}

static void expect_einval(const char *url, const char *mention)
{
    redis_lock_client *c;
    int rc = open_url(url, &c);
    if (rc != REDIS_LOCK_EINVAL)
        fail_msg("URL \"%s\": %s (%s), expected REDIS_LOCK_EINVAL", url,
                 redis_lock_code_name(rc), redis_lock_last_error());
    assert_null(c);
    const char *e = redis_lock_last_error();
    if (!strstr(e, mention))
        fail_msg("URL \"%s\": message \"%s\" does not mention \"%s\"", url, e, mention);
    if (strstr(e, "topsecret"))
        fail_msg("URL \"%s\": message \"%s\" shows the password", url, e);
}

static void bad_urls(void **state)
{
    (void)state;
    expect_einval("rediss://localhost:6380/0?tls=1", "unknown parameter tls");
    expect_einval("rediss://u:topsecret@localhost:6380/0?bogus=topsecret", "unknown parameter bogus");
    expect_einval("redis://localhost:6380/0?cacert=/etc/ssl/certs/ca-certificates.crt",
                  "needs rediss://");
    expect_einval("unix:///tmp/x.sock?insecure=1", "needs rediss://");
    expect_einval("rediss://localhost:6380/0?insecure=maybe", "insecure");
    expect_einval("rediss://localhost:6380/0?sni=", "needs a value");
    expect_einval("rediss://u:topsecret@localhost:6380/0?cacert=/nonexistent/ca.pem", "cacert");
    expect_einval("rediss://localhost:6380/0?cert=/etc/hostname", "cert and key");
    expect_einval("http://localhost:6379", "scheme");
    expect_einval("http://u:topsecret@localhost:6379", "scheme");
    expect_einval("redis+sentinel://localhost", "master's name");
    expect_einval("redis+sentinel://localhost/", "master's name");
    expect_einval("redis+sentinel://u:topsecret@a:1,,b:2/m", "empty host");
    expect_einval("redis+sentinel://a:1,b:2,/m", "empty host");
    expect_einval("redis+sentinel://a:99999/m", "port");
    expect_einval("redis+sentinel://a/m/x", "database");
    expect_einval("redis+sentinel://a/m?sentinel_password=", "needs a value");
    expect_einval("redis://a/0?sentinel_password=topsecret", "needs redis+sentinel://");
    expect_einval("redis://a/0?min_replicas=x", "min_replicas");
    expect_einval("redis://a/0?min_replicas=1001", "min_replicas");
    expect_einval("redis://a/0?replica_timeout_ms=0", "replica_timeout_ms");
    expect_einval("rediss+sentinel://a/m?cacert=/nonexistent/ca.pem", "cacert");
    expect_einval("redis+sentinel://a/m?cacert=/etc/hosts", "needs rediss://");
    expect_einval("localhost:6379", "scheme");
    expect_einval("junk", "scheme");
    expect_einval("://", "scheme");
    expect_einval("redis://localhost:99999/0", "port");
    expect_einval("redis://localhost:0/0", "port");
    expect_einval("redis://localhost:abc/0", "port");
    expect_einval("redis://localhost:-1/0", "port");
    expect_einval("redis://localhost:/0", "port");
    expect_einval("redis://u:topsecret@localhost:65536", "port");
    expect_einval("redis://localhost:6379/abc", "database");
    expect_einval("redis://localhost:6379/-1", "database");
    expect_einval("redis://localhost:6379/1x", "database");
    expect_einval("redis://localhost:6379/99999999999", "database");
    expect_einval("redis://localhost:6379/0#frag", "fragment");
    expect_einval("redis://localhost:6379/0?timeout=5", "parameter");
    expect_einval("redis://[::1:6379/0", "IPv6");
    expect_einval("redis://[::1]x:6379/0", "IPv6");
    expect_einval("redis://:top%zzsecret@localhost/0", "escape");
    expect_einval("redis://:topsecret%0@localhost/0", "escape");
    expect_einval("redis://:topsecret%00@localhost/0", "escape");
    expect_einval("unix://relative/path.sock", "path");
    expect_einval("unix://", "path");
    expect_einval("unix:///", "path");
    expect_einval("unix://host/tmp/redis.sock", "path");
    expect_einval("unix:///tmp/redis.sock?db=x", "database");
    expect_einval("unix:///tmp/redis.sock?db=", "database");
    expect_einval("unix:///tmp/redis.sock?foo=1", "parameter");
    expect_einval("unix:///tmp/redis.sock#x", "fragment");
}

static void user_without_password(void **state)
{
    (void)state;
    char url[300];
    snprintf(url, sizeof url, "unix://alice@%s", rt_main.sock);
    redis_lock_client *c;
    assert_rl(REDIS_LOCK_EINVAL, open_url(url, &c));
    assert_null(c);
    assert_true(strstr(redis_lock_last_error(), "password") != NULL);
}

/* SET a key through a client opened with url, and find it in database db. */
static void check_db(const char *url, int db)
{
    redis_lock_client *c = rt_client_url(url);
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "where", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    redisContext *ctx = rt_raw(&rt_main);
    for (int i = 0; i < 16; i++) {
        redisReply *r = redisCommand(ctx, "SELECT %d", i);
        freeReplyObject(r);
        r = redisCommand(ctx, "EXISTS lock:where");
        assert_non_null(r);
        if (r->integer != (i == db))
            fail_msg("URL %s: lock:where %s in db %d", url, r->integer ? "found" : "missing", i);
        freeReplyObject(r);
    }
    redisFree(ctx);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static void good_urls(void **state)
{
    (void)state;
    /* rt_main has no TCP port; start one that has */
    char url[400];
    snprintf(url, sizeof url, "unix://%s", rt_main.sock);
    check_db(url, 0);
    snprintf(url, sizeof url, "unix://%s?db=2", rt_main.sock);
    check_db(url, 2);
    snprintf(url, sizeof url, "unix://%s?db=15", rt_main.sock);
    check_db(url, 15);
    /* the database must exist on the server */
    snprintf(url, sizeof url, "unix://%s?db=16", rt_main.sock);
    redis_lock_client *c;
    assert_rl(REDIS_LOCK_ESERVER, open_url(url, &c));
    assert_null(c);
}

static void good_tcp_urls(void **state)
{
    (void)state;
    rt_server s;
    rt_server_start(&s, NULL, 1);
    char url[400];
    static const char *forms[][2] = {{"redis://127.0.0.1:", ""},   {"redis://127.0.0.1:", "/"},
                                     {"redis://127.0.0.1:", "/0"}, {"redis://localhost:", "/0"},
                                     {"redis://:", "/0"},          {"redis://[::1]:", "/0"}};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char full[400];
        snprintf(full, sizeof full, "%s%d%s", forms[i][0], s.port, forms[i][1]);
        redis_lock_client *c = NULL;
        int rc = open_url(full, &c);
        if (i == 5 && rc == REDIS_LOCK_ECONN)
            continue; /* the server listens on 127.0.0.1 only: ::1 may be refused */
        if (rc)
            fail_msg("URL %s: %s: %s", full, redis_lock_code_name(rc), redis_lock_last_error());
        redis_lock *l = NULL;
        assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "tcp", NULL));
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
        assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
        redis_lock_free(l);
        redis_lock_client_close(c);
    }
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", s.port);
    redis_lock_client *c = rt_client_url(url);
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "db3", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    redisContext *ctx = rt_raw(&s);
    redisReply *r = redisCommand(ctx, "SELECT 3");
    freeReplyObject(r);
    r = redisCommand(ctx, "EXISTS lock:db3");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(ctx);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
    rt_server_stop(&s);
}

static void url_from_environment(void **state)
{
    (void)state;
    char url[300];
    snprintf(url, sizeof url, "unix://%s?db=4", rt_main.sock);
    char *saved = getenv("REDIS_URL") ? strdup(getenv("REDIS_URL")) : NULL;
    setenv("REDIS_URL", url, 1);
    redis_lock_client *c = NULL;
    int rc = redis_lock_client_open(&c, NULL);
    if (saved) {
        setenv("REDIS_URL", saved, 1);
        free(saved);
    } else {
        unsetenv("REDIS_URL");
    }
    assert_rl(REDIS_LOCK_OK, rc);
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "env", NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    redisContext *ctx = rt_raw(&rt_main);
    redisReply *r = redisCommand(ctx, "SELECT 4");
    freeReplyObject(r);
    r = redisCommand(ctx, "EXISTS lock:env");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    redisFree(ctx);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
    /* a bad $REDIS_URL is EINVAL like any bad URL */
    setenv("REDIS_URL", "rediss://x?nonsense=1", 1);
    c = NULL;
    rc = redis_lock_client_open(&c, NULL);
    unsetenv("REDIS_URL");
    assert_rl(REDIS_LOCK_EINVAL, rc);
    assert_null(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_urls),
        cmocka_unit_test(user_without_password),
        cmocka_unit_test_setup(good_urls, rt_flush),
        cmocka_unit_test(good_tcp_urls),
        cmocka_unit_test_setup(url_from_environment, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
