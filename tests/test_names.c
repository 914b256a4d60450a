/* labels: threaded */
/* Lock names are any bytes but NUL: spaces, colons, UTF-8, binary, glob characters,
 * long names. The keys in Redis must be exactly lock:NAME, lock-signal:NAME and
 * lock-fence:NAME. */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* EXISTS of prefix+name, binary-safe */
static long long exists(const char *prefix, const char *name)
{
    size_t p = strlen(prefix), n = strlen(name);
    char *key = malloc(p + n);
    assert_non_null(key);
    memcpy(key, prefix, p);
    memcpy(key + p, name, n);
    redisContext *ctx = rt_raw(&rt_main);
    redisReply *r = redisCommand(ctx, "EXISTS %b", key, p + n);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    redisFree(ctx);
    free(key);
    return v;
}

static void check_value(const char *name, const char *id)
{
    size_t n = strlen(name);
    char *key = malloc(5 + n);
    assert_non_null(key);
    memcpy(key, "lock:", 5);
    memcpy(key + 5, name, n);
    redisContext *ctx = rt_raw(&rt_main);
    redisReply *r = redisCommand(ctx, "GET %b", key, 5 + n);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, id);
    freeReplyObject(r);
    redisFree(ctx);
    free(key);
}

/* The whole life of one name, checking the exact keys at each step. */
static void exercise(redis_lock_client *c, const char *name)
{
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.fencing = true;
    o.expire_ms = 10000;
    redis_lock *l = NULL, *other = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, name, &o));
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&other, c, name, NULL));
    assert_string_equal(redis_lock_name(l), name);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_int_equal(exists("lock:", name), 1);
    check_value(name, redis_lock_id(l));
    assert_int_equal(exists("lock-fence:", name), 1);
    assert_true(redis_lock_fencing_token(l) > 0);
    assert_rl(REDIS_LOCK_BUSY, redis_lock_acquire(other, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_extend(l, 20000));
    int64_t ttl = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_ttl(other, &ttl));
    assert_true(ttl > 15000);
    rt_assert_owner(other, redis_lock_id(l));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    assert_int_equal(exists("lock:", name), 0);
    assert_int_equal(exists("lock-signal:", name), 1);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(other, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(l));
    assert_int_equal(exists("lock:", name), 0);
    redis_lock_free(l);
    redis_lock_free(other);
}

static void name_with_spaces(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    exercise(c, "a name with  spaces ");
    exercise(c, " ");
    exercise(c, "tab\there\nnewline\r\n");
    /* no "lock:a" or similar fragment appeared */
    assert_int_equal(exists("lock:", "a"), 0);
    redis_lock_client_close(c);
}

static void name_with_colons(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    exercise(c, "app:users:42");
    exercise(c, ":");
    exercise(c, "::lock:lock-signal:");
    redis_lock_client_close(c);
}

static void name_utf8(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    exercise(c, "\xc3\xa9t\xc3\xa9 \xe2\x98\x83 \xf0\x9f\x94\x92 \xe4\xb8\xad\xe6\x96\x87");
    exercise(c, "\xd0\xb7\xd0\xb0\xd0\xbc\xd0\xbe\xd0\xba");
    redis_lock_client_close(c);
}

static void name_binary_bytes(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    /* every byte but NUL, in one name */
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    exercise(c, all);
    /* bytes that are not UTF-8, and a RESP-looking name */
    exercise(c, "\xff\xfe\x80\x01\x7f");
    exercise(c, "*3\r\n$3\r\nDEL\r\n");
    exercise(c, "\"quoted\" 'single' \\backslash");
    redis_lock_client_close(c);
}

static void name_glob_characters_and_reset_all(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    exercise(c, "*");
    exercise(c, "a?b[c]d\\*");
    const char *names[] = {"*", "a?b[c]d\\*", "[", "\xff", "x y:z"};
    enum { N = sizeof names / sizeof names[0] };
    redis_lock *l[N];
    for (int i = 0; i < N; i++) {
        assert_rl(REDIS_LOCK_OK, redis_lock_new(&l[i], c, names[i], NULL));
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l[i], 0));
    }
    /* a key that a careless glob in the name would also match: must survive */
    redis_lock *plain = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&plain, c, "abcd*", NULL));
    size_t count = 0;
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(l[1]));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(plain, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_reset(l[0])); /* "*": only lock:* itself */
    assert_int_equal(exists("lock:", "abcd*"), 1);
    assert_int_equal(exists("lock:", "["), 1);
    assert_rl(REDIS_LOCK_OK, redis_lock_reset_all(c, &count));
    assert_int_equal(count, N - 2 + 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(exists("lock:", names[i]), 0);
        redis_lock_free(l[i]);
    }
    redis_lock_free(plain);
    redis_lock_client_close(c);
}

static void name_long(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    size_t n = 100000;
    char *name = malloc(n + 1);
    assert_non_null(name);
    for (size_t i = 0; i < n; i++)
        name[i] = (char)('a' + i % 26);
    name[n] = '\0';
    exercise(c, name);
    free(name);
    redis_lock_client_close(c);
}

typedef struct {
    redis_lock *lock;
    int rc;
} acq_arg;

static void *acq_thread(void *p)
{
    acq_arg *a = p;
    a->rc = redis_lock_acquire(a->lock, 5000);
    return NULL;
}

static void binary_name_waiter_woken(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    const char *name = "\x01\xff wake: \xe2\x98\x83";
    redis_lock *h = NULL, *w = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&h, c, name, NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&w, c, name, NULL));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    acq_arg a = {w, -100};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acq_thread, &a), 0);
    rt_sleep_ms(200);
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, redis_lock_release(h));
    pthread_join(t, NULL);
    assert_rl(REDIS_LOCK_OK, a.rc);
    assert_true(rt_now_ms() - t0 < 1000);
    check_value(name, redis_lock_id(w));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(w));
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(c);
}

static void ids_any_text(void **state)
{
    (void)state;
    /* a caller's own id, with spaces and UTF-8, is what Redis stores */
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.id = "my id \xe2\x98\x83:1";
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "custom-id", &o));
    assert_string_equal(redis_lock_id(l), o.id);
    assert_ptr_not_equal(redis_lock_id(l), o.id); /* copied */
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    check_value("custom-id", o.id);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    /* default ids: 24 chars of base64 from 18 random bytes, all different */
    enum { N = 50 };
    char ids[N][32];
    for (int i = 0; i < N; i++) {
        assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, "x", NULL));
        const char *id = redis_lock_id(l);
        assert_int_equal(strlen(id), 24);
        assert_int_equal(strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                    "0123456789+/"),
                         24);
        snprintf(ids[i], sizeof ids[i], "%s", id);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
        redis_lock_free(l);
    }
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(name_with_spaces, rt_flush),
        cmocka_unit_test_setup(name_with_colons, rt_flush),
        cmocka_unit_test_setup(name_utf8, rt_flush),
        cmocka_unit_test_setup(name_binary_bytes, rt_flush),
        cmocka_unit_test_setup(name_glob_characters_and_reset_all, rt_flush),
        cmocka_unit_test_setup(name_long, rt_flush),
        cmocka_unit_test_setup(binary_name_waiter_woken, rt_flush),
        cmocka_unit_test_setup(ids_any_text, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
