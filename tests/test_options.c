/* Options struct versions: redis_lock_*_options_init_version fills the fields of the
 * version asked for, and using a struct of a version this library does not know is
 * REDIS_LOCK_EINVAL. (A program built against an older header: tests/abi/test_abi_v1.c.) */
#include "harness.h"

#include <string.h>

static void assert_error_mentions(const char *needle)
{
    if (!strstr(redis_lock_last_error(), needle))
        fail_msg("last error \"%s\" does not mention \"%s\"", redis_lock_last_error(), needle);
}

static void init_version_fills_that_version(void **state)
{
    (void)state;
    /* junk around the struct: _init writes every field and nothing beyond the struct */
    struct {
        redis_lock_cache_options o;
        unsigned char after[32];
    } buf;
    memset(&buf, 0xa5, sizeof buf);
    redis_lock_cache_options_init_version(&buf.o, REDIS_LOCK_CACHE_OPTIONS_VERSION);
    assert_int_equal(buf.o.version, REDIS_LOCK_CACHE_OPTIONS_VERSION);
    assert_int_equal(buf.o.ttl_ms, 0);
    assert_int_equal(buf.o.timeout_ms, -1);
    assert_false(buf.o.refresh);
    assert_int_equal(buf.o.lock.version, REDIS_LOCK_OPTIONS_VERSION);
    assert_int_equal(buf.o.lock.expire_ms, 30000);
    assert_true(buf.o.lock.auto_renewal);
    assert_null(buf.o.lock.id);
    assert_null(buf.o.lock.on_lost);
    for (size_t i = 0; i < sizeof buf.after; i++)
        assert_int_equal(buf.after[i], 0xa5);

    /* the macro is init_version with the header's version */
    redis_lock_options a, b;
    memset(&a, 0x11, sizeof a);
    memset(&b, 0x22, sizeof b);
    redis_lock_options_init(&a);
    redis_lock_options_init_version(&b, REDIS_LOCK_OPTIONS_VERSION);
    assert_memory_equal(&a, &b, offsetof(redis_lock_options, on_lost_payload) + sizeof(void *));
}

static int never_called(void *payload, char **value, size_t *len)
{
    (void)payload;
    (void)value;
    (void)len;
    fail_msg("make called for options the library must refuse");
    return 1;
}

static void unknown_versions_are_einval(void **state)
{
    (void)state;
    redis_lock_client_options co;
    redis_lock_client *c = NULL;
    redis_lock_client_options_init_version(&co, 0);
    assert_int_equal(co.version, 0);
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_client_open(&c, &co));
    assert_error_mentions("version 0");
    /* a newer header than this library: the known fields get their defaults, the version
     * stays, and using it says so */
    redis_lock_client_options_init_version(&co, REDIS_LOCK_CLIENT_OPTIONS_VERSION + 1);
    assert_int_equal(co.version, REDIS_LOCK_CLIENT_OPTIONS_VERSION + 1);
    assert_int_equal(co.connect_timeout_ms, 2000);
    co.url = rt_main.url;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_client_open(&c, &co));
    assert_error_mentions("redis_lock_client_options_init");
    assert_null(c);

    c = rt_client(&rt_main);
    redis_lock_options lo;
    redis_lock *l = NULL;
    redis_lock_options_init_version(&lo, REDIS_LOCK_OPTIONS_VERSION + 1);
    assert_int_equal(lo.signal_expire_ms, 1000);
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_new(&l, c, "x", &lo));
    assert_null(l);

    redis_lock_cache_options o;
    char *v = NULL;
    size_t n = 0;
    redis_lock_cache_options_init_version(&o, REDIS_LOCK_CACHE_OPTIONS_VERSION + 1);
    o.ttl_ms = 1000;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "k", &o, never_called, NULL, &v, &n));
    assert_error_mentions("redis_lock_cache_options version");
    redis_lock_cache_options_init_version(&o, 0);
    assert_int_equal(o.version, 0);
    o.ttl_ms = 1000;
    assert_rl(REDIS_LOCK_EINVAL, redis_lock_cache_get_or_set(c, "k", &o, never_called, NULL, &v, &n));
    assert_int_equal(rt_cmd_int(&rt_main, "DBSIZE"), 0);
    /* NULL is ignored */
    redis_lock_options_init_version(NULL, REDIS_LOCK_OPTIONS_VERSION);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(init_version_fills_that_version),
        cmocka_unit_test_setup(unknown_versions_are_einval, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
