/* Dogpile-safe cache: GET KEY; on a miss one client computes under the lock
 * "get_or_set:KEY" while the others wait for it, then read what it stored. */
#include "internal.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/* Where each version's fields end (see rl_options_copy), and the version of the
 * redis_lock_options each embeds. Version 1 ends with a version 1 redis_lock_options,
 * whatever that struct has grown to since. */
static const size_t cache_options_ends[] = {
    [1] = offsetof(redis_lock_cache_options, lock) +
          RL_FIELD_END(redis_lock_options, on_lost_payload),
    [2] = offsetof(redis_lock_cache_options, lock) + RL_FIELD_END(redis_lock_options, shared),
};
static const unsigned cache_lock_versions[] = {[1] = 1, [2] = 2};
_Static_assert(sizeof cache_options_ends / sizeof *cache_options_ends ==
                       REDIS_LOCK_CACHE_OPTIONS_VERSION + 1 &&
                   sizeof cache_lock_versions / sizeof *cache_lock_versions ==
                       REDIS_LOCK_CACHE_OPTIONS_VERSION + 1,
               "a new REDIS_LOCK_CACHE_OPTIONS_VERSION needs its entries in cache_options_ends "
               "and cache_lock_versions");


/* A cancel token. While a call waits for the lock, `lock` points at its handle, so that a
 * cancel reaches the wait (redis_lock_cancel); `cancelers` counts the cancels that may be
 * touching that handle, and the call waits for them to leave before it frees it (a
 * cancel on another thread may have read the pointer just before it was cleared). */
struct redis_lock_cancel_token {
    atomic_int canceled;
    atomic_bool in_use; /* a call is using the token */
    _Atomic(redis_lock *) lock;
    atomic_int cancelers;
};

int redis_lock_cancel_token_new(redis_lock_cancel_token **out)
{
    rl_error_clear();
    if (!out)
        return rl_error(REDIS_LOCK_EINVAL, "out is NULL");
    *out = rl_calloc(1, sizeof **out);
    if (!*out)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory creating a cancel token");
    return 0;
}

int redis_lock_cancel_token_cancel(redis_lock_cancel_token *t)
{
    if (!t)
        return REDIS_LOCK_EINVAL; /* no last_error: this may run in a signal handler */
    atomic_store(&t->canceled, 1);
    atomic_fetch_add(&t->cancelers, 1);
    redis_lock *l = atomic_load(&t->lock);
    if (l)
        redis_lock_cancel(l); /* async-signal-safe */
    atomic_fetch_sub(&t->cancelers, 1);
    return 0;
}

bool redis_lock_cancel_token_canceled(const redis_lock_cancel_token *t)
{
    return t && atomic_load(&((redis_lock_cancel_token *)t)->canceled);
}

void redis_lock_cancel_token_free(redis_lock_cancel_token *t)
{
    free(t);
}

static bool canceled(redis_lock_cancel_token *t)
{
    return t && atomic_load(&t->canceled);
}

/* Let cancels reach l (NULL: no more). The token's flag is set before a cancel looks at
 * the pointer, so after attaching, a cancel either finds l or has set the flag already. */
static void attach(redis_lock_cancel_token *t, redis_lock *l)
{
    if (!t)
        return;
    atomic_store(&t->lock, l);
    if (!l)
        while (atomic_load(&t->cancelers)) /* a cancel on another thread holds the old one */
            sched_yield();
}


void redis_lock_cache_options_init_version(redis_lock_cache_options *opts, unsigned version)
{
    redis_lock_cache_options d;
    memset(&d, 0, sizeof d);
    d.timeout_ms = -1;
    unsigned v = version < REDIS_LOCK_CACHE_OPTIONS_VERSION ? version
                                                            : REDIS_LOCK_CACHE_OPTIONS_VERSION;
    redis_lock_options_init_version(&d.lock, v ? cache_lock_versions[v] : 0);
    d.lock.expire_ms = 30000;
    d.lock.auto_renewal = true;
    rl_options_init(opts, &d, cache_options_ends, REDIS_LOCK_CACHE_OPTIONS_VERSION, version);
}

void(redis_lock_cache_options_init)(redis_lock_cache_options *opts)
{
    redis_lock_cache_options_init_version(opts, 1);
}

/* GET key: 0 with *hit set (and the value copied out), or an error. */
static int cache_get(redis_lock_client *c, const char *key, bool *hit, char **out, size_t *len)
{
    const char *argv[2] = {"GET", key};
    redisReply *r = NULL;
    int rc = rl_client_command(c, &r, 2, argv, NULL);
    *hit = false;
    if (!rc && r->type == REDIS_REPLY_STRING) {
        *out = rl_memdup(r->str, r->len);
        *len = r->len;
        *hit = true;
        if (!*out)
            rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory copying a cached value");
    } else if (!rc && r->type != REDIS_REPLY_NIL) {
        rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to GET %s", key);
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

static int cache_set(redis_lock_client *c, const char *key, const char *value, size_t len,
                     int64_t ttl_ms)
{
    char px[24];
    rl_fmt_ms(px, sizeof px, ttl_ms);
    const char *argv[5] = {"SET", key, value, "PX", px};
    size_t lens[5] = {3, strlen(key), len, 2, strlen(px)};
    redisReply *r = NULL;
    int rc = rl_client_command(c, &r, 5, argv, lens);
    if (r)
        freeReplyObject(r);
    return rc;
}

static int get_or_set(redis_lock_client *c, const char *key,
                      const redis_lock_cache_options *opts, redis_lock_value_fn make,
                      void *payload, redis_lock_cancel_token *cancel, char **out_value,
                      size_t *out_len);

int redis_lock_cache_get_or_set(redis_lock_client *c, const char *key,
                                const redis_lock_cache_options *opts, redis_lock_value_fn make,
                                void *payload, char **out_value, size_t *out_len)
{
    return redis_lock_cache_get_or_set_cancelable(c, key, opts, make, payload, NULL, out_value,
                                                  out_len);
}

int redis_lock_cache_get_or_set_cancelable(redis_lock_client *c, const char *key,
                                           const redis_lock_cache_options *opts,
                                           redis_lock_value_fn make, void *payload,
                                           redis_lock_cancel_token *cancel, char **out_value,
                                           size_t *out_len)
{
    rl_error_clear();
    if (out_value)
        *out_value = NULL;
    if (out_len)
        *out_len = 0;
    if (!c || !key || !*key || !opts || !make || !out_value || !out_len)
        return rl_error(REDIS_LOCK_EINVAL, "cache_get_or_set: client, a non-empty key, opts, "
                        "make and both outputs are required");
    redis_lock_cache_options o;
    redis_lock_cache_options_init(&o);
    int rc = rl_options_copy(&o, opts, cache_options_ends, REDIS_LOCK_CACHE_OPTIONS_VERSION,
                             "redis_lock_cache_options");
    if (rc)
        return rc;
    opts = &o; /* o.lock is read by redis_lock_new by its own version */
    if (opts->ttl_ms <= 0 || opts->ttl_ms > RL_MAX_MS)
        return rl_error(REDIS_LOCK_EINVAL, "ttl_ms must be > 0 and <= %lld", (long long)RL_MAX_MS);
    if (opts->timeout_ms < -1)
        return rl_error(REDIS_LOCK_EINVAL, "timeout_ms must be -1, 0 or > 0");
    rl_client_check_fork(c);
    if (cancel && atomic_exchange(&cancel->in_use, true))
        return rl_error(REDIS_LOCK_EINVAL, "cache_get_or_set: the cancel token is in use by "
                        "another call");
    rc = get_or_set(c, key, opts, make, payload, cancel, out_value, out_len);
    if (cancel)
        atomic_store(&cancel->in_use, false);
    return rc;
}

/* A value read while a cancel came is not returned: a canceled call returns nothing. */
static int drop_if_canceled(redis_lock_cancel_token *cancel, const char *key, char **out_value,
                            size_t *out_len)
{
    if (!canceled(cancel))
        return 0;
    free(*out_value);
    *out_value = NULL;
    *out_len = 0;
    return rl_error(REDIS_LOCK_ECANCELED, "cache_get_or_set of %s canceled", key);
}

static int get_or_set(redis_lock_client *c, const char *key,
                      const redis_lock_cache_options *opts, redis_lock_value_fn make,
                      void *payload, redis_lock_cancel_token *cancel, char **out_value,
                      size_t *out_len)
{
    if (canceled(cancel))
        return rl_error(REDIS_LOCK_ECANCELED, "cache_get_or_set of %s canceled", key);
    int rc = 0;
    bool hit = false;
    if (!opts->refresh) {
        rc = cache_get(c, key, &hit, out_value, out_len);
        if (!rc && hit)
            rc = drop_if_canceled(cancel, key, out_value, out_len);
        if (rc || hit)
            return rc;
    }
    size_t klen = strlen(key);
    char *lock_name = rl_malloc(klen + 12);
    if (!lock_name)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory in cache_get_or_set");
    memcpy(lock_name, "get_or_set:", 11);
    memcpy(lock_name + 11, key, klen + 1);
    redis_lock *l = NULL;
    rc = redis_lock_new(&l, c, lock_name, &opts->lock);
    free(lock_name);
    if (rc)
        return rc;
    rl_log(c, LOG_DEBUG, "cache miss for %s", key);
    attach(cancel, l);
    rc = canceled(cancel) ? rl_error(REDIS_LOCK_ECANCELED, "cache_get_or_set of %s canceled",
                                     key)
                          : redis_lock_acquire(l, opts->timeout_ms);
    if (rc == REDIS_LOCK_BUSY)
        rc = rl_error(REDIS_LOCK_BUSY, "timed out waiting for another client computing %s", key);
    if (rc) {
        attach(cancel, NULL);
        redis_lock_free(l);
        return rc;
    }
    /* From here on the lock is ours: every way out releases it. A cancel that came as the
     * lock was won is seen here; one during make, after it. */
    if (canceled(cancel))
        rc = rl_error(REDIS_LOCK_ECANCELED, "cache_get_or_set of %s canceled (the lock just "
                      "taken was released)", key);
    /* Whoever held the lock before us may have stored the value meanwhile. */
    if (!rc && !opts->refresh)
        rc = cache_get(c, key, &hit, out_value, out_len);
    if (!rc && hit)
        rc = drop_if_canceled(cancel, key, out_value, out_len);
    if (!rc && !hit) {
        char *value = NULL;
        size_t len = 0;
        int user = make(payload, &value, &len);
        if (canceled(cancel)) {
            free(value);
            rc = rl_error(REDIS_LOCK_ECANCELED, "cache_get_or_set of %s canceled while "
                          "computing; nothing stored", key);
        } else if (user) {
            free(value);
            rc = rl_error(REDIS_LOCK_EUSER, "computing %s failed (make returned %d); nothing "
                          "stored", key, user);
        } else if (!value && len) {
            rc = rl_error(REDIS_LOCK_EUSER, "make returned a NULL value of length %zu", len);
        } else {
            rc = cache_set(c, key, value ? value : "", len, opts->ttl_ms);
            if (!rc) {
                /* hand the caller a NUL-terminated copy in one malloc'd block */
                char *v = value ? rl_realloc(value, len + 1) : rl_malloc(1);
                if (!v) {
                    free(value);
                    rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory returning %s", key);
                } else {
                    v[len] = '\0';
                    *out_value = v;
                    *out_len = len;
                }
            } else {
                free(value);
            }
        }
    }
    char detail[512];
    snprintf(detail, sizeof detail, "%s", redis_lock_last_error());
    int rrc = redis_lock_release(l);
    attach(cancel, NULL);
    redis_lock_free(l);
    if (rrc && rrc != REDIS_LOCK_ENOTHELD)
        rl_log(c, LOG_WARNING, "releasing the lock of %s: %s", key, redis_lock_strerror(rrc));
    return rc ? rl_error(rc, "%s", detail) : 0;
}

int redis_lock_cache_delete(redis_lock_client *c, const char *key)
{
    rl_error_clear();
    if (!c || !key || !*key)
        return rl_error(REDIS_LOCK_EINVAL, "cache_delete needs a client and a non-empty key");
    rl_client_check_fork(c);
    const char *argv[2] = {"DEL", key};
    redisReply *r = NULL;
    int rc = rl_client_command(c, &r, 2, argv, NULL);
    if (r)
        freeReplyObject(r);
    return rc;
}
