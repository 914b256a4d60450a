/* The fair lock (docs/design.md 7.1): its keys, the arguments of its try, its release,
 * leave and give back, and the timer of its wait. The acquire loop itself is acquire.c's,
 * which calls these when the handle has opts.fair. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "PREFIX" NAME [":" ID] */
static char *key_of(const char *prefix, const char *name, const char *id, size_t *len)
{
    size_t n = strlen(prefix) + strlen(name) + (id ? strlen(id) + 1 : 0);
    char *s = rl_malloc(n + 1);
    if (!s)
        return NULL;
    snprintf(s, n + 1, "%s%s%s%s", prefix, name, id ? ":" : "", id ? id : "");
    if (len)
        *len = n;
    return s;
}

int rl_fair_keys(redis_lock *l)
{
    size_t plen;
    l->queue_key = key_of("lock-queue:", l->name, NULL, &l->queue_len);
    l->lease_key = key_of("lock-lease:", l->name, NULL, &l->lease_len);
    l->wake_key = key_of("lock-wake:", l->name, l->id, &l->wake_len);
    /* the script appends the granted waiter's id to this */
    l->wake_prefix = key_of("lock-wake:", l->name, "", &plen);
    if (!l->queue_key || !l->lease_key || !l->wake_key || !l->wake_prefix)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory creating a lock");
    return 0;
}

void rl_fair_try_call(const redis_lock *l, rl_script_call *k, bool enqueue)
{
    k->nkeys = 4;
    k->keys[0] = l->key;
    k->keys[1] = l->fence_key;
    k->keys[2] = l->queue_key;
    k->keys[3] = l->lease_key;
    k->keylens[0] = l->key_len;
    k->keylens[1] = l->fence_len;
    k->keylens[2] = l->queue_len;
    k->keylens[3] = l->lease_len;
    k->nargs = 6;
    k->args[0] = l->id;
    rl_fmt_ms(k->num, sizeof k->num, l->opts.expire_ms);
    k->args[1] = k->num;
    k->args[2] = l->opts.fencing ? "1" : "0";
    rl_fmt_ms(k->num2, sizeof k->num2, l->opts.queue_lease_ms);
    k->args[3] = k->num2;
    k->args[4] = l->wake_prefix;
    k->args[5] = enqueue ? "1" : "0";
}

int rl_fair_leave(redis_lock *l, int mode)
{
    static const char *const modes[] = {
        [RL_FAIR_RELEASE] = "release", [RL_FAIR_LEAVE] = "leave", [RL_FAIR_GIVE_BACK] = "giveback"};
    rl_script_call k = {.nkeys = 4,
                        .keys = {l->key, l->signal_key, l->queue_key, l->lease_key},
                        .keylens = {l->key_len, l->signal_len, l->queue_len, l->lease_len},
                        .nargs = 4};
    rl_fmt_ms(k.num, sizeof k.num, l->opts.signal_expire_ms);
    k.args[0] = l->id;
    k.args[1] = k.num;
    k.args[2] = modes[mode];
    k.args[3] = l->wake_prefix;
    rl_conn *conn;
    int rc = rl_client_get(l->client, &conn);
    if (rc)
        return rc;
    redisReply *r = NULL;
    rc = rl_script(l->client, conn, RL_SCRIPT_FAIR_LEAVE, &k, &r, l->scratch, l->scratch_cap);
    rl_client_put(l->client, conn, rl_conn_reusable(rc));
    if (!rc && r->type != REDIS_REPLY_INTEGER)
        rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to the fair lock's release script");
    if (!rc && r->integer == 1)
        rc = rl_error(REDIS_LOCK_ENOTHELD, "%s is not held by %s (expired, reset or never "
                      "acquired)", l->name, l->id);
    if (r)
        freeReplyObject(r);
    return rc;
}

int64_t rl_fair_wait_until(const redis_lock *l, const try_result *res, int64_t now,
                           int64_t deadline)
{
    /* a third of the lease: the try at the end of each slice renews our place, and two
     * slices may go wrong (a late timer, a slow round trip) before the lease lapses */
    int64_t until = now + l->opts.queue_lease_ms / 3;
    if (res->pttl >= 0 && now + res->pttl + 1 < until)
        until = now + res->pttl + 1; /* the holder's (or a grantee's) key expires */
    if (res->next >= 0 && now + res->next + 1 < until)
        until = now + res->next + 1; /* the earliest waiter's lease lapses: purge it */
    return until < deadline ? until : deadline;
}
