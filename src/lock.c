/* The lock: acquire (one round trip per try, BLPOP waits capped by the deadline and the
 * holder's TTL, timed by our own clock), release, extend, reset, queries. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <syslog.h>
#include <unistd.h>

#define RL_ID_BYTES 18

void redis_lock_options_init(redis_lock_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->version = REDIS_LOCK_OPTIONS_VERSION;
    opts->signal_expire_ms = 1000;
}

static int validate_options(const redis_lock_options *o)
{
    if (o->version != REDIS_LOCK_OPTIONS_VERSION)
        return rl_error(REDIS_LOCK_EINVAL, "lock options version %u, expected %u (call "
                        "redis_lock_options_init)", o->version, REDIS_LOCK_OPTIONS_VERSION);
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
    free(l->id);
    free(l->scratch);
    free(l);
}

int redis_lock_new(redis_lock **out, redis_lock_client *client, const char *name,
                   const redis_lock_options *opts)
{
    rl_error_clear();
    if (!out)
        return rl_error(REDIS_LOCK_EINVAL, "out is NULL");
    *out = NULL;
    if (!client)
        return rl_error(REDIS_LOCK_EINVAL, "client is NULL");
    if (!name || !*name)
        return rl_error(REDIS_LOCK_EINVAL, "lock name must not be NULL or empty");
    redis_lock_options defaults;
    if (!opts) {
        redis_lock_options_init(&defaults);
        opts = &defaults;
    }
    int rc = validate_options(opts);
    if (rc)
        return rc;
    redis_lock *l = rl_calloc(1, sizeof *l);
    if (!l)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory creating a lock");
    l->wake_fd = -1;
    l->opts = *opts;
    l->opts.id = NULL;
    l->name = rl_strdup(name);
    l->key = prefixed("lock:", name, &l->key_len);
    l->signal_key = prefixed("lock-signal:", name, &l->signal_len);
    l->fence_key = prefixed("lock-fence:", name, &l->fence_len);
    if (!l->name || !l->key || !l->signal_key || !l->fence_key) {
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
    /* An EVALSHA with the keys, the id and numbers (and the protocol's framing) fits the
     * inline buffer for usual names; longer ones get room of their own, with space for an
     * EVAL of the script's source after a SCRIPT FLUSH. */
    size_t need = l->key_len + l->signal_len + l->fence_len + strlen(l->id) + 256;
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

static bool take_cancel(redis_lock *l)
{
    if (!atomic_exchange(&l->cancel, 0))
        return false;
    uint64_t v;
    ssize_t n = read(l->wake_fd, &v, sizeof v);
    (void)n;
    return true;
}

/* Common preamble: clear the error, handle fork. */
static int enter(redis_lock *l)
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

/* ---- acquire ---- */

int rl_parse_acquire_reply(const redisReply *r, const char *id, try_result *out)
{
    memset(out, 0, sizeof *out);
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !r->element[0] ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        goto bad;
    if (r->element[0]->integer == 1) {
        if (r->elements != 2 || r->element[1]->type != REDIS_REPLY_INTEGER)
            goto bad;
        out->acquired = true;
        out->token = r->element[1]->integer;
        return 0;
    }
    if (r->element[0]->integer != 0 || r->elements != 3 ||
        r->element[2]->type != REDIS_REPLY_INTEGER)
        goto bad;
    const redisReply *owner = r->element[1];
    if (owner->type == REDIS_REPLY_STRING)
        out->mine = owner->len == strlen(id) && memcmp(owner->str, id, owner->len) == 0;
    else if (owner->type != REDIS_REPLY_NIL)
        goto bad;
    out->pttl = r->element[2]->integer;
    if (out->pttl < -2)
        goto bad;
    return 0;
bad:
    return rl_error(REDIS_LOCK_ESERVER, "unexpected reply to the acquire script");
}

/* The acquire script's keys and arguments for this handle. */
typedef struct {
    char px[24];
    const char *keys[2];
    size_t keylens[2];
    const char *args[3];
} try_call;

static void try_call_init(const redis_lock *l, try_call *t)
{
    rl_fmt_ms(t->px, sizeof t->px, l->opts.expire_ms);
    t->keys[0] = l->key;
    t->keys[1] = l->fence_key;
    t->keylens[0] = l->key_len;
    t->keylens[1] = l->fence_len;
    t->args[0] = l->id;
    t->args[1] = t->px;
    t->args[2] = l->opts.fencing ? "1" : "0";
}

static int try_acquire(redis_lock *l, rl_conn *conn, try_result *res)
{
    try_call t;
    try_call_init(l, &t);
    redisReply *r = NULL;
    int rc = rl_script_in(l->client, conn, RL_SCRIPT_ACQUIRE, &r, 2, t.keys, t.keylens, 3,
                          t.args, NULL, l->scratch, l->scratch_cap);
    if (!rc)
        rc = rl_parse_acquire_reply(r, l->id, res);
    if (r)
        freeReplyObject(r);
    return rc;
}

enum { WAIT_WOKEN, WAIT_TIMEOUT, WAIT_CANCELED };

/* End our own BLPOP early: CLIENT UNBLOCK from another connection, then read the
 * BLPOP's reply (nil, or the element if a signal raced us). If that cannot be done,
 * the connection is dropped. Returns 0 with *popped set, or an error (conn closed). */
static int unblock(redis_lock *l, rl_conn **connp, bool *popped)
{
    redis_lock_client *c = l->client;
    rl_conn *conn = *connp, *other = NULL;
    redisReply *r = NULL;
    char id[24];
    snprintf(id, sizeof id, "%lld", conn->client_id);
    const char *argv[4] = {"CLIENT", "UNBLOCK", id, "TIMEOUT"};
    int rc = conn->client_id > 0 ? rl_client_get(c, &other)
                                 : rl_error(REDIS_LOCK_ESERVER, "no CLIENT ID (ACL)");
    if (!rc) {
        rc = rl_conn_command(c, other, &r, 4, argv, NULL);
        rl_client_put(c, other, rl_conn_reusable(rc));
        if (r)
            freeReplyObject(r);
        r = NULL;
    }
    if (!rc)
        rc = rl_conn_read(c, conn, &r, rl_now_ms() + c->opts.command_timeout_ms, -1);
    if (rc) {
        rl_log(c, LOG_DEBUG, "cannot unblock the wait (%s); dropping its connection",
               redis_lock_last_error());
        rl_conn_close(conn);
        *connp = NULL;
        *popped = false;
        return 0;
    }
    *popped = r->type == REDIS_REPLY_ARRAY;
    freeReplyObject(r);
    return 0;
}

/* Append one acquire try (the acquire script) to a pipeline. */
static int append_try(redis_lock *l, rl_buf *b)
{
    try_call t;
    try_call_init(l, &t);
    return rl_script_append(b, RL_SCRIPT_ACQUIRE, 2, t.keys, t.keylens, 3, t.args, NULL);
}

/* The outcome of a wait. */
typedef struct {
    bool popped;     /* a release signal was consumed */
    bool have_try;   /* the try queued behind the BLPOP ran: res holds its result */
    bool maybe_tried;/* the connection was lost: that try may or may not have run */
    int64_t tried_ms;/* when its answer came (about when it ran) */
    try_result res;
} wait_outcome;

/* BLPOP on the signal list until woken, until `until` (RL_INFINITE: no limit), or a
 * cancel. The next try is queued on the same connection behind the BLPOP, so that Redis
 * runs it the moment the BLPOP returns, in the same event-loop turn as the release that
 * woke us: the hand-off costs no round trip of ours. On error the connection is closed. */
static int wait_signal(redis_lock *l, rl_conn **connp, int64_t until, wait_outcome *w)
{
    redis_lock_client *c = l->client;
    rl_conn *conn = *connp;
    memset(w, 0, sizeof *w);
    char secs[24] = "0";
    if (until != RL_INFINITE) /* the server's timer is only a backstop for ours */
        rl_fmt_ms(secs, sizeof secs, (until - rl_now_ms()) / 1000 + 2);
    const char *argv[3] = {"BLPOP", l->signal_key, secs};
    size_t lens[3] = {5, l->signal_len, strlen(secs)};
    rl_buf b = {0};
    rl_buf_borrow(&b, l->scratch, l->scratch_cap);
    int rc = rl_buf_add(&b, 3, argv, lens);
    if (!rc)
        rc = append_try(l, &b);
    if (!rc) {
        w->maybe_tried = true;
        rc = rl_conn_send(c, conn, b.data, b.len);
    }
    rl_buf_free(&b);
    redisReply *r = NULL;
    while (!rc) {
        rc = rl_conn_read(c, conn, &r, until, l->wake_fd);
        if (rc != 1 || atomic_load(&l->cancel))
            break;
        /* woken without a cancel (a stray write to the eventfd): drain it, wait on */
        uint64_t v;
        ssize_t n = read(l->wake_fd, &v, sizeof v);
        (void)n;
        rc = 0;
    }
    int outcome = WAIT_WOKEN, blpop_err = 0;
    if (rc == 0) {
        blpop_err = rl_reply_error(r, "BLPOP on the signal list failed");
        w->popped = r->type == REDIS_REPLY_ARRAY;
        freeReplyObject(r);
        r = NULL;
    } else if (rc > 0) {
        /* Our timer ran out (2) or a cancel came (1): end the BLPOP ourselves. */
        outcome = rc == 1 ? WAIT_CANCELED : WAIT_TIMEOUT;
        rc = unblock(l, connp, &w->popped);
        conn = *connp;
        if (!rc && !conn)
            return outcome; /* dropped: w->maybe_tried stays set */
    }
    if (rc < 0) {
        if (*connp)
            rl_conn_close(*connp);
        *connp = NULL;
        return rc;
    }
    /* the queued try's answer */
    rc = rl_conn_read(c, conn, &r, rl_now_ms() + c->opts.command_timeout_ms, -1);
    if (rc) {
        rl_conn_close(conn);
        *connp = NULL;
        return rc;
    }
    w->maybe_tried = false;
    w->tried_ms = rl_now_ms();
    if (rl_is_noscript(r)) {
        /* script cache flushed: no try ran; the next one is sent with EVAL fallback */
    } else if ((rc = rl_reply_error(r, "lock script failed")) == 0) {
        rc = rl_parse_acquire_reply(r, l->id, &w->res);
        w->have_try = rc == 0;
    }
    freeReplyObject(r);
    if (w->have_try && w->res.acquired)
        return outcome; /* we hold the lock, whatever else went wrong */
    if (blpop_err)
        return blpop_err;
    return rc ? rc : outcome;
}

/* A consumed signal that we will not act on goes back for the next waiter. */
static void pass_signal_on(redis_lock *l, rl_conn **connp)
{
    redis_lock_client *c = l->client;
    char ms[24];
    rl_fmt_ms(ms, sizeof ms, l->opts.signal_expire_ms);
    rl_buf b = {0};
    const char *push[3] = {"LPUSH", l->signal_key, "1"};
    const char *exp[3] = {"PEXPIRE", l->signal_key, ms};
    size_t plens[3] = {5, l->signal_len, 1}, elens[3] = {7, l->signal_len, strlen(ms)};
    redisReply *r[2] = {NULL, NULL};
    int rc = 0;
    if (!*connp)
        rc = rl_client_get(c, connp);
    if (!rc)
        rc = rl_buf_add(&b, 3, push, plens);
    if (!rc)
        rc = rl_buf_add(&b, 3, exp, elens);
    if (!rc)
        rc = rl_conn_pipeline(c, *connp, &b, r);
    rl_buf_free(&b);
    for (int i = 0; i < 2; i++)
        if (r[i])
            freeReplyObject(r[i]);
    if (rc && *connp) {
        rl_conn_close(*connp);
        *connp = NULL;
    }
}

static int release_now(redis_lock *l);

/* Sleep before reconnecting, interruptible by a cancel. */
static void backoff_sleep(redis_lock *l, int64_t *backoff_ms, int64_t deadline)
{
    int64_t until = rl_now_ms() + *backoff_ms;
    if (until > deadline)
        until = deadline;
    int64_t left = until - rl_now_ms();
    if (left > 0) {
        struct pollfd p = {l->wake_fd, POLLIN, 0};
        poll(&p, 1, (int)left);
    }
    *backoff_ms = *backoff_ms * 2 > 1000 ? 1000 : *backoff_ms * 2;
}

static int read_fence(redis_lock *l, rl_conn *conn, int64_t *token)
{
    const char *argv[2] = {"GET", l->fence_key};
    size_t lens[2] = {3, l->fence_len};
    redisReply *r = NULL;
    int rc = rl_conn_command(l->client, conn, &r, 2, argv, lens);
    if (!rc && r->type == REDIS_REPLY_STRING)
        *token = strtoll(r->str, NULL, 10);
    if (r)
        freeReplyObject(r);
    return rc;
}

int redis_lock_acquire(redis_lock *l, int64_t timeout_ms)
{
    int rc = enter(l);
    if (rc)
        return rc;
    redis_lock_client *c = l->client;
    if (timeout_ms < -1)
        return rl_error(REDIS_LOCK_EINVAL, "timeout_ms must be -1, 0 or > 0 (got %lld)",
                        (long long)timeout_ms);
    if (timeout_ms > 0 && l->opts.expire_ms > 0 && !l->opts.auto_renewal &&
        timeout_ms > l->opts.expire_ms)
        return rl_error(REDIS_LOCK_ETOOLONG,
                        "timeout %lld ms is longer than the lock's expiry %lld ms without "
                        "auto_renewal", (long long)timeout_ms, (long long)l->opts.expire_ms);
    if (take_cancel(l))
        return rl_error(REDIS_LOCK_ECANCELED, "acquire of %s canceled", l->name);

    int64_t now = rl_now_ms();
    /* rounded up, so that the wait never ends before timeout_ms has fully passed */
    int64_t deadline = timeout_ms < 0 || timeout_ms > RL_MAX_MS
                           ? RL_INFINITE
                           : (rl_now_us() + 999) / 1000 + timeout_ms;
    int64_t backoff = 10;
    int conn_failures = 0;
    bool uncertain = false; /* a try was sent but its answer lost */
    bool have_res = false;  /* res already holds a try's answer (queued behind a wait) */
    rl_conn *conn = NULL;
    try_result res;
    int64_t sent = now;
    rl_log(c, LOG_DEBUG, "acquiring %s as %s", l->name, l->id);

    for (;;) {
        if (!conn) {
            rc = rl_client_get(c, &conn);
            if (rc == REDIS_LOCK_ECONN && (timeout_ms != 0 || conn_failures++ == 0) &&
                rl_now_ms() < deadline) {
                rl_log(c, LOG_WARNING, "%s; retrying", redis_lock_last_error());
                backoff_sleep(l, &backoff, deadline);
                if (take_cancel(l)) {
                    if (uncertain)
                        release_now(l); /* an unanswered try may have taken it */
                    return rl_error(REDIS_LOCK_ECANCELED, "acquire of %s canceled", l->name);
                }
                continue;
            }
            if (rc)
                return rc;
        }
        if (!have_res) {
            if (!uncertain)
                sent = rl_now_ms(); /* an unanswered try may have set the key: keep its time */
            rc = try_acquire(l, conn, &res);
            if (rc == REDIS_LOCK_ECONN) {
                rl_conn_close(conn);
                conn = NULL;
                uncertain = true;
                if (timeout_ms == 0 && conn_failures++ > 0)
                    return rc;
                continue;
            }
            if (rc) {
                rl_client_put(c, conn, rl_conn_reusable(rc));
                return rc;
            }
        }
        have_res = false;
        if (res.mine && uncertain) {
            /* Our earlier try did set the key before its connection broke. */
            res.acquired = true;
            if (l->opts.fencing && (rc = read_fence(l, conn, &res.token))) {
                rl_client_put(c, conn, rl_conn_reusable(rc));
                return rc;
            }
        }
        uncertain = false;
        if (res.acquired)
            break;
        if (res.mine) {
            rl_client_put(c, conn, true);
            return rl_error(REDIS_LOCK_EALREADY, "%s is already held by this id (%s)", l->name,
                            l->id);
        }
        if (take_cancel(l)) {
            rl_client_put(c, conn, true);
            return rl_error(REDIS_LOCK_ECANCELED, "acquire of %s canceled", l->name);
        }
        now = rl_now_ms();
        if (timeout_ms == 0 || now >= deadline) {
            rl_client_put(c, conn, true);
            return rl_error(REDIS_LOCK_BUSY, "%s is held by another owner", l->name);
        }
        if (res.pttl == -2)
            continue; /* freed between the SET and the GET: try again now */
        int64_t until = deadline;
        if (res.pttl >= 0 && now + res.pttl + 1 < until)
            until = now + res.pttl + 1; /* Redis deletes the key 1 ms after PTTL reaches 0 */
        rl_log(c, LOG_DEBUG, "waiting for %s (holder's ttl %lld ms)", l->name,
               (long long)res.pttl);
        if (until != RL_INFINITE)
            rl_client_ensure_spare(c);
        wait_outcome w;
        sent = rl_now_ms(); /* the queued try runs after this: a safe lower bound */
        rc = wait_signal(l, &conn, until, &w);
        if (w.maybe_tried)
            uncertain = true;
        if (w.have_try) {
            res = w.res;
            have_res = true;
            /* it ran the moment the BLPOP returned, about when its answer came */
            sent = w.tried_ms;
        }
        if (rc == REDIS_LOCK_ECONN) {
            rl_log(c, LOG_WARNING, "%s; reconnecting", redis_lock_last_error());
            backoff_sleep(l, &backoff, deadline);
            continue;
        }
        if (rc < 0) {
            rl_client_put(c, conn, true);
            return rc;
        }
        if (atomic_load(&l->cancel) && !(have_res && res.acquired)) {
            /* (a lock the queued try won is released after the loop, like any other) */
            take_cancel(l);
            if (uncertain)
                release_now(l); /* the queued try may have taken it: give it back */
            else if (w.popped && !have_res)
                pass_signal_on(l, &conn);
            rl_client_put(c, conn, true);
            return rl_error(REDIS_LOCK_ECANCELED, "acquire of %s canceled", l->name);
        }
        backoff = 10;
        /* woken or timed out: the queued try's answer (or a new try) is judged at the top,
         * and the deadline after it, so a signal that raced our timer is still used */
    }

    rl_client_put(c, conn, true);
    l->token = res.token;
    l->acquired_at_ms = sent;
    l->renewed_ms = sent;
    atomic_store(&l->lost, false);
    if (take_cancel(l)) {
        release_now(l);
        return rl_error(REDIS_LOCK_ECANCELED, "acquire of %s canceled (the lock won at that "
                        "moment was released)", l->name);
    }
    if (l->opts.auto_renewal && (rc = rl_renewer_add(l))) {
        int keep = rc;
        char msg[512];
        snprintf(msg, sizeof msg, "%s", redis_lock_last_error());
        release_now(l);
        return rl_error(keep, "%s", msg);
    }
    if (l->opts.fencing)
        rl_log(c, LOG_INFO, "acquired %s (fencing token %lld)", l->name, (long long)l->token);
    else
        rl_log(c, LOG_INFO, "acquired %s", l->name);
    return 0;
}

/* ---- the rest ---- */

static int run_script(redis_lock *l, int script, long long *out, int nkeys, const char **keys,
                      const size_t *keylens, int nargs, const char **args)
{
    rl_conn *conn;
    int rc = rl_client_get(l->client, &conn);
    if (rc)
        return rc;
    redisReply *r = NULL;
    rc = rl_script_in(l->client, conn, script, &r, nkeys, keys, keylens, nargs, args, NULL,
                      l->scratch, l->scratch_cap);
    rl_client_put(l->client, conn, rl_conn_reusable(rc));
    if (!rc && r->type != REDIS_REPLY_INTEGER)
        rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to a lock script");
    if (!rc)
        *out = r->integer;
    if (r)
        freeReplyObject(r);
    return rc;
}

static int release_now(redis_lock *l)
{
    char ms[24];
    rl_fmt_ms(ms, sizeof ms, l->opts.signal_expire_ms);
    const char *keys[2] = {l->key, l->signal_key};
    size_t keylens[2] = {l->key_len, l->signal_len};
    const char *args[2] = {l->id, ms};
    long long v = 0;
    int rc = run_script(l, RL_SCRIPT_RELEASE, &v, 2, keys, keylens, 2, args);
    if (rc)
        return rc;
    if (v == 1)
        return rl_error(REDIS_LOCK_ENOTHELD, "%s is not held by %s (expired, reset or never "
                        "acquired)", l->name, l->id);
    return 0;
}

int redis_lock_release(redis_lock *l)
{
    int rc = enter(l);
    if (rc)
        return rc;
    rl_log(l->client, LOG_DEBUG, "releasing %s", l->name);
    rl_renewer_remove(l);
    if (atomic_load(&l->lost))
        return rl_error(REDIS_LOCK_ENOTHELD, "%s was lost (renewal found it gone)", l->name);
    rc = release_now(l);
    if (!rc)
        rl_log(l->client, LOG_INFO, "released %s", l->name);
    return rc;
}

int redis_lock_extend(redis_lock *l, int64_t expire_ms)
{
    int rc = enter(l);
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
    char ms[24];
    rl_fmt_ms(ms, sizeof ms, expire_ms);
    const char *keys[1] = {l->key};
    size_t keylens[1] = {l->key_len};
    const char *args[2] = {l->id, ms};
    long long v = 0;
    rc = run_script(l, RL_SCRIPT_EXTEND, &v, 1, keys, keylens, 2, args);
    if (rc)
        return rc;
    if (v == 1)
        return rl_error(REDIS_LOCK_ENOTHELD, "%s is not held by %s", l->name, l->id);
    if (v == 2)
        return rl_error(REDIS_LOCK_ENOEXPIRE, "%s has no expiry to extend", l->name);
    return 0;
}

int redis_lock_reset(redis_lock *l)
{
    int rc = enter(l);
    if (rc)
        return rc;
    char ms[24];
    rl_fmt_ms(ms, sizeof ms, l->opts.signal_expire_ms);
    const char *keys[2] = {l->key, l->signal_key};
    size_t keylens[2] = {l->key_len, l->signal_len};
    const char *args[1] = {ms};
    long long v;
    rl_log(l->client, LOG_INFO, "resetting %s", l->name);
    return run_script(l, RL_SCRIPT_RESET, &v, 2, keys, keylens, 1, args);
}

static int query(redis_lock *l, const char *verb, redisReply **out)
{
    int rc = enter(l);
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

/* reset_all: SCAN lock:* in batches, reset each key with the reset script (pipelined). */
int redis_lock_reset_all(redis_lock_client *c, size_t *out_count)
{
    rl_error_clear();
    if (!c)
        return rl_error(REDIS_LOCK_EINVAL, "client is NULL");
    rl_client_check_fork(c);
    rl_conn *conn;
    int rc = rl_client_get(c, &conn);
    if (rc)
        return rc;
    char cursor[32] = "0";
    size_t count = 0;
    bool loaded = false;
    do {
        const char *argv[6] = {"SCAN", cursor, "MATCH", "lock:*", "COUNT", "1000"};
        redisReply *r = NULL;
        rc = rl_conn_command(c, conn, &r, 6, argv, NULL);
        if (!rc && (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                    r->element[0]->type != REDIS_REPLY_STRING ||
                    r->element[1]->type != REDIS_REPLY_ARRAY))
            rc = rl_error(REDIS_LOCK_ESERVER, "unexpected reply to SCAN");
        if (rc) {
            if (r)
                freeReplyObject(r);
            break;
        }
        snprintf(cursor, sizeof cursor, "%.*s", (int)r->element[0]->len, r->element[0]->str);
        redisReply *keys = r->element[1];
        if (keys->elements && !loaded) {
            /* make sure EVALSHA will find the script (after SCRIPT FLUSH or a restart) */
            const char *load[3] = {"SCRIPT", "LOAD", rl_script_source(RL_SCRIPT_RESET)};
            redisReply *lr = NULL;
            rc = rl_conn_command(c, conn, &lr, 3, load, NULL);
            if (lr)
                freeReplyObject(lr);
            loaded = rc == 0;
        }
        rl_buf b = {0};
        char **signals = keys->elements ? rl_calloc(keys->elements, sizeof *signals) : NULL;
        if (keys->elements && !signals)
            rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory in reset_all");
        size_t n = 0;
        for (size_t i = 0; !rc && i < keys->elements; i++) {
            redisReply *k = keys->element[i];
            if (k->type != REDIS_REPLY_STRING || k->len < 5)
                continue;
            size_t slen = k->len - 5 + 12;
            signals[n] = rl_malloc(slen + 1);
            if (!signals[n]) {
                rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory in reset_all");
                break;
            }
            memcpy(signals[n], "lock-signal:", 12);
            memcpy(signals[n] + 12, k->str + 5, k->len - 5);
            const char *kk[2] = {k->str, signals[n]};
            size_t kl[2] = {k->len, slen};
            const char *args[1] = {"1000"};
            n++;
            rc = rl_script_append(&b, RL_SCRIPT_RESET, 2, kk, kl, 1, args, NULL);
        }
        if (!rc && b.count) {
            redisReply **replies = rl_calloc((size_t)b.count, sizeof *replies);
            if (!replies)
                rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory in reset_all");
            else
                rc = rl_conn_pipeline(c, conn, &b, replies);
            for (int i = 0; !rc && i < b.count; i++) {
                if (replies[i]->type == REDIS_REPLY_INTEGER)
                    count += (size_t)replies[i]->integer;
                else
                    rc = rl_reply_error(replies[i], "reset_all");
            }
            for (int i = 0; replies && i < b.count; i++)
                if (replies[i])
                    freeReplyObject(replies[i]);
            free(replies);
        }
        for (size_t i = 0; i < n; i++)
            free(signals[i]);
        free(signals);
        rl_buf_free(&b);
        freeReplyObject(r);
    } while (!rc && strcmp(cursor, "0") != 0);
    rl_client_put(c, conn, rl_conn_reusable(rc));
    if (!rc) {
        rl_log(c, LOG_INFO, "reset %zu locks", count);
        if (out_count)
            *out_count = count;
    }
    return rc;
}
