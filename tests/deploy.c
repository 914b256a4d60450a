/* Shared Sentinel and Cluster deployments for the tests: see deploy.h. */
#include "deploy.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef RT_SOURCE_DIR
#define RT_SOURCE_DIR "."
#endif

/* at least 100 ms between polls of one server, with jitter */
static void nap(void)
{
    rt_sleep_ms(100 + rand() % 100);
}

static const char *script_path(void)
{
    static char path[512];
    const char *src = getenv("REDIS_LOCK_TEST_SRC");
    snprintf(path, sizeof path, "%s/scripts/deploy.sh", src && *src ? src : RT_SOURCE_DIR);
    return path;
}

/* ---- loading -------------------------------------------------------------------------- */

static void parse_env(rt_deploy *d, const char *file)
{
    FILE *f = fopen(file, "r");
    if (!f)
        fail_msg("cannot read the deployment's environment %s: %s", file, strerror(errno));
    memset(d, 0, sizeof *d);
    d->mig_slot = -1;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *eq = strchr(line, '=');
        if (strncmp(line, "DEPLOY_", 7) != 0 || !eq)
            continue;
        *eq = '\0';
        const char *k = line + 7, *v = eq + 1;
        int i;
        char rest[32];
        if (strcmp(k, "KIND") == 0)
            snprintf(d->kind, sizeof d->kind, "%s", v);
        else if (strcmp(k, "DIR") == 0)
            snprintf(d->dir, sizeof d->dir, "%s", v);
        else if (strcmp(k, "URL") == 0)
            snprintf(d->url, sizeof d->url, "%s", v);
        else if (strcmp(k, "SEEDS_URL") == 0)
            snprintf(d->seeds_url, sizeof d->seeds_url, "%s", v);
        else if (strcmp(k, "MASTER_NAME") == 0)
            snprintf(d->master_name, sizeof d->master_name, "%s", v);
        else if (strcmp(k, "NODES") == 0)
            d->nnodes = atoi(v);
        else if (strcmp(k, "SENTINELS") == 0)
            d->nsentinels = atoi(v);
        else if (sscanf(k, "NODE%d_%31s", &i, rest) == 2 && i >= 0 && i < RT_DEPLOY_MAX_NODES) {
            snprintf(d->nodes[i].name, sizeof d->nodes[i].name, "node%d", i);
            if (strcmp(rest, "PORT") == 0)
                d->nodes[i].port = atoi(v);
            else if (strcmp(rest, "BUS_PORT") == 0)
                d->nodes[i].bus_port = atoi(v);
        } else if (sscanf(k, "SENTINEL%d_%31s", &i, rest) == 2 && i >= 0 && i < 3 &&
                   strcmp(rest, "PORT") == 0) {
            snprintf(d->sentinels[i].name, sizeof d->sentinels[i].name, "sentinel%d", i);
            d->sentinels[i].port = atoi(v);
        }
    }
    fclose(f);
    if (!d->dir[0] || d->nnodes < 1 || d->nnodes > RT_DEPLOY_MAX_NODES || d->nsentinels > 3)
        fail_msg("%s is not a deployment's environment", file);
    for (int i = 0; i < d->nnodes; i++)
        if (d->nodes[i].port <= 0)
            fail_msg("%s: no port for node%d", file, i);
    for (int i = 0; i < d->nsentinels; i++)
        if (d->sentinels[i].port <= 0)
            fail_msg("%s: no port for sentinel%d", file, i);
}

/* A deployment this process started itself (no fixture): stopped at exit, and by its keeper
 * when this process dies any other way. */
static char own_env[2][128];
static pid_t own_pid;

static void stop_own(void)
{
    if (getpid() != own_pid)
        return;
    for (int k = 0; k < 2; k++) {
        if (!own_env[k][0])
            continue;
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "bash '%s' stop '%s' >/dev/null 2>&1", script_path(), own_env[k]);
        if (system(cmd) != 0)
            fprintf(stderr, "deploy: could not stop the deployment of %s\n", own_env[k]);
    }
}

static void load(rt_deploy *d, const char *kind, int k, const char *var)
{
    const char *file = getenv(var);
    if (!file || !*file) {
        if (!own_env[k][0]) {
            char tmpl[] = "/tmp/rl-deploy-env.XXXXXX";
            int fd = mkstemp(tmpl);
            if (fd < 0)
                fail_msg("mkstemp: %s", strerror(errno));
            close(fd);
            char cmd[1024];
            snprintf(cmd, sizeof cmd, "bash '%s' %s start --owner %d --env '%s' >/dev/null",
                     script_path(), kind, (int)getpid(), tmpl);
            int64_t t0 = rt_now_ms();
            if (system(cmd) != 0) {
                unlink(tmpl);
                fail_msg("could not start a %s deployment (%s)", kind, cmd);
            }
            fprintf(stderr, "deploy: started a private %s deployment in %lld ms (%s)\n", kind,
                    (long long)(rt_now_ms() - t0), tmpl);
            snprintf(own_env[k], sizeof own_env[k], "%s", tmpl);
            if (!own_pid) {
                own_pid = getpid();
                atexit(stop_own);
            }
        }
        file = own_env[k];
    }
    parse_env(d, file);
    if (strcmp(d->kind, kind) != 0)
        fail_msg("%s holds a %s deployment, not a %s one", file, d->kind, kind);
    if (access(d->dir, F_OK) != 0)
        fail_msg("the %s deployment of %s is gone (%s); was its fixture stopped?", kind, file,
                 d->dir);
    rt_deploy_wait_healthy(d, 60);
}

void rt_sentinel_load(rt_deploy *d)
{
    load(d, "sentinel", 0, "REDIS_LOCK_DEPLOY_SENTINEL");
    if (d->nsentinels != 3 || d->nnodes != 3 || !d->master_name[0])
        fail_msg("the sentinel deployment at %s is incomplete", d->dir);
}

void rt_cluster_load(rt_deploy *d)
{
    load(d, "cluster", 1, "REDIS_LOCK_DEPLOY_CLUSTER");
    if (d->nnodes != 6)
        fail_msg("the cluster deployment at %s is incomplete", d->dir);
}

void rt_deploy_wait_healthy(const rt_deploy *d, int timeout_s)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "bash '%s' wait '%s' %d 2>&1", script_path(), d->dir, timeout_s);
    FILE *p = popen(cmd, "r");
    if (!p)
        fail_msg("popen: %s", strerror(errno));
    char out[1024] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    out[strcspn(out, "\n")] = '\0';
    if (pclose(p) != 0)
        fail_msg("the %s deployment is not healthy: %s", d->kind, out);
}

/* ---- nodes ---------------------------------------------------------------------------- */

const char *rt_node_url(const rt_node *n, char *buf, size_t size)
{
    snprintf(buf, size, "redis://127.0.0.1:%d", n->port);
    return buf;
}

redisContext *rt_node_try_raw(const rt_node *n)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", n->port, tv);
    if (!c)
        return NULL;
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

redisContext *rt_node_raw(const rt_node *n)
{
    redisContext *c = rt_node_try_raw(n);
    if (!c)
        fail_msg("cannot connect to %s at 127.0.0.1:%d", n->name, n->port);
    return c;
}

static redisReply *vtry(const rt_node *n, const char *fmt, va_list ap)
{
    redisContext *c = rt_node_try_raw(n);
    if (!c)
        return NULL;
    redisReply *r = redisvCommand(c, fmt, ap);
    redisFree(c);
    return r;
}

redisReply *rt_node_try_cmd(const rt_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vtry(n, fmt, ap);
    va_end(ap);
    return r;
}

redisReply *rt_node_cmd(const rt_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vtry(n, fmt, ap);
    va_end(ap);
    if (!r)
        fail_msg("%s (127.0.0.1:%d) did not answer %s", n->name, n->port, fmt);
    return r;
}

const char *rt_node_role(const rt_node *n, char *buf, size_t size)
{
    buf[0] = '\0';
    redisReply *r = rt_node_try_cmd(n, "ROLE");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_STRING)
        snprintf(buf, size, "%s", r->element[0]->str);
    if (r)
        freeReplyObject(r);
    return buf;
}

int rt_deploy_node_by_port(const rt_deploy *d, int port)
{
    for (int i = 0; i < d->nnodes; i++)
        if (d->nodes[i].port == port)
            return i;
    return -1;
}

static pid_t node_pid(const rt_deploy *d, const rt_node *n)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s/pid", d->dir, n->name);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (!f || fscanf(f, "%d", &pid) != 1 || pid <= 0)
        fail_msg("no pid for %s in %s", n->name, path);
    fclose(f);
    return (pid_t)pid;
}

static int answers(const rt_node *n)
{
    redisReply *r = rt_node_try_cmd(n, "PING");
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    return ok;
}

void rt_node_signal(const rt_deploy *d, const rt_node *n, int sig)
{
    pid_t pid = node_pid(d, n);
    if (kill(pid, sig) != 0)
        fail_msg("kill(%s, %d): %s", n->name, sig, strerror(errno));
}

void rt_node_kill(const rt_deploy *d, const rt_node *n)
{
    rt_node_signal(d, n, SIGKILL);
    int64_t deadline = rt_now_ms() + 10000;
    while (answers(n)) {
        if (rt_now_ms() > deadline)
            fail_msg("%s still answers 10 s after kill -9", n->name);
        nap();
    }
}

void rt_node_restart(const rt_deploy *d, const rt_node *n)
{
    /* the keeper (scripts/deploy.sh) restarts it, so that it stays the keeper's child and
     * dies with the deployment, not with this test */
    char req[512], failed[512];
    snprintf(req, sizeof req, "%s/%s/restart", d->dir, n->name);
    snprintf(failed, sizeof failed, "%s/%s/restart.failed", d->dir, n->name);
    unlink(failed);
    int fd = open(req, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        fail_msg("cannot request a restart of %s (%s): %s", n->name, req, strerror(errno));
    close(fd);
    int64_t deadline = rt_now_ms() + 20000;
    while (access(req, F_OK) == 0) {
        if (rt_now_ms() > deadline)
            fail_msg("%s was not restarted within 20 s (is the keeper alive? %s/keeper.log)",
                     n->name, d->dir);
        rt_sleep_ms(50);
    }
    if (access(failed, F_OK) == 0)
        fail_msg("%s did not restart; see %s/%s/redis.log", n->name, d->dir, n->name);
    deadline = rt_now_ms() + 10000;
    while (!answers(n)) {
        if (rt_now_ms() > deadline)
            fail_msg("%s does not answer after its restart", n->name);
        nap();
    }
}

/* ---- sentinel ------------------------------------------------------------------------- */

/* the data node that every sentinel names, or -1 */
static int agreed_master(const rt_deploy *d)
{
    int m = -2;
    for (int i = 0; i < d->nsentinels; i++) {
        redisReply *r = rt_node_try_cmd(&d->sentinels[i], "SENTINEL get-master-addr-by-name %s",
                                        d->master_name);
        int port = -1;
        if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING)
            port = atoi(r->element[1]->str);
        if (r)
            freeReplyObject(r);
        int idx = rt_deploy_node_by_port(d, port);
        if (idx < 0 || (m != -2 && idx != m))
            return -1;
        m = idx;
    }
    return m < 0 ? -1 : m;
}

int rt_sentinel_master(const rt_deploy *d)
{
    int64_t deadline = rt_now_ms() + 10000;
    for (;;) {
        int m = agreed_master(d);
        if (m >= 0)
            return m;
        if (rt_now_ms() > deadline)
            fail_msg("the sentinels do not agree on a master of %s", d->master_name);
        nap();
    }
}

int rt_sentinel_wait_new_master(const rt_deploy *d, int old, int timeout_s)
{
    int64_t deadline = rt_now_ms() + (int64_t)timeout_s * 1000;
    char role[32];
    for (;;) {
        int m = agreed_master(d);
        if (m >= 0 && m != old &&
            strcmp(rt_node_role(&d->nodes[m], role, sizeof role), "master") == 0)
            return m;
        if (rt_now_ms() > deadline)
            fail_msg("no new master of %s within %d s (sentinels name node%d)", d->master_name,
                     timeout_s, m);
        nap();
    }
}

int rt_sentinel_failover(const rt_deploy *d, int wait_healthy)
{
    int old = rt_sentinel_master(d);
    int64_t deadline = rt_now_ms() + 30000;
    for (int i = 0;; i++) {
        /* the sentinels take turns, in case one of them is down */
        redisReply *r = rt_node_try_cmd(&d->sentinels[i % d->nsentinels], "SENTINEL FAILOVER %s",
                                        d->master_name);
        int ok = r && r->type == REDIS_REPLY_STATUS;
        char why[256];
        snprintf(why, sizeof why, "%s", r && r->str ? r->str : "no answer");
        if (r)
            freeReplyObject(r);
        if (ok)
            break;
        /* -INPROG: the previous failover is not over; -NOGOODSLAVE: no replica has been seen
         * recently enough yet */
        if (rt_now_ms() > deadline)
            fail_msg("SENTINEL FAILOVER %s: %s", d->master_name, why);
        nap();
    }
    int m = rt_sentinel_wait_new_master(d, old, 60); /* (a sentinel in TILT mode waits 30 s) */
    if (wait_healthy)
        rt_deploy_wait_healthy(d, 60);
    return m;
}

/* ---- cluster -------------------------------------------------------------------------- */

int rt_cluster_keyslot(const rt_deploy *d, const char *key)
{
    for (int i = 0; i < d->nnodes; i++) {
        redisReply *r = rt_node_try_cmd(&d->nodes[i], "CLUSTER KEYSLOT %s", key);
        if (r && r->type == REDIS_REPLY_INTEGER) {
            int slot = (int)r->integer;
            freeReplyObject(r);
            return slot;
        }
        if (r)
            freeReplyObject(r);
    }
    fail_msg("no node answered CLUSTER KEYSLOT");
    return -1;
}

/* the master of slot in node i's CLUSTER SLOTS (its index), -1 when none, -2 no answer */
static int slot_master_seen_by(const rt_deploy *d, int i, int slot)
{
    redisReply *r = rt_node_try_cmd(&d->nodes[i], "CLUSTER SLOTS");
    int m = -2;
    if (r && r->type == REDIS_REPLY_ARRAY) {
        m = -1;
        for (size_t j = 0; j < r->elements; j++) {
            redisReply *e = r->element[j];
            if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 || e->element[0]->integer > slot ||
                e->element[1]->integer < slot)
                continue;
            redisReply *node = e->element[2];
            if (node->type == REDIS_REPLY_ARRAY && node->elements >= 2)
                m = rt_deploy_node_by_port(d, (int)node->element[1]->integer);
        }
    }
    if (r)
        freeReplyObject(r);
    return m;
}

/* the master of slot as every node that answers sees it, or -1 */
static int agreed_slot_master(const rt_deploy *d, int slot)
{
    int m = -2;
    for (int i = 0; i < d->nnodes; i++) {
        int s = slot_master_seen_by(d, i, slot);
        if (s == -2)
            continue;
        if (s < 0 || (m != -2 && s != m))
            return -1;
        m = s;
    }
    return m < 0 ? -1 : m;
}

int rt_cluster_slot_master(const rt_deploy *d, int slot)
{
    int64_t deadline = rt_now_ms() + 10000;
    for (;;) {
        int m = agreed_slot_master(d, slot);
        if (m >= 0)
            return m;
        if (rt_now_ms() > deadline)
            fail_msg("the nodes do not agree on the master of slot %d", slot);
        nap();
    }
}

void rt_cluster_wait_slot_master(const rt_deploy *d, int slot, int m, int timeout_s)
{
    int64_t deadline = rt_now_ms() + (int64_t)timeout_s * 1000;
    int seen;
    while ((seen = agreed_slot_master(d, slot)) != m) {
        if (rt_now_ms() > deadline)
            fail_msg("slot %d: not every node sees node%d as its master within %d s (%d)", slot, m,
                     timeout_s, seen);
        nap();
    }
}

const char *rt_cluster_node_id(const rt_deploy *d, int i, char *buf, size_t size)
{
    redisReply *r = rt_node_cmd(&d->nodes[i], "CLUSTER MYID");
    if (r->type != REDIS_REPLY_STRING)
        fail_msg("CLUSTER MYID on node%d: unexpected reply", i);
    snprintf(buf, size, "%s", r->str);
    freeReplyObject(r);
    return buf;
}

int rt_cluster_replica_of(const rt_deploy *d, int m)
{
    char id[64], role[32];
    rt_cluster_node_id(d, m, id, sizeof id);
    for (int i = 0; i < d->nnodes; i++) {
        if (i == m || strcmp(rt_node_role(&d->nodes[i], role, sizeof role), "slave") != 0)
            continue;
        redisReply *r = rt_node_try_cmd(&d->nodes[i], "ROLE");
        int mine = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 3 &&
                   r->element[2]->type == REDIS_REPLY_INTEGER &&
                   r->element[2]->integer == d->nodes[m].port;
        if (r)
            freeReplyObject(r);
        if (mine)
            return i;
    }
    return -1;
}

int rt_cluster_failover(const rt_deploy *d, int slot)
{
    int m = rt_cluster_slot_master(d, slot);
    int rep = rt_cluster_replica_of(d, m);
    if (rep < 0)
        fail_msg("node%d (master of slot %d) has no replica", m, slot);
    redisReply *r = rt_node_cmd(&d->nodes[rep], "CLUSTER FAILOVER");
    if (r->type != REDIS_REPLY_STATUS)
        fail_msg("CLUSTER FAILOVER on node%d: %s", rep, r->str ? r->str : "?");
    freeReplyObject(r);
    rt_cluster_wait_slot_master(d, slot, rep, 30);
    rt_deploy_wait_healthy(d, 60);
    return rep;
}

static void setslot(const rt_deploy *d, int i, int slot, const char *how, const char *id)
{
    redisReply *r = id ? rt_node_cmd(&d->nodes[i], "CLUSTER SETSLOT %d %s %s", slot, how, id)
                       : rt_node_cmd(&d->nodes[i], "CLUSTER SETSLOT %d %s", slot, how);
    if (r->type != REDIS_REPLY_STATUS)
        fail_msg("CLUSTER SETSLOT %d %s on node%d: %s", slot, how, i, r->str ? r->str : "?");
    freeReplyObject(r);
}

void rt_cluster_migrate_begin(rt_deploy *d, int slot, int to)
{
    char from_id[64], to_id[64], role[32];
    int from = rt_cluster_slot_master(d, slot);
    if (from == to)
        fail_msg("slot %d is on node%d already", slot, to);
    if (strcmp(rt_node_role(&d->nodes[to], role, sizeof role), "master") != 0)
        fail_msg("node%d is not a master", to);
    rt_cluster_node_id(d, from, from_id, sizeof from_id);
    rt_cluster_node_id(d, to, to_id, sizeof to_id);
    /* importing first: the source starts answering ASK at once, and the target must already
     * accept the ASKING clients it sends there */
    setslot(d, to, slot, "IMPORTING", from_id);
    setslot(d, from, slot, "MIGRATING", to_id);
    d->mig_slot = slot;
    d->mig_from = from;
    d->mig_to = to;
}

static void migrate(const rt_deploy *d, const char **keys, size_t nkeys)
{
    const char *argv[110];
    size_t lens[110];
    char port[16];
    snprintf(port, sizeof port, "%d", d->nodes[d->mig_to].port);
    const char *head[] = {"MIGRATE", "127.0.0.1", port, "", "0", "5000", "KEYS"};
    size_t n = 0;
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
        argv[n++] = head[i];
    for (size_t i = 0; i < nkeys && n < 110; i++)
        argv[n++] = keys[i];
    for (size_t i = 0; i < n; i++)
        lens[i] = strlen(argv[i]);
    redisContext *c = rt_node_raw(&d->nodes[d->mig_from]);
    redisReply *r = redisCommandArgv(c, (int)n, argv, lens);
    if (!r || r->type != REDIS_REPLY_STATUS)
        fail_msg("MIGRATE from node%d to node%d: %s", d->mig_from, d->mig_to,
                 r && r->str ? r->str : c->errstr);
    freeReplyObject(r);
    redisFree(c);
}

void rt_cluster_migrate_key(const rt_deploy *d, const char *key)
{
    if (d->mig_slot < 0)
        fail_msg("no slot migration under way (rt_cluster_migrate_begin)");
    migrate(d, &key, 1);
}

void rt_cluster_migrate_keys(const rt_deploy *d)
{
    if (d->mig_slot < 0)
        fail_msg("no slot migration under way (rt_cluster_migrate_begin)");
    for (;;) {
        redisReply *r =
            rt_node_cmd(&d->nodes[d->mig_from], "CLUSTER GETKEYSINSLOT %d 100", d->mig_slot);
        if (r->type != REDIS_REPLY_ARRAY)
            fail_msg("CLUSTER GETKEYSINSLOT on node%d: %s", d->mig_from, r->str ? r->str : "?");
        if (r->elements == 0) {
            freeReplyObject(r);
            return;
        }
        const char *keys[100];
        size_t n = 0;
        for (size_t i = 0; i < r->elements && n < 100; i++)
            keys[n++] = r->element[i]->str;
        migrate(d, keys, n);
        freeReplyObject(r);
    }
}

void rt_cluster_migrate_end(rt_deploy *d)
{
    if (d->mig_slot < 0)
        fail_msg("no slot migration under way (rt_cluster_migrate_begin)");
    char to_id[64], role[32];
    rt_cluster_node_id(d, d->mig_to, to_id, sizeof to_id);
    /* the target first (it bumps its epoch and claims the slot), then the source, then the
     * other masters, so no node keeps sending clients to the source */
    setslot(d, d->mig_to, d->mig_slot, "NODE", to_id);
    setslot(d, d->mig_from, d->mig_slot, "NODE", to_id);
    for (int i = 0; i < d->nnodes; i++)
        if (i != d->mig_to && i != d->mig_from &&
            strcmp(rt_node_role(&d->nodes[i], role, sizeof role), "master") == 0)
            setslot(d, i, d->mig_slot, "NODE", to_id);
    rt_cluster_wait_slot_master(d, d->mig_slot, d->mig_to, 30);
    d->mig_slot = -1;
    rt_deploy_wait_healthy(d, 60);
}

void rt_cluster_migrate_slot(rt_deploy *d, int slot, int to)
{
    rt_cluster_migrate_begin(d, slot, to);
    rt_cluster_migrate_keys(d);
    rt_cluster_migrate_end(d);
}
