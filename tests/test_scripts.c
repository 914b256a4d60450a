/* The SHA1s in src/scripts.c are the server's SCRIPT LOAD of each script, so EVALSHA finds
 * what EVAL loaded. */
#include "harness.h"
#include "internal.h"

#include <stdio.h>
#include <string.h>

static void sha1s_match_script_load(void **state)
{
    (void)state;
    static const char *names[RL_SCRIPT_COUNT] = {
        "acquire",  "release",    "extend",         "reset",        "fair try",
        "fair leave", "shared try", "shared release", "shared extend", "semaphore try",
        "semaphore release", "semaphore extend"};
    for (int i = 0; i < RL_SCRIPT_COUNT; i++) {
        const char *src = rl_script_source(i), *sha = rl_script_sha(i);
        assert_non_null(src);
        assert_non_null(sha);
        assert_int_equal(strlen(sha), 40);
        redisReply *r = rt_cmd(&rt_main, "SCRIPT LOAD %s", src);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        if (strcmp(r->str, sha) != 0)
            fail_msg("the %s script's SHA1 is %s, scripts.c says %s", names[i], r->str, sha);
        freeReplyObject(r);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(sha, rl_script_sha(j));
    }
    /* all of them are in the cache now, under those names */
    redisReply *r = rt_cmd(&rt_main, "SCRIPT EXISTS %s %s %s %s %s %s %s %s %s %s %s %s",
                           rl_script_sha(0), rl_script_sha(1), rl_script_sha(2),
                           rl_script_sha(3), rl_script_sha(4), rl_script_sha(5),
                           rl_script_sha(6), rl_script_sha(7), rl_script_sha(8),
                           rl_script_sha(9), rl_script_sha(10), rl_script_sha(11));
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->elements, RL_SCRIPT_COUNT);
    for (size_t i = 0; i < r->elements; i++)
        assert_int_equal(r->element[i]->integer, 1);
    freeReplyObject(r);
}

static void scripts_follow_the_wire_protocol(void **state)
{
    (void)state;
    /* Drive the scripts by hand, as docs/design.md describes them. */
    redisContext *ctx = rt_raw(&rt_main);
    redisReply *r;
    for (int i = 1; i < RL_SCRIPT_COUNT; i++) {
        r = redisCommand(ctx, "SCRIPT LOAD %s", rl_script_source(i));
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
    }
    /* acquire: SET NX PX, fencing INCR (EVAL, as after a flush) */
    r = redisCommand(ctx, "EVAL %s 3 lock:w lock-fence:w lock-writers:w id-1 5000 1 0 x",
                     rl_script_source(RL_SCRIPT_ACQUIRE));
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->integer, 1);
    /* a new fence counter starts from the server's clock in microseconds */
    assert_true(r->element[1]->integer > 1000000000000000LL);
    freeReplyObject(r);
    r = redisCommand(ctx, "PTTL lock:w");
    assert_true(r->integer > 4000 && r->integer <= 5000);
    freeReplyObject(r);
    /* a counter behind the clock (a promoted replica that missed increments) jumps to the
     * clock: the token is max(counter + 1, server time in us) */
    freeReplyObject(redisCommand(ctx, "SET lock-fence:stale 5"));
    r = redisCommand(ctx, "EVAL %s 3 lock:stale lock-fence:stale lock-writers:stale id-1 5000 1 0 x",
                     rl_script_source(RL_SCRIPT_ACQUIRE));
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    long long jumped = r->element[1]->integer;
    assert_true(jumped > 1000000000000000LL);
    freeReplyObject(r);
    freeReplyObject(redisCommand(ctx, "DEL lock:stale"));
    r = redisCommand(ctx, "EVAL %s 3 lock:stale lock-fence:stale lock-writers:stale id-1 5000 1 0 x",
                     rl_script_source(RL_SCRIPT_ACQUIRE));
    assert_true(r->element[1]->integer > jumped);
    freeReplyObject(r);
    /* a counter ahead of the clock just counts on */
    freeReplyObject(redisCommand(ctx, "DEL lock:stale"));
    freeReplyObject(redisCommand(ctx, "SET lock-fence:stale 5000000000000000"));
    r = redisCommand(ctx, "EVAL %s 3 lock:stale lock-fence:stale lock-writers:stale id-1 5000 1 0 x",
                     rl_script_source(RL_SCRIPT_ACQUIRE));
    assert_int_equal(r->element[1]->integer, 5000000000000001LL); /* below 2^53: exact in Lua */
    freeReplyObject(r);
    freeReplyObject(redisCommand(ctx, "DEL lock:stale lock-fence:stale"));
    /* busy: the owner and its TTL */
    r = redisCommand(ctx, "EVALSHA %s 3 lock:w lock-fence:w lock-writers:w id-2 0 0 2000 x",
                     rl_script_sha(RL_SCRIPT_ACQUIRE));
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_int_equal(r->element[0]->integer, 0);
    assert_string_equal(r->element[1]->str, "id-1");
    assert_true(r->element[2]->integer > 4000);
    /* not held by shared holders (the marker x): not counted as a waiting writer */
    assert_int_equal(r->element[3]->integer, -1);
    freeReplyObject(r);
    r = redisCommand(ctx, "EXISTS lock-writers:w");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    /* extend: not the owner 1, the owner 0 */
    r = redisCommand(ctx, "EVALSHA %s 1 lock:w id-2 9000", rl_script_sha(RL_SCRIPT_EXTEND));
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = redisCommand(ctx, "EVALSHA %s 1 lock:w id-1 9000", rl_script_sha(RL_SCRIPT_EXTEND));
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = redisCommand(ctx, "PTTL lock:w");
    assert_true(r->integer > 8000);
    freeReplyObject(r);
    /* release: not the owner 1; the owner 0, a signal with the signal expiry */
    r = redisCommand(ctx, "EVALSHA %s 2 lock:w lock-signal:w id-2 700",
                     rl_script_sha(RL_SCRIPT_RELEASE));
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = redisCommand(ctx, "EVALSHA %s 2 lock:w lock-signal:w id-1 700",
                     rl_script_sha(RL_SCRIPT_RELEASE));
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = redisCommand(ctx, "EXISTS lock:w");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = redisCommand(ctx, "LLEN lock-signal:w");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = redisCommand(ctx, "PTTL lock-signal:w");
    assert_true(r->integer > 0 && r->integer <= 700);
    freeReplyObject(r);
    /* no-expiry acquire, extend says 2 */
    r = redisCommand(ctx, "EVALSHA %s 3 lock:w lock-fence:w lock-writers:w id-3 0 0 0 x",
                     rl_script_sha(RL_SCRIPT_ACQUIRE));
    assert_int_equal(r->element[0]->integer, 1);
    assert_int_equal(r->element[1]->integer, 0);
    freeReplyObject(r);
    r = redisCommand(ctx, "EVALSHA %s 1 lock:w id-3 9000", rl_script_sha(RL_SCRIPT_EXTEND));
    assert_int_equal(r->integer, 2);
    freeReplyObject(r);
    /* reset: whoever owns it, one signal */
    r = redisCommand(ctx, "EVALSHA %s 2 lock:w lock-signal:w 1000", rl_script_sha(RL_SCRIPT_RESET));
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    r = redisCommand(ctx, "LLEN lock-signal:w");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    /* shared: two holders set the marker; a plain try then counts as a waiting writer,
     * which keeps a third shared holder out; the last shared release frees the key */
    const char *st = rl_script_sha(RL_SCRIPT_SHARED_TRY);
    const char *mark = RL_SHARED_MARKER;
    for (int i = 0; i < 2; i++) {
        r = redisCommand(ctx, "EVALSHA %s 4 lock:s lock-fence:s lock-shared:s lock-writers:s "
                         "r%d 5000 0 %s", st, i, mark);
        assert_int_equal(r->element[0]->integer, 1);
        freeReplyObject(r);
    }
    r = redisCommand(ctx, "GET lock:s");
    assert_string_equal(r->str, mark);
    freeReplyObject(r);
    r = redisCommand(ctx, "EVALSHA %s 3 lock:s lock-fence:s lock-writers:s w1 0 0 2000 %s",
                     rl_script_sha(RL_SCRIPT_ACQUIRE), mark);
    assert_int_equal(r->element[0]->integer, 0);
    assert_int_equal(r->element[3]->integer, 2000);
    freeReplyObject(r);
    r = redisCommand(ctx, "EVALSHA %s 4 lock:s lock-fence:s lock-shared:s lock-writers:s "
                     "r2 5000 0 %s", st, mark);
    assert_int_equal(r->element[0]->integer, 0);
    assert_true(r->element[3]->integer > 1000); /* the writer's lease */
    freeReplyObject(r);
    for (int i = 0; i < 2; i++) {
        r = redisCommand(ctx, "EVALSHA %s 3 lock:s lock-shared:s lock-signal:s r%d 1000 %s",
                         rl_script_sha(RL_SCRIPT_SHARED_RELEASE), i, mark);
        assert_int_equal(r->integer, 0);
        freeReplyObject(r);
    }
    r = redisCommand(ctx, "EXISTS lock:s lock-shared:s");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    r = redisCommand(ctx, "EVALSHA %s 3 lock:s lock-fence:s lock-writers:s w1 0 0 2000 %s",
                     rl_script_sha(RL_SCRIPT_ACQUIRE), mark);
    assert_int_equal(r->element[0]->integer, 1);
    freeReplyObject(r);
    r = redisCommand(ctx, "ZCARD lock-writers:s");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    redisFree(ctx);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(sha1s_match_script_load, rt_flush),
        cmocka_unit_test_setup(scripts_follow_the_wire_protocol, rt_flush),
    };
    return RT_RUN(tests, argc, argv, 1);
}
