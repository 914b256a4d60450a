/* labels: cluster forks */
/* The shared Redis Cluster itself, with raw hiredis only: it comes up with every slot
 * covered by three masters, answers MOVED for keys of other nodes, CLUSTER FAILOVER swaps a
 * shard's roles, a slot migration answers ASK then MOVED as it proceeds, and a master killed
 * with kill -9 is replaced by its replica and rejoins as a replica. Each step prints how
 * long it took. */
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

/* an error reply "KIND SLOT 127.0.0.1:PORT" naming node i */
static void want_redirect(redisReply *r, const char *kind, int slot, int i, const char *what)
{
    char want[64];
    snprintf(want, sizeof want, "%s %d 127.0.0.1:%d", kind, slot, d.nodes[i].port);
    if (!r || r->type != REDIS_REPLY_ERROR || strcmp(r->str, want) != 0)
        fail_msg("%s: want -%s, got type %d \"%s\"", what, want, r ? r->type : -1,
                 r && r->str ? r->str : "");
    freeReplyObject(r);
}

static void want_role(int i, const char *role, int master)
{
    redisReply *r = rt_node_cmd(&d.nodes[i], "ROLE");
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, role);
    if (master >= 0)
        assert_int_equal(r->element[2]->integer, d.nodes[master].port);
    freeReplyObject(r);
}

static void replicate(int m)
{
    redisReply *r = rt_node_cmd(&d.nodes[m], "WAIT 1 5000");
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
}

static void comes_up(void **state)
{
    (void)state;
    int64_t t0 = rt_now_ms();
    rt_cluster_load(&d);
    step("cluster: load (healthy)", t0);
    for (int i = 0; i < d.nnodes; i++) {
        redisReply *r = rt_node_cmd(&d.nodes[i], "CLUSTER INFO");
        assert_non_null(strstr(r->str, "cluster_state:ok"));
        assert_non_null(strstr(r->str, "cluster_slots_assigned:16384"));
        assert_non_null(strstr(r->str, "cluster_known_nodes:6"));
        freeReplyObject(r);
    }
    /* every slot once, in ranges of three masters, each with a replica */
    redisReply *r = rt_node_cmd(&d.nodes[0], "CLUSTER SLOTS");
    long long covered = 0;
    int masters[RT_DEPLOY_MAX_NODES] = {0};
    for (size_t j = 0; j < r->elements; j++) {
        redisReply *e = r->element[j];
        covered += e->element[1]->integer - e->element[0]->integer + 1;
        /* (replicas are listed from their first acknowledged write on: CLUSTER SLOTS of
         * Redis 7.0 leaves out a replica whose replication offset is still 0) */
        assert_true(e->elements >= 3);
        int m = rt_deploy_node_by_port(&d, (int)e->element[2]->element[1]->integer);
        assert_true(m >= 0);
        masters[m] = 1;
    }
    freeReplyObject(r);
    assert_int_equal(covered, 16384);
    int nmasters = 0;
    for (int i = 0; i < d.nnodes; i++)
        nmasters += masters[i];
    assert_int_equal(nmasters, 3);
    for (int i = 0; i < d.nnodes; i++)
        if (masters[i])
            assert_true(rt_cluster_replica_of(&d, i) >= 0);
    /* keys on each master: MOVED from every other node, readable on the replica */
    int seen[RT_DEPLOY_MAX_NODES] = {0}, found = 0;
    for (int k = 0; found < 3 && k < 1000; k++) {
        char key[64];
        snprintf(key, sizeof key, "deploy:up:%d", k);
        int slot = rt_cluster_keyslot(&d, key);
        int m = rt_cluster_slot_master(&d, slot);
        if (seen[m])
            continue;
        seen[m] = 1;
        found++;
        for (int i = 0; i < d.nnodes; i++)
            if (i != m)
                want_redirect(rt_node_cmd(&d.nodes[i], "SET %s 1", key), "MOVED", slot, m,
                              "SET on another node");
        want_status(rt_node_cmd(&d.nodes[m], "SET %s v%d", key, k), "SET on the slot's master");
        replicate(m);
        int rep = rt_cluster_replica_of(&d, m);
        assert_true(rep >= 0);
        redisContext *c = rt_node_raw(&d.nodes[rep]);
        want_status(redisCommand(c, "READONLY"), "READONLY");
        char v[16];
        snprintf(v, sizeof v, "v%d", k);
        want_string(redisCommand(c, "GET %s", key), v, "GET on the replica");
        redisFree(c);
    }
    assert_int_equal(found, 3);
    assert_non_null(strstr(d.url, "redis://127.0.0.1:"));
}

static void failover(void **state)
{
    (void)state;
    rt_cluster_load(&d);
    const char *key = "deploy:failover";
    int slot = rt_cluster_keyslot(&d, key);
    int m = rt_cluster_slot_master(&d, slot);
    int rep = rt_cluster_replica_of(&d, m);
    want_status(rt_node_cmd(&d.nodes[m], "SET %s before", key), "SET");
    replicate(m);
    int64_t t0 = rt_now_ms();
    int n = rt_cluster_failover(&d, slot);
    step("cluster: CLUSTER FAILOVER until every node agrees and all is healthy", t0);
    assert_int_equal(n, rep);
    want_role(n, "master", -1);
    want_role(m, "slave", n);
    want_string(rt_node_cmd(&d.nodes[n], "GET %s", key), "before", "GET on the new master");
    want_redirect(rt_node_cmd(&d.nodes[m], "SET %s after", key), "MOVED", slot, n,
                  "SET on the old master");
}

static void migration(void **state)
{
    (void)state;
    rt_cluster_load(&d);
    const char *a = "{deploy:mig}a", *b = "{deploy:mig}b", *c = "{deploy:mig}c";
    int slot = rt_cluster_keyslot(&d, a);
    int from = rt_cluster_slot_master(&d, slot);
    int to = -1;
    char role[32];
    for (int i = 0; i < d.nnodes && to < 0; i++)
        if (i != from && strcmp(rt_node_role(&d.nodes[i], role, sizeof role), "master") == 0)
            to = i;
    assert_true(to >= 0);
    want_status(rt_node_cmd(&d.nodes[from], "SET %s 1", a), "SET a");
    want_status(rt_node_cmd(&d.nodes[from], "SET %s 2", b), "SET b");
    int64_t t0 = rt_now_ms();
    rt_cluster_migrate_begin(&d, slot, to);
    rt_cluster_migrate_key(&d, a);
    /* a moved, b not yet: the source serves b and sends a (and new keys) on with ASK */
    want_redirect(rt_node_cmd(&d.nodes[from], "GET %s", a), "ASK", slot, to, "GET a on the source");
    want_string(rt_node_cmd(&d.nodes[from], "GET %s", b), "2", "GET b on the source");
    want_redirect(rt_node_cmd(&d.nodes[from], "SET %s 3", c), "ASK", slot, to,
                  "SET c on the source");
    /* the target answers only clients that say ASKING, and MOVED to the source otherwise */
    want_redirect(rt_node_cmd(&d.nodes[to], "GET %s", a), "MOVED", slot, from,
                  "GET a on the target");
    redisContext *t = rt_node_raw(&d.nodes[to]);
    want_status(redisCommand(t, "ASKING"), "ASKING");
    want_string(redisCommand(t, "GET %s", a), "1", "GET a on the target after ASKING");
    want_status(redisCommand(t, "ASKING"), "ASKING");
    want_status(redisCommand(t, "SET %s 3", c), "SET c on the target after ASKING");
    redisFree(t);
    rt_cluster_migrate_keys(&d);
    rt_cluster_migrate_end(&d);
    step("cluster: migration of a slot (begin, MIGRATE, SETSLOT NODE until agreed)", t0);
    assert_int_equal(rt_cluster_slot_master(&d, slot), to);
    for (int i = 0; i < d.nnodes; i++) {
        if (strcmp(rt_node_role(&d.nodes[i], role, sizeof role), "master") == 0 && i != to)
            want_redirect(rt_node_cmd(&d.nodes[i], "GET %s", a), "MOVED", slot, to,
                          "GET a on another master after the migration");
    }
    want_string(rt_node_cmd(&d.nodes[to], "GET %s", a), "1", "GET a on the target");
    want_string(rt_node_cmd(&d.nodes[to], "GET %s", b), "2", "GET b on the target");
    want_string(rt_node_cmd(&d.nodes[to], "GET %s", c), "3", "GET c on the target");
    /* and back, in one call */
    t0 = rt_now_ms();
    rt_cluster_migrate_slot(&d, slot, from);
    step("cluster: migration of the slot back (rt_cluster_migrate_slot)", t0);
    assert_int_equal(rt_cluster_slot_master(&d, slot), from);
    want_string(rt_node_cmd(&d.nodes[from], "GET %s", c), "3", "GET c on the source again");
    want_redirect(rt_node_cmd(&d.nodes[to], "GET %s", c), "MOVED", slot, from,
                  "GET c on the former target");
}

static void master_killed_and_restarted(void **state)
{
    (void)state;
    rt_cluster_load(&d);
    const char *key = "deploy:killed";
    int slot = rt_cluster_keyslot(&d, key);
    int m = rt_cluster_slot_master(&d, slot);
    int rep = rt_cluster_replica_of(&d, m);
    want_status(rt_node_cmd(&d.nodes[m], "SET %s kept", key), "SET");
    replicate(m);
    int64_t t0 = rt_now_ms();
    rt_node_kill(&d, &d.nodes[m]);
    rt_cluster_wait_slot_master(&d, slot, rep, 60);
    step("cluster: kill -9 of a master until every node sees its replica serve the slot", t0);
    want_string(rt_node_cmd(&d.nodes[rep], "GET %s", key), "kept", "GET on the promoted replica");
    t0 = rt_now_ms();
    rt_node_restart(&d, &d.nodes[m]);
    rt_deploy_wait_healthy(&d, 60);
    step("cluster: restart of the old master until it is a synced replica", t0);
    want_role(m, "slave", rep);
}

static void replica_killed_and_restarted(void **state)
{
    (void)state;
    rt_cluster_load(&d);
    const char *key = "deploy:replica";
    int slot = rt_cluster_keyslot(&d, key);
    int m = rt_cluster_slot_master(&d, slot);
    int rep = rt_cluster_replica_of(&d, m);
    int64_t t0 = rt_now_ms();
    rt_node_kill(&d, &d.nodes[rep]);
    want_status(rt_node_cmd(&d.nodes[m], "SET %s while-down", key),
                "SET while the replica is down");
    rt_node_restart(&d, &d.nodes[rep]);
    rt_deploy_wait_healthy(&d, 60);
    step("cluster: kill -9 and restart of a replica until healthy", t0);
    want_role(rep, "slave", m);
    redisContext *c = rt_node_raw(&d.nodes[rep]);
    want_status(redisCommand(c, "READONLY"), "READONLY");
    want_string(redisCommand(c, "GET %s", key), "while-down", "GET on the restarted replica");
    redisFree(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(comes_up),
        cmocka_unit_test(failover),
        cmocka_unit_test(migration),
        cmocka_unit_test(master_killed_and_restarted),
        cmocka_unit_test(replica_killed_and_restarted),
    };
    return RT_RUN(tests, argc, argv, 0);
}
