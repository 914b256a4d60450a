/* The lock handle: create, free, cancel; release, extend, reset and the queries.
 * Acquiring is in acquire.c. */
#include "internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <syslog.h>
#include <unistd.h>

#define RL_ID_BYTES 18

/* Where each version's fields end (see rl_options_copy). */
static const size_t lock_options_ends[] = {
    [1] = RL_FIELD_END(redis_lock_options, on_lost_payload),
    [2] = RL_FIELD_END(redis_lock_options, shared),
};
_Static_assert(sizeof lock_options_ends / sizeof *lock_options_ends ==
                   REDIS_LOCK_OPTIONS_VERSION + 1,
               "a new REDIS_LOCK_OPTIONS_VERSION needs its entry in lock_options_ends");

void redis_lock_options_init_version(redis_lock_options *opts, unsigned version)
{
    redis_lock_options d;
    memset(&d, 0, sizeof d);
    d.signal_expire_ms = 1000;
    d.queue_lease_ms = 2000;
    rl_options_init(opts, &d, lock_options_ends, REDIS_LOCK_OPTIONS_VERSION, version);
}

void(redis_lock_options_init)(redis_lock_options *opts)
{
    redis_lock_options_init_version(opts, 1);
}

static int validate_options(const redis_lock_options *o)
{
    if (o->expire_ms < 0 || o->expire_ms > RL_MAX_MS)
        return rl_error(REDIS_LOCK_EINVAL, "expire_ms must be >= 0 and <= %lld (got %lld)",
                        (long long)RL_MAX_MS, (long long)o->expire_ms);
    if (o->signal_expire_ms > RL_MAX_MS)
        return rl_error(REDIS_LOCK_EINVAL, "signal_expire_ms must be <= %lld",
                        (long long)RL_MAX_MS);
    if (o->auto_renewal && o->expire_ms == 0)
        return rl_error(REDIS_LOCK_EINVAL, "auto_renewal needs expire_ms > 0");
    if (o->renewal_interval_ms < 0 || (o->expire_ms && o->renewal_interval_ms >= o->expire_ms))
        return rl_error(REDIS_LOCK_EINVAL, "renewal_interval_ms must be >= 0 and < expire_ms");
    if (o->signal_expire_ms <= 0)
        return rl_error(REDIS_LOCK_EINVAL, "signal_expire_ms must be > 0");
    if (o->max_hold_ms < 0)
        return rl_error(REDIS_LOCK_EINVAL, "max_hold_ms must be >= 0");
    if (o->id && !*o->id)
        return rl_error(REDIS_LOCK_EINVAL, "id must not be empty");
    /* lock:NAME holding the marker means "held by shared holders": an owner with that id
     * would be taken for them (and its release would delete their hold) */
    if (o->id && strcmp(o->id, RL_SHARED_MARKER) == 0)
        return rl_error(REDIS_LOCK_EINVAL, "id must not be %s (the shared holders' marker)",
                        RL_SHARED_MARKER);
    if (o->fair && o->shared)
        return rl_error(REDIS_LOCK_EINVAL, "a lock cannot be both fair and shared");
    if (o->queue_lease_ms < 30 || o->queue_lease_ms > RL_MAX_MS)
        return rl_error(REDIS_LOCK_EINVAL, "queue_lease_ms must be >= 30 and <= %lld (got %lld)",
                        (long long)RL_MAX_MS, (long long)o->queue_lease_ms);
    return 0;
}

static char *base64(const unsigned char *in, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = rl_malloc((n + 2) / 3 * 4 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        *o++ = tab[v >> 18 & 63];
        *o++ = tab[v >> 12 & 63];
        *o++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
        *o++ = i + 2 < n ? tab[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int random_id(char **out)
{
    unsigned char raw[RL_ID_BYTES];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return rl_error(REDIS_LOCK_EINVAL, "getrandom failed: %s", strerror(errno));
        got += (size_t)n;
    }
    *out = base64(raw, sizeof raw);
    return *out ? 0 : rl_error(REDIS_LOCK_ENOMEM, "out of memory creating a lock id");
}

static char *prefixed(const char *prefix, const char *name, size_t *len)
{
    size_t p = strlen(prefix), n = strlen(name);
    char *s = rl_malloc(p + n + 1);
    if (s) {
        memcpy(s, prefix, p);
        memcpy(s + p, name, n + 1);
        *len = p + n;
    }
    return s;
}

void redis_lock_free(redis_lock *l)
{
    if (!l)
        return;
    if (l->client) {
        /* in a forked child the parent's renewal thread is not ours to wait for */
        rl_client_check_fork(l->client);
        if (l->fork_gen == rl_fork_gen())
            rl_renewer_remove(l);
    }
    if (l->wake_fd >= 0)
        close(l->wake_fd);
    free(l->name);
    free(l->key);
    free(l->signal_key);
    free(l->fence_key);
    free(l->queue_key);
    free(l->lease_key);
    free(l->wake_key);
    free(l->wake_prefix);
    free(l->shared_key);
    free(l->writers_key);
    free(l->limit_key);
    free(l->id);
    free(l->scratch);
    free(l);
}

int redis_lock_new(redis_lock **out, redis_lock_client *client, const char *name,
                   const redis_lock_options *opts)
{
    return rl_lock_create(out, client, name, opts, 0);
}

int rl_lock_create(redis_lock **out, redis_lock_client *client, const char *name,
                   const redis_lock_options *opts, int limit)
{
    rl_error_clear();
    if (!out)
        return rl_error(REDIS_LOCK_EINVAL, "out is NULL");
    *out = NULL;
    if (!client)
        return rl_error(REDIS_LOCK_EINVAL, "client is NULL");
    if (!name || !*name)
        return rl_error(REDIS_LOCK_EINVAL, "lock name must not be NULL or empty");
    redis_lock_options o;
    redis_lock_options_init(&o);
    int rc = opts ? rl_options_copy(&o, opts, lock_options_ends, REDIS_LOCK_OPTIONS_VERSION,
                                    "redis_lock_options") : 0;
    if (rc)
        return rc;
    opts = &o;
    rc = validate_options(opts);
    if (rc)
        return rc;
    redis_lock *l = rl_calloc(1, sizeof *l);
    if (!l)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory creating a lock");
    l->wake_fd = -1;
    l->opts = *opts;
    l->opts.id = NULL;
    l->name = rl_strdup(name);
    l->limit = limit;
    l->key = prefixed(limit ? "semaphore:" : "lock:", name, &l->key_len);
    l->signal_key = prefixed(limit ? "semaphore-signal:" : "lock-signal:", name, &l->signal_len);
    l->fence_key = prefixed(limit ? "semaphore-fence:" : "lock-fence:", name, &l->fence_len);
    if (limit)
        l->limit_key = prefixed("semaphore-limit:", name, &l->limit_len);
    l->writers_key = prefixed("lock-writers:", name, &l->writers_len);
    if (opts->shared)
        l->shared_key = prefixed("lock-shared:", name, &l->shared_len);
    if (!l->name || !l->key || !l->signal_key || !l->fence_key || !l->writers_key ||
        (opts->shared && !l->shared_key) || (limit && !l->limit_key)) {
        rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory creating a lock");
        goto fail;
    }
    if (opts->id) {
        l->id = rl_strdup(opts->id);
        if (!l->id) {
            rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory creating a lock");
            goto fail;
        }
    } else if ((rc = random_id(&l->id))) {
        goto fail;
    }
    if (opts->fair && (rc = rl_fair_keys(l)))
        goto fail;
    /* An EVALSHA with the keys, the id and numbers (and the protocol's framing) fits the
     * inline buffer for usual names; longer ones get room of their own, with space for an
     * EVAL of the script's source after a SCRIPT FLUSH. */
    size_t need = l->key_len + l->signal_len + l->fence_len + l->writers_len + l->shared_len +
                  l->limit_len + strlen(l->id) + 256;
    if (opts->fair)
        need += l->queue_len + l->lease_len + l->wake_len * 2;
    if (need > sizeof((rl_buf *)0)->small) {
        l->scratch_cap = need + 2048;
        if (!(l->scratch = rl_malloc(l->scratch_cap))) {
            rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory creating a lock");
            goto fail;
        }
    }
    l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (l->wake_fd < 0) {
        rc = rl_error(errno == ENOMEM ? REDIS_LOCK_ENOMEM : REDIS_LOCK_EINVAL,
                      "eventfd failed: %s", strerror(errno));
        goto fail;
    }
    l->client = client;
    l->fork_gen = rl_fork_gen();
    *out = l;
    return 0;
fail:
    redis_lock_free(l);
    return rc;
}

const char *redis_lock_id(const redis_lock *l)
{
    return l ? l->id : NULL;
}

const char *redis_lock_name(const redis_lock *l)
{
    return l ? l->name : NULL;
}

int64_t redis_lock_fencing_token(const redis_lock *l)
{
    return l ? l->token : 0;
}

int redis_lock_cancel(redis_lock *l)
{
    if (!l)
        return REDIS_LOCK_EINVAL; /* no last_error: this may run in a signal handler */
    atomic_store(&l->cancel, 1);
    /* In a forked child that has not used the handle yet, the eventfd is still the
     * parent's: the flag alone cancels the child's next acquire. */
    if (l->fork_gen == rl_fork_gen()) {
        uint64_t one = 1;
        ssize_t n = write(l->wake_fd, &one, sizeof one);
        (void)n; /* EAGAIN: the counter is already non-zero, the waiter wakes anyway */
    }
    return 0;
}

bool rl_lock_take_cancel(redis_lock *l)
{
    if (!atomic_exchange(&l->cancel, 0))
        return false;
    uint64_t v;
    ssize_t n = read(l->wake_fd, &v, sizeof v);
    (void)n;
    return true;
}

/* Common preamble: clear the error, handle fork. */
int rl_lock_enter(redis_lock *l)
{
    rl_error_clear();
    if (!l)
        return rl_error(REDIS_LOCK_EINVAL, "lock is NULL");
    rl_client_check_fork(l->client);
    unsigned long gen = rl_fork_gen();
    if (l->fork_gen != gen) {
        /* The eventfd is shared with the parent: a cancel here must not wake it. */
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0)
            return rl_error(REDIS_LOCK_ENOMEM, "eventfd failed: %s", strerror(errno));
        close(l->wake_fd);
        l->wake_fd = fd;
        l->renew_registered = false;
        l->renew_busy = false;
        l->fork_gen = gen;
    }
    return 0;
}

/* acked: NULL, or the replicas that acknowledged (see rl_script_acked). */
static int run_script_acked(redis_lock *l, int script, long long *out, const rl_script_call *k,
                            long long *acked)
{
    rl_conn *conn;
    int rc = rl_client_get(l->client, &conn);
    if (rc)
        return rc;
    redisReply *r = NULL;
    rc = rl_script_acked(l->client, conn, script, k, &r, l->scratch, l->scratch_cap, acked);
    rl_client_put(l->client, conn, rl_conn_reusable(rc));
    if (!rc && r->type != REDIS_REPLY_INTEGER)
        rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to a lock script");
    if (!rc)
        *out = r->integer;
    if (r)
        freeReplyObject(r);
    return rc;
}

static int run_script(redis_lock *l, int script, long long *out, const rl_script_call *k)
{
    return run_script_acked(l, script, out, k, NULL);
}

/* The release or reset script's call: KEYS lock, signal; ARGV [id,] signal expiry. */
static void signal_call_init(const redis_lock *l, rl_script_call *k, bool with_id)
{
    k->nkeys = 2;
    k->keys[0] = l->key;
    k->keys[1] = l->signal_key;
    k->keylens[0] = l->key_len;
    k->keylens[1] = l->signal_len;
    k->nargs = 0;
    if (with_id)
        k->args[k->nargs++] = l->id;
    rl_fmt_ms(k->num, sizeof k->num, l->opts.signal_expire_ms);
    k->args[k->nargs++] = k->num;
}

int rl_lock_release_now(redis_lock *l)
{
    if (l->opts.fair)
        return rl_fair_leave(l, RL_FAIR_RELEASE);
    if (l->opts.shared)
        return rl_shared_release(l);
    if (l->limit)
        return rl_sem_release(l);
    rl_script_call k;
    signal_call_init(l, &k, true);
    long long v = 0;
    int rc = run_script(l, RL_SCRIPT_RELEASE, &v, &k);
    if (rc)
        return rc;
    if (v == 1)
        return rl_error(REDIS_LOCK_ENOTHELD, "%s is not held by %s (expired, reset or never "
                        "acquired)", l->name, l->id);
    return 0;
}

int redis_lock_release(redis_lock *l)
{
    int rc = rl_lock_enter(l);
    if (rc)
        return rc;
    rl_log(l->client, LOG_DEBUG, "releasing %s", l->name);
    rl_renewer_remove(l);
    if (atomic_load(&l->lost))
        return rl_error(REDIS_LOCK_ENOTHELD, "%s was lost (renewal found it gone)", l->name);
    rc = rl_lock_release_now(l);
    if (!rc)
        rl_log(l->client, LOG_INFO, "released %s", l->name);
    return rc;
}

int redis_lock_extend(redis_lock *l, int64_t expire_ms)
{
    int rc = rl_lock_enter(l);
    if (rc)
        return rc;
    if (expire_ms < 0 || expire_ms > RL_MAX_MS)
        return rl_error(REDIS_LOCK_EINVAL, "expire_ms must be >= 0 and <= %lld",
                        (long long)RL_MAX_MS);
    if (expire_ms == 0)
        expire_ms = l->opts.expire_ms;
    if (expire_ms == 0)
        return rl_error(REDIS_LOCK_EINVAL, "extend needs an expiry: the lock was created "
                        "without expire_ms");
    if (atomic_load(&l->lost))
        return rl_error(REDIS_LOCK_ENOTHELD, "%s was lost (renewal found it gone)", l->name);
    rl_script_call k = {.nkeys = 1, .keys = {l->key}, .keylens = {l->key_len}, .nargs = 2};
    rl_fmt_ms(k.num, sizeof k.num, expire_ms);
    k.args[0] = l->id;
    k.args[1] = k.num;
    int script = RL_SCRIPT_EXTEND;
    if (l->opts.shared) {
        rl_shared_extend_call(l, &k, expire_ms);
        script = RL_SCRIPT_SHARED_EXTEND;
    } else if (l->limit) {
        rl_sem_extend_call(l, &k, expire_ms);
        script = RL_SCRIPT_SEM_EXTEND;
    }
    long long v = 0;
    long long acked;
    rc = run_script_acked(l, script, &v, &k, &acked);
    if (rc)
        return rc;
    if (v == 1)
        return rl_error(REDIS_LOCK_ENOTHELD, "%s is not held by %s", l->name, l->id);
    if (v == 2)
        return rl_error(REDIS_LOCK_ENOEXPIRE, "%s has no expiry to extend", l->name);
    if (acked < l->client->url.min_replicas)
        return rl_replica_error(l->client, acked, "extend");
    return 0;
}

int redis_lock_reset(redis_lock *l)
{
    int rc = rl_lock_enter(l);
    if (rc)
        return rc;
    rl_script_call k;
    signal_call_init(l, &k, false);
    long long v;
    rl_log(l->client, LOG_INFO, "resetting %s", l->name);
    return run_script(l, RL_SCRIPT_RESET, &v, &k);
}

static int query(redis_lock *l, const char *verb, redisReply **out)
{
    int rc = rl_lock_enter(l);
    if (rc)
        return rc;
    const char *argv[2] = {verb, l->key};
    size_t lens[2] = {strlen(verb), l->key_len};
    return rl_client_command(l->client, out, 2, argv, lens);
}

int redis_lock_locked(redis_lock *l, bool *out)
{
    if (!out)
        return rl_error(REDIS_LOCK_EINVAL, "out is NULL");
    redisReply *r = NULL;
    int rc = query(l, "EXISTS", &r);
    if (!rc && r->type != REDIS_REPLY_INTEGER)
        rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to EXISTS");
    if (!rc)
        *out = r->integer > 0;
    if (r)
        freeReplyObject(r);
    return rc;
}

int redis_lock_get_owner_id(redis_lock *l, char **out)
{
    if (!out)
        return rl_error(REDIS_LOCK_EINVAL, "out is NULL");
    *out = NULL;
    if (l && l->limit)
        return rl_error(REDIS_LOCK_EINVAL, "%s is a semaphore: it has a holder per permit "
                        "(redis_lock_holders lists them)", l->name);
    redisReply *r = NULL;
    int rc = query(l, "GET", &r);
    if (!rc && r->type == REDIS_REPLY_STRING) {
        *out = rl_memdup(r->str, r->len);
        if (!*out)
            rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory copying the owner id");
    } else if (!rc && r->type != REDIS_REPLY_NIL) {
        rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to GET");
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

int redis_lock_ttl(redis_lock *l, int64_t *out_ms)
{
    if (!out_ms)
        return rl_error(REDIS_LOCK_EINVAL, "out_ms is NULL");
    redisReply *r = NULL;
    int rc = query(l, "PTTL", &r);
    if (!rc && r->type != REDIS_REPLY_INTEGER)
        rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to PTTL");
    if (!rc)
        *out_ms = r->integer;
    if (r)
        freeReplyObject(r);
    return rc;
}

int redis_lock_with(redis_lock *l, int64_t timeout_ms, int (*fn)(void *payload), void *payload)
{
    if (!fn)
        return rl_error(REDIS_LOCK_EINVAL, "fn is NULL");
    int rc = redis_lock_acquire(l, timeout_ms);
    if (rc)
        return rc;
    int user = fn(payload);
    rc = redis_lock_release(l);
    if (user)
        return rl_error(REDIS_LOCK_EUSER, "the function run under %s returned %d%s%s", l->name,
                        user, rc ? "; release: " : "", rc ? redis_lock_strerror(rc) : "");
    return rc;
}
