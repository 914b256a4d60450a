/* The shared lock (docs/design.md 7.2): the arguments of its try and extend, its release,
 * and a plain waiter leaving the waiting writers. The acquire loop is acquire.c's. */
#include "internal.h"

#include <string.h>
#include <syslog.h>

void rl_shared_try_call(const redis_lock *l, rl_script_call *k)
{
    k->nkeys = 4;
    k->keys[0] = l->key;
    k->keys[1] = l->fence_key;
    k->keys[2] = l->shared_key;
    k->keys[3] = l->writers_key;
    k->keylens[0] = l->key_len;
    k->keylens[1] = l->fence_len;
    k->keylens[2] = l->shared_len;
    k->keylens[3] = l->writers_len;
    k->nargs = 4;
    k->args[0] = l->id;
    rl_fmt_ms(k->num, sizeof k->num, l->opts.expire_ms);
    k->args[1] = k->num;
    k->args[2] = l->opts.fencing ? "1" : "0";
    k->args[3] = RL_SHARED_MARKER;
}

void rl_shared_extend_call(const redis_lock *l, rl_script_call *k, int64_t expire_ms)
{
    k->nkeys = 2;
    k->keys[0] = l->key;
    k->keys[1] = l->shared_key;
    k->keylens[0] = l->key_len;
    k->keylens[1] = l->shared_len;
    k->nargs = 3;
    k->args[0] = l->id;
    rl_fmt_ms(k->num, sizeof k->num, expire_ms);
    k->args[1] = k->num;
    k->args[2] = RL_SHARED_MARKER;
}

int rl_shared_release(redis_lock *l)
{
    rl_script_call k = {.nkeys = 3,
                        .keys = {l->key, l->shared_key, l->signal_key},
                        .keylens = {l->key_len, l->shared_len, l->signal_len},
                        .nargs = 3};
    rl_fmt_ms(k.num, sizeof k.num, l->opts.signal_expire_ms);
    k.args[0] = l->id;
    k.args[1] = k.num;
    k.args[2] = RL_SHARED_MARKER;
    rl_conn *conn;
    int rc = rl_client_get(l->client, &conn);
    if (rc)
        return rc;
    redisReply *r = NULL;
    rc = rl_script(l->client, conn, RL_SCRIPT_SHARED_RELEASE, &k, &r, l->scratch,
                   l->scratch_cap);
    rl_client_put(l->client, conn, rl_conn_reusable(rc));
    if (!rc && r->type != REDIS_REPLY_INTEGER)
        rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to the shared release script");
    if (!rc && r->integer == 1)
        rc = rl_error(REDIS_LOCK_ENOTHELD, "%s is not held shared by %s (expired, reset or "
                      "never acquired)", l->name, l->id);
    if (r)
        freeReplyObject(r);
    return rc;
}

void rl_writer_leave(redis_lock *l)
{
    const char *argv[3] = {"ZREM", l->writers_key, l->id};
    size_t lens[3] = {4, l->writers_len, strlen(l->id)};
    redisReply *r = NULL;
    char msg[512];
    strncpy(msg, redis_lock_last_error(), sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    if (rl_client_command(l->client, &r, 3, argv, lens))
        rl_log(l->client, LOG_DEBUG, "leaving the waiting writers of %s: %s (their lease "
               "lapses)", l->name, redis_lock_last_error());
    if (r)
        freeReplyObject(r);
    rl_error(0, "%s", msg);
}
