/* The semaphore (docs/design.md 7.3): a lock handle whose key is a sorted set of permits,
 * at most `limit` of them, each with its holder's id and expiry. Acquire, release, extend,
 * renewal, cancel and fencing are the lock's; these are the semaphore's script calls. */
#include "internal.h"

#include <string.h>

#define RL_SEM_MAX_LIMIT 1000000

int redis_lock_semaphore_new(redis_lock **out, redis_lock_client *client, const char *name,
                             int limit, const redis_lock_options *opts)
{
    rl_error_clear();
    if (out)
        *out = NULL;
    if (limit < 1 || limit > RL_SEM_MAX_LIMIT)
        return rl_error(REDIS_LOCK_EINVAL, "a semaphore's limit must be 1 to %d (got %d)",
                        RL_SEM_MAX_LIMIT, limit);
    if (opts && opts->version >= 2 && (opts->fair || opts->shared))
        return rl_error(REDIS_LOCK_EINVAL, "a semaphore cannot be fair or shared");
    return rl_lock_create(out, client, name, opts, limit);
}

int redis_lock_semaphore_limit(const redis_lock *lock)
{
    return lock ? lock->limit : 0;
}

void rl_sem_try_call(const redis_lock *l, rl_script_call *k)
{
    k->nkeys = 3;
    k->keys[0] = l->key;
    k->keys[1] = l->limit_key;
    k->keys[2] = l->fence_key;
    k->keylens[0] = l->key_len;
    k->keylens[1] = l->limit_len;
    k->keylens[2] = l->fence_len;
    k->nargs = 4;
    k->args[0] = l->id;
    rl_fmt_ms(k->num, sizeof k->num, l->opts.expire_ms);
    k->args[1] = k->num;
    k->args[2] = l->opts.fencing ? "1" : "0";
    rl_fmt_ms(k->num2, sizeof k->num2, l->limit);
    k->args[3] = k->num2;
}

void rl_sem_extend_call(const redis_lock *l, rl_script_call *k, int64_t expire_ms)
{
    k->nkeys = 2;
    k->keys[0] = l->key;
    k->keys[1] = l->limit_key;
    k->keylens[0] = l->key_len;
    k->keylens[1] = l->limit_len;
    k->nargs = 2;
    k->args[0] = l->id;
    rl_fmt_ms(k->num, sizeof k->num, expire_ms);
    k->args[1] = k->num;
}

int rl_sem_release(redis_lock *l)
{
    rl_script_call k = {.nkeys = 3,
                        .keys = {l->key, l->limit_key, l->signal_key},
                        .keylens = {l->key_len, l->limit_len, l->signal_len},
                        .nargs = 2};
    rl_fmt_ms(k.num, sizeof k.num, l->opts.signal_expire_ms);
    k.args[0] = l->id;
    k.args[1] = k.num;
    rl_conn *conn;
    int rc = rl_client_get(l->client, &conn);
    if (rc)
        return rc;
    redisReply *r = NULL;
    rc = rl_script(l->client, conn, RL_SCRIPT_SEM_RELEASE, &k, &r, l->scratch, l->scratch_cap);
    rl_client_put(l->client, conn, rl_conn_reusable(rc));
    if (!rc && r->type != REDIS_REPLY_INTEGER)
        rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to the semaphore release script");
    if (!rc && r->integer == 1)
        rc = rl_error(REDIS_LOCK_ENOTHELD, "no permit of %s is held by %s (expired, reset or "
                      "never acquired)", l->name, l->id);
    if (r)
        freeReplyObject(r);
    return rc;
}
