/* Shared Sentinel and Cluster deployments for the tests (scripts/deploy.sh starts them).
 *
 * Under ctest, a test labelled "sentinel" or "cluster" (first line of its source:
 * a labels comment) gets the deployment of a fixture (tests/deploy.cmake): it is started
 * once before the first such test and stopped after the last, and the tests of one kind
 * run one at a time (RESOURCE_LOCK). Run by hand, rt_sentinel_load() / rt_cluster_load()
 * start a private deployment that stops when the test process exits, however it exits.
 *
 * The deployment is shared: a test must not assume the layout it was created with (a
 * previous test may have failed over or moved slots). Ask: rt_sentinel_master(),
 * rt_cluster_slot_master(). A test that breaks something (kill, failover, migration)
 * leaves it healthy again: rt_deploy_wait_healthy(). Use key names of the test's own.
 *
 * A test file (first line: the labels comment with "sentinel" and, as these tests spawn the
 * deployment's processes, "forks"):
 *     static void lock_survives_failover(void **state)
 *     {
 *         rt_deploy d;
 *         rt_sentinel_load(&d);
 *         redis_lock_client *c = rt_client_url(d.url); // redis+sentinel://.../rlmaster
 *         ...
 *         int m = rt_sentinel_failover(&d, 0); // the old master is still writable here
 *         ...
 *         rt_deploy_wait_healthy(&d, 60);
 *     }
 *     int main(int argc, char **argv) { ...; return RT_RUN(tests, argc, argv, 0); }
 * Timing, on this machine: a SENTINEL FAILOVER switches in 1-2 s, the old master becomes a
 * replica 8-11 s later; kill -9 of the master: a new one in 2-3 s (down-after 1 s). A
 * CLUSTER FAILOVER takes under 1 s; kill -9 of a cluster master: its replica serves the
 * slots in 2-3 s (node timeout 1 s). */
#ifndef RT_DEPLOY_H
#define RT_DEPLOY_H

#include "harness.h"

#define RT_DEPLOY_MAX_NODES 6

typedef struct {
    char name[16]; /* "node0".."node5", "sentinel0".."sentinel2": its directory in dir */
    int port;      /* on 127.0.0.1 */
    int bus_port;  /* cluster bus port (cluster nodes only) */
} rt_node;

typedef struct {
    char kind[16];        /* "sentinel" or "cluster" */
    char dir[256];        /* the deployment's directory (keeper.log, NAME/redis.log) */
    char url[512];        /* redis+sentinel://127.0.0.1:P1,..,127.0.0.1:P3/rlmaster, or a
                             cluster node: redis://127.0.0.1:P */
    char seeds_url[512];  /* cluster: redis://HOST:P,HOST:P,HOST:P (three seeds) */
    char master_name[64]; /* sentinel: the name the sentinels monitor */
    int nnodes;           /* data nodes: 3 (sentinel) or 6 (cluster) */
    rt_node nodes[RT_DEPLOY_MAX_NODES];
    int nsentinels; /* 3 (sentinel) or 0 */
    rt_node sentinels[3];
    /* a slot migration under way (rt_cluster_migrate_begin) */
    int mig_slot, mig_from, mig_to;
} rt_deploy;

/* The shared deployment (or a private one started now); waits until it is healthy.
 * Fails the test when it cannot be had. */
void rt_sentinel_load(rt_deploy *d);
void rt_cluster_load(rt_deploy *d);

/* Wait (at most timeout_s) until the deployment is healthy: Sentinel: every sentinel names
 * the same master, it has its two replicas synced, each sentinel sees both replicas (link
 * ok), the two other sentinels and a quorum, and no failover is under way. Cluster: every
 * node has cluster_state:ok with 16384 slots, sees the 6 nodes connected and none failing,
 * agrees with the others on roles and slots, no slot is migrating, 3 masters own slots and
 * every replica is synced. Fails the test on timeout, with the reason. */
void rt_deploy_wait_healthy(const rt_deploy *d, int timeout_s);

/* "redis://127.0.0.1:PORT" of a node, into buf. */
const char *rt_node_url(const rt_node *n, char *buf, size_t size);
/* A raw connection to a node (fails the test when it cannot connect), or NULL from the
 * _try form. Connect and command timeouts are 5 s. */
redisContext *rt_node_raw(const rt_node *n);
redisContext *rt_node_try_raw(const rt_node *n);
/* One command on a fresh connection; the caller frees the reply. rt_node_cmd fails the test
 * when the node does not answer; rt_node_try_cmd returns NULL then. */
redisReply *rt_node_cmd(const rt_node *n, const char *fmt, ...);
redisReply *rt_node_try_cmd(const rt_node *n, const char *fmt, ...);
/* The first element of ROLE: "master", "slave" or "sentinel"; "" when it does not answer. */
const char *rt_node_role(const rt_node *n, char *buf, size_t size);
/* The index of the data node listening on port, or -1. */
int rt_deploy_node_by_port(const rt_deploy *d, int port);

/* kill -9 the node (data node or sentinel) and wait until it no longer answers. */
void rt_node_kill(const rt_deploy *d, const rt_node *n);
/* Start it again (killing it first if it runs), same port and configuration, no data; waits
 * until it answers PING. It does not wait for the deployment to be healthy. */
void rt_node_restart(const rt_deploy *d, const rt_node *n);
/* Send a signal (SIGSTOP, SIGCONT...) to the node's process. */
void rt_node_signal(const rt_deploy *d, const rt_node *n, int sig);

/* Sentinel: the index of the data node that every sentinel names as the master (waits up
 * to 10 s for them to agree). */
int rt_sentinel_master(const rt_deploy *d);
/* Wait (at most timeout_s) until every sentinel names a master other than node `old` and
 * that node answers ROLE as a master; returns its index. After rt_node_kill of the master. */
int rt_sentinel_wait_new_master(const rt_deploy *d, int old, int timeout_s);
/* SENTINEL FAILOVER (retried while a previous failover is still finishing), then wait for
 * the new master as above; returns its index. With wait_healthy also waits until the old
 * master is a synced replica of the new one: Redis 7.0 sentinels demote a reachable old
 * master only some 8-10 s after the switch, and that old master accepts writes until then. */
int rt_sentinel_failover(const rt_deploy *d, int wait_healthy);

/* Cluster: CLUSTER KEYSLOT of key, as the server computes it. */
int rt_cluster_keyslot(const rt_deploy *d, const char *key);
/* The index of the master that serves slot, as every node reachable agrees (waits up to
 * 10 s for agreement). */
int rt_cluster_slot_master(const rt_deploy *d, int slot);
/* The index of the replica of master m (-1 when it has none). */
int rt_cluster_replica_of(const rt_deploy *d, int m);
/* The node id (CLUSTER MYID) of node i, into buf (41 bytes). */
const char *rt_cluster_node_id(const rt_deploy *d, int i, char *buf, size_t size);
/* CLUSTER FAILOVER on the replica of the shard that serves slot; waits until every node
 * sees it serve the slot and the deployment is healthy again. Returns its index. */
int rt_cluster_failover(const rt_deploy *d, int slot);
/* Wait until every node that answers sees master m serve slot (timeout_s). */
void rt_cluster_wait_slot_master(const rt_deploy *d, int slot, int m, int timeout_s);
/* A slot migration in three steps, so a test can act between them:
 * begin: CLUSTER SETSLOT slot IMPORTING on node `to`, MIGRATING on the slot's master;
 * key: MIGRATE one key to `to` (the source then answers ASK for it);
 * keys: MIGRATE every key left in the slot;
 * end: CLUSTER SETSLOT slot NODE on `to`, the source and the other masters, and wait until
 * every node agrees. rt_cluster_migrate_slot does all of it. `to` must be a master. */
void rt_cluster_migrate_begin(rt_deploy *d, int slot, int to);
void rt_cluster_migrate_key(const rt_deploy *d, const char *key);
void rt_cluster_migrate_keys(const rt_deploy *d);
void rt_cluster_migrate_end(rt_deploy *d);
void rt_cluster_migrate_slot(rt_deploy *d, int slot, int to);

#endif
