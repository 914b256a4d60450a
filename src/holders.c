/* redis_lock_holders: who holds a lock, a shared lock or a semaphore, for status displays.
 * Read with a few plain commands (not atomically: a snapshot for people, not a decision). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int command(redis_lock *l, redisReply **r, int argc, const char **argv)
{
    size_t lens[4];
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return rl_client_command(l->client, r, argc, argv, lens);
}

static int add(redis_lock_holder **v, size_t *n, const char *id, size_t len, int64_t ttl)
{
    redis_lock_holder *nv = rl_realloc(*v, (*n + 1) * sizeof **v);
    if (!nv)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory listing holders");
    *v = nv;
    if (!(nv[*n].id = rl_memdup(id, len)))
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory listing holders");
    nv[*n].ttl_ms = ttl;
    (*n)++;
    return 0;
}

/* The members of a sorted set scored by expiry (ms on the server's clock; inf: none). */
static int list_zset(redis_lock *l, const char *key, redis_lock_holder **v, size_t *n)
{
    redisReply *t = NULL, *z = NULL;
    const char *time_argv[1] = {"TIME"};
    const char *z_argv[4] = {"ZRANGE", key, "0", "-1"};
    int rc = command(l, &t, 1, time_argv);
    if (!rc && (t->type != REDIS_REPLY_ARRAY || t->elements != 2 ||
                t->element[0]->type != REDIS_REPLY_STRING ||
                t->element[1]->type != REDIS_REPLY_STRING))
        rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to TIME");
    int64_t now = 0;
    if (!rc)
        now = strtoll(t->element[0]->str, NULL, 10) * 1000 +
              strtoll(t->element[1]->str, NULL, 10) / 1000;
    if (!rc) {
        /* WITHSCORES as a fifth argument */
        const char *argv[5] = {z_argv[0], z_argv[1], z_argv[2], z_argv[3], "WITHSCORES"};
        size_t lens[5];
        for (int i = 0; i < 5; i++)
            lens[i] = strlen(argv[i]);
        rc = rl_client_command(l->client, &z, 5, argv, lens);
    }
    if (!rc && (z->type != REDIS_REPLY_ARRAY || z->elements % 2))
        rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to ZRANGE");
    for (size_t i = 0; !rc && i < z->elements; i += 2) {
        const redisReply *id = z->element[i], *score = z->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || score->type != REDIS_REPLY_STRING) {
            rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to ZRANGE");
            break;
        }
        int64_t ttl = -1;
        if (strcmp(score->str, "inf") != 0) {
            ttl = (int64_t)strtod(score->str, NULL) - now;
            if (ttl <= 0)
                continue; /* lapsed: no longer a holder */
        }
        rc = add(v, n, id->str, id->len, ttl);
    }
    if (t)
        freeReplyObject(t);
    if (z)
        freeReplyObject(z);
    return rc;
}

void redis_lock_holders_free(redis_lock_holder *holders, size_t n)
{
    for (size_t i = 0; holders && i < n; i++)
        free(holders[i].id);
    free(holders);
}

int redis_lock_holders(redis_lock *l, redis_lock_holder **out, size_t *n)
{
    int rc = rl_lock_enter(l);
    if (rc)
        return rc;
    if (!out || !n)
        return rl_error(REDIS_LOCK_EINVAL, "out or n is NULL");
    *out = NULL;
    *n = 0;
    if (l->limit) {
        rc = list_zset(l, l->key, out, n);
    } else {
        redisReply *g = NULL, *p = NULL;
        const char *get[2] = {"GET", l->key}, *pttl[2] = {"PTTL", l->key};
        rc = command(l, &g, 2, get);
        if (!rc && g->type != REDIS_REPLY_STRING && g->type != REDIS_REPLY_NIL)
            rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to GET");
        if (!rc && g->type == REDIS_REPLY_STRING) {
            if (strcmp(g->str, RL_SHARED_MARKER) == 0) {
                /* a plain handle looks at the shared holders of its name */
                char *shared_key = l->shared_key;
                if (!shared_key) {
                    size_t kl = strlen("lock-shared:") + strlen(l->name) + 1;
                    if ((shared_key = rl_malloc(kl)))
                        snprintf(shared_key, kl, "lock-shared:%s", l->name);
                }
                rc = shared_key ? list_zset(l, shared_key, out, n)
                                : rl_error(REDIS_LOCK_ENOMEM, "out of memory listing holders");
                if (shared_key != l->shared_key)
                    free(shared_key);
            } else if (!(rc = command(l, &p, 2, pttl))) {
                if (p->type != REDIS_REPLY_INTEGER)
                    rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to PTTL");
                else if (p->integer != -2)
                    rc = add(out, n, g->str, g->len, p->integer);
            }
        }
        if (g)
            freeReplyObject(g);
        if (p)
            freeReplyObject(p);
    }
    if (rc) {
        redis_lock_holders_free(*out, *n);
        *out = NULL;
        *n = 0;
    }
    return rc;
}
