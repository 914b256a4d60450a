/* labels: sentinel forks */
/* The shared Sentinel deployment itself, with raw hiredis only: it comes up, the sentinels
 * answer and agree, SENTINEL FAILOVER promotes a replica and demotes the old master, and a
 * node killed with kill -9 and restarted rejoins. Each step prints how long it took. */
#include "deploy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static rt_deploy d;

static void step(const char *what, int64_t t0)
{
    printf("time: %s: %lld ms\n", what, (long long)(rt_now_ms() - t0));
    fflush(stdout);
}

static void want_status(redisReply *r, const char *what)
{
    if (!r || r->type != REDIS_REPLY_STATUS)
        fail_msg("%s: %s", what, r && r->str ? r->str : "no status reply");
    freeReplyObject(r);
}

static void want_string(redisReply *r, const char *want, const char *what)
{
    if (!r || r->type != REDIS_REPLY_STRING || strcmp(r->str, want) != 0)
        fail_msg("%s: want \"%s\", got type %d \"%s\"", what, want, r ? r->type : -1,
                 r && r->str ? r->str : "");
    freeReplyObject(r);
}

static long long int_reply(redisReply *r, const char *what)
{
    if (!r || r->type != REDIS_REPLY_INTEGER)
        fail_msg("%s: want an integer, got %s", what, r && r->str ? r->str : "?");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* count of entries in a SENTINEL REPLICAS/SENTINELS reply whose flags are exactly want */
static size_t with_flags(redisReply *r, const char *want)
{
    size_t n = 0;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        for (size_t j = 0; j + 1 < e->elements; j += 2)
            if (strcmp(e->element[j]->str, "flags") == 0 &&
                strcmp(e->element[j + 1]->str, want) == 0)
                n++;
    }
    freeReplyObject(r);
    return n;
}

static long long replicas_connected(int m)
{
    redisReply *r = rt_node_cmd(&d.nodes[m], "INFO replication");
    const char *p = r->str ? strstr(r->str, "connected_slaves:") : NULL;
    long long n = p ? atoll(p + strlen("connected_slaves:")) : -1;
    freeReplyObject(r);
    return n;
}

/* the master that all sentinels name, written to and replicated to both replicas */
static void write_replicated(int m, const char *key, const char *value)
{
    want_status(rt_node_cmd(&d.nodes[m], "SET %s %s", key, value), "SET on the master");
    assert_int_equal(int_reply(rt_node_cmd(&d.nodes[m], "WAIT 2 5000"), "WAIT 2"), 2);
}

static void comes_up(void **state)
{
    (void)state;
    int64_t t0 = rt_now_ms();
    rt_sentinel_load(&d);
    step("sentinel: load (healthy)", t0);
    int m = rt_sentinel_master(&d);
    char role[32];
    assert_string_equal(rt_node_role(&d.nodes[m], role, sizeof role), "master");
    for (int i = 0; i < d.nsentinels; i++) {
        redisReply *r =
            rt_node_cmd(&d.sentinels[i], "SENTINEL get-master-addr-by-name %s", d.master_name);
        assert_int_equal(r->type, REDIS_REPLY_ARRAY);
        assert_int_equal(r->elements, 2);
        assert_string_equal(r->element[0]->str, "127.0.0.1");
        assert_int_equal(atoi(r->element[1]->str), d.nodes[m].port);
        freeReplyObject(r);
        assert_int_equal(
            with_flags(rt_node_cmd(&d.sentinels[i], "SENTINEL REPLICAS %s", d.master_name),
                       "slave"),
            2);
        assert_int_equal(
            with_flags(rt_node_cmd(&d.sentinels[i], "SENTINEL SENTINELS %s", d.master_name),
                       "sentinel"),
            2);
        want_status(rt_node_cmd(&d.sentinels[i], "SENTINEL CKQUORUM %s", d.master_name),
                    "CKQUORUM");
    }
    write_replicated(m, "deploy:up", "1");
    for (int i = 0; i < d.nnodes; i++)
        want_string(rt_node_cmd(&d.nodes[i], "GET deploy:up"), "1", "GET on each node");
    assert_non_null(strstr(d.url, "redis+sentinel://127.0.0.1:"));
    assert_non_null(strstr(d.url, d.master_name));
}

static void failover(void **state)
{
    (void)state;
    rt_sentinel_load(&d);
    int old = rt_sentinel_master(&d);
    write_replicated(old, "deploy:failover", "before");
    int64_t t0 = rt_now_ms();
    int m = rt_sentinel_failover(&d, 0);
    step("sentinel: SENTINEL FAILOVER until every sentinel names the promoted replica", t0);
    assert_int_not_equal(m, old);
    char role[32];
    assert_string_equal(rt_node_role(&d.nodes[m], role, sizeof role), "master");
    want_string(rt_node_cmd(&d.nodes[m], "GET deploy:failover"), "before", "GET on the new master");
    want_status(rt_node_cmd(&d.nodes[m], "SET deploy:failover after"), "SET on the new master");
    int64_t t1 = rt_now_ms();
    rt_deploy_wait_healthy(&d, 60);
    step("sentinel: until the old master is a synced replica of the new one", t1);
    redisReply *r = rt_node_cmd(&d.nodes[old], "ROLE");
    assert_string_equal(r->element[0]->str, "slave");
    assert_int_equal(r->element[2]->integer, d.nodes[m].port);
    freeReplyObject(r);
    r = rt_node_cmd(&d.nodes[old], "SET deploy:failover stale");
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, "READONLY"));
    freeReplyObject(r);
    want_string(rt_node_cmd(&d.nodes[old], "GET deploy:failover"), "after",
                "GET on the old master");
}

static void replica_killed_and_restarted(void **state)
{
    (void)state;
    rt_sentinel_load(&d);
    int m = rt_sentinel_master(&d);
    int rep = (m + 1) % d.nnodes;
    int64_t t0 = rt_now_ms();
    rt_node_kill(&d, &d.nodes[rep]);
    while (replicas_connected(m) != 1) {
        if (rt_now_ms() - t0 > 30000)
            fail_msg("the master still counts 2 replicas 30 s after kill -9 of one");
        rt_sleep_ms(100);
    }
    step("sentinel: kill -9 of a replica until the master counts 1", t0);
    want_status(rt_node_cmd(&d.nodes[m], "SET deploy:while-down yes"),
                "SET while a replica is down");
    t0 = rt_now_ms();
    rt_node_restart(&d, &d.nodes[rep]);
    rt_deploy_wait_healthy(&d, 60);
    step("sentinel: restart of the replica until healthy", t0);
    assert_int_equal(rt_sentinel_master(&d), m);
    want_string(rt_node_cmd(&d.nodes[rep], "GET deploy:while-down"), "yes",
                "GET on the restarted replica");
}

static void master_killed_and_restarted(void **state)
{
    (void)state;
    rt_sentinel_load(&d);
    int old = rt_sentinel_master(&d);
    write_replicated(old, "deploy:master-killed", "kept");
    int64_t t0 = rt_now_ms();
    rt_node_kill(&d, &d.nodes[old]);
    int m = rt_sentinel_wait_new_master(&d, old, 60);
    step("sentinel: kill -9 of the master until every sentinel names a new one", t0);
    want_string(rt_node_cmd(&d.nodes[m], "GET deploy:master-killed"), "kept",
                "GET on the new master");
    t0 = rt_now_ms();
    rt_node_restart(&d, &d.nodes[old]);
    /* no persistence: it is back as an empty, writable master until the sentinels demote it */
    char role[32];
    printf("note: the restarted old master first answers ROLE %s with %lld keys\n",
           rt_node_role(&d.nodes[old], role, sizeof role),
           int_reply(rt_node_cmd(&d.nodes[old], "DBSIZE"), "DBSIZE"));
    rt_deploy_wait_healthy(&d, 60);
    step("sentinel: restart of the old master until it is a synced replica", t0);
    /* not necessarily of m: a sentinel that had not heard of the first promotion yet may
     * have failed over the dead master once more, with a higher epoch, to the other replica
     * (seen under load) */
    int now = rt_sentinel_master(&d);
    if (now != m)
        printf("note: after kill -9 of the master, node%d was promoted, then node%d\n", m, now);
    assert_int_not_equal(now, old);
    redisReply *r = rt_node_cmd(&d.nodes[old], "ROLE");
    assert_string_equal(r->element[0]->str, "slave");
    assert_int_equal(r->element[2]->integer, d.nodes[now].port);
    freeReplyObject(r);
    want_string(rt_node_cmd(&d.nodes[old], "GET deploy:master-killed"), "kept",
                "GET on the old master");
}

static void sentinel_killed_and_restarted(void **state)
{
    (void)state;
    rt_sentinel_load(&d);
    int64_t t0 = rt_now_ms();
    rt_node_kill(&d, &d.sentinels[1]);
    /* two of three still make the quorum of 2 */
    want_status(rt_node_cmd(&d.sentinels[0], "SENTINEL CKQUORUM %s", d.master_name), "CKQUORUM");
    rt_node_restart(&d, &d.sentinels[1]);
    rt_deploy_wait_healthy(&d, 60);
    step("sentinel: kill -9 and restart of a sentinel until healthy", t0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(comes_up),
        cmocka_unit_test(failover),
        cmocka_unit_test(replica_killed_and_restarted),
        cmocka_unit_test(master_killed_and_restarted),
        cmocka_unit_test(sentinel_killed_and_restarted),
    };
    return RT_RUN(tests, argc, argv, 0);
}
