/* The one renewal thread of a client: serves every auto-renewed lock of the client on
 * its own connection, one pipelined batch of extend scripts per wake-up. A renewal that
 * failed is tried again after a back-off, never early, and a batch the server did not
 * serve holds the next one back (see docs/design.md, the renewal thread). The thread
 * works under the fork guard (client.c) and lets go of it while it waits; its start and
 * its end are covered by the thread that starts or stops it, so that no fork() copies a
 * lock the thread holds halfway through being born or torn down. */
#include "internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#define RL_RENEW_BATCH 1024
#define RL_RENEW_BACKOFF_CAP_MS 1000

typedef struct rl_renewer {
    redis_lock_client *c;
    pthread_mutex_t mu;
    pthread_cond_t wake;  /* a lock was added, or stop */
    pthread_cond_t done;  /* a batch finished: renew_busy flags were cleared */
    pthread_t thread;
    bool stop;
    bool started;   /* the thread is up (its working memory allocated) */
    bool left_loop; /* it saw stop and waits for may_exit */
    bool may_exit;  /* the stopper holds the fork guard: the thread may end */
    redis_lock *head;     /* registered locks */
    rl_conn *conn;
    /* after a batch the server did not answer: no batch before not_before_ms */
    rl_backoff backoff;
    int64_t not_before_ms;
} rl_renewer;

/* The thread's working memory, allocated once. */
typedef struct {
    redis_lock **batch, **lost;
    int *results;
    rl_script_call *calls;
    redisReply **replies;
} renew_room;

static pthread_mutex_t create_mu = PTHREAD_MUTEX_INITIALIZER;

static int64_t interval_of(const redis_lock *l)
{
    return l->opts.renewal_interval_ms ? l->opts.renewal_interval_ms : l->opts.expire_ms * 2 / 3;
}

static void unlink_lock(rl_renewer *r, redis_lock *l)
{
    for (redis_lock **p = &r->head; *p; p = &(*p)->renew_next) {
        if (*p == l) {
            *p = l->renew_next;
            l->renew_next = NULL;
            l->renew_registered = false;
            return;
        }
    }
}

static void timed_wait(rl_renewer *r, int64_t until_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t left = until_ms - rl_now_ms();
    if (left <= 0)
        return;
    ts.tv_sec += left / 1000;
    ts.tv_nsec += (long)(left % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&r->wake, &r->mu, &ts);
}

static bool room_alloc(renew_room *m)
{
    if (!m->batch)
        m->batch = rl_calloc(RL_RENEW_BATCH, sizeof *m->batch);
    if (!m->lost)
        m->lost = rl_calloc(RL_RENEW_BATCH, sizeof *m->lost);
    if (!m->results)
        m->results = rl_calloc(RL_RENEW_BATCH, sizeof *m->results);
    if (!m->calls)
        m->calls = rl_calloc(RL_RENEW_BATCH, sizeof *m->calls);
    if (!m->replies)
        m->replies = rl_calloc(RL_RENEW_BATCH, sizeof *m->replies);
    return m->batch && m->lost && m->results && m->calls && m->replies;
}

static void room_free(renew_room *m)
{
    free(m->batch);
    free(m->lost);
    free(m->results);
    free(m->calls);
    free(m->replies);
}

/* Send one batch; fills results[i] with 0 renewed, 1 gone, 2 no expiry, -1 unknown.
 * Returns 0 when the server answered (each lock's answer may still be an error). */
static int renew_batch(rl_renewer *r, renew_room *m, int n)
{
    redis_lock_client *c = r->c;
    int rc = 0;
    for (int i = 0; i < n; i++)
        m->results[i] = -1;
    if (r->conn && !rl_client_conn_current(c, r->conn)) {
        rl_conn_close(r->conn);
        r->conn = NULL;
    }
    if (!r->conn && (rc = rl_conn_open(c, &r->conn)))
        goto out;
    /* one pipeline per extend script: locks, then shared holds, then permits */
    static const int scripts[3] = {RL_SCRIPT_EXTEND, RL_SCRIPT_SHARED_EXTEND,
                                   RL_SCRIPT_SEM_EXTEND};
    int start[4] = {0, 0, 0, n};
    for (int kind = 0, at = 0; kind < 3; kind++) {
        start[kind] = at;
        for (int i = at; i < n; i++) {
            const redis_lock *l = m->batch[i];
            if ((l->opts.shared ? 1 : l->limit ? 2 : 0) == kind) {
                redis_lock *t = m->batch[at];
                m->batch[at++] = m->batch[i];
                m->batch[i] = t;
            }
        }
    }
    for (int i = 0; i < n; i++) {
        const redis_lock *l = m->batch[i];
        rl_script_call *k = &m->calls[i];
        k->nkeys = 1;
        k->keys[0] = l->key;
        k->keylens[0] = l->key_len;
        k->nargs = 2;
        k->args[0] = l->id;
        rl_fmt_ms(k->num, sizeof k->num, l->opts.expire_ms);
        k->args[1] = k->num;
        if (l->opts.shared)
            rl_shared_extend_call(l, k, l->opts.expire_ms);
        else if (l->limit)
            rl_sem_extend_call(l, k, l->opts.expire_ms);
    }
    long long acked = INT_MAX; /* the fewest replicas that acknowledged a pipeline */
    for (int kind = 0; !rc && kind < 3; kind++) {
        int from = start[kind], to = start[kind + 1];
        long long a = INT_MAX;
        if (to > from)
            rc = rl_script_run_acked(c, r->conn, scripts[kind], m->calls + from, to - from,
                                     m->replies + from, NULL, 0, &a);
        if (a < acked)
            acked = a;
        for (int i = 0; rc && i < from; i++) {
            freeReplyObject(m->replies[i]);
            m->replies[i] = NULL;
        }
    }
    if (!rc && acked < c->url.min_replicas)
        rl_log(c, LOG_WARNING, "renewal not acknowledged by enough replicas (%lld of %d): "
               "counted as not renewed", acked < 0 ? 0 : acked, c->url.min_replicas);
    for (int i = 0; !rc && i < n; i++) {
        redisReply *rep = m->replies[i];
        if (rep->type == REDIS_REPLY_INTEGER && rep->integer == 0 && acked < c->url.min_replicas)
            m->results[i] = -1; /* renewed on the master only: not renewed */
        else if (rep->type == REDIS_REPLY_INTEGER)
            m->results[i] = (int)rep->integer;
        else if (rep->str)
            rl_log(c, LOG_WARNING, "renewing %s: %.*s", m->batch[i]->name, (int)rep->len,
                   rep->str);
        else
            rl_log(c, LOG_WARNING, "renewing %s: unexpected reply", m->batch[i]->name);
        freeReplyObject(rep);
        m->replies[i] = NULL;
    }
out:
    if (rc) {
        rl_log(c, LOG_WARNING, "renewal failed: %s", redis_lock_last_error());
        if (!rl_conn_reusable(rc)) {
            rl_client_put(c, r->conn, false); /* closed; under Sentinel, ask again */
            r->conn = NULL;
        }
    }
    return rc;
}

/* After a batch that failed: when may the next one go? Back off (at least
 * RL_BACKOFF_MIN_MS between batches), but delay no lock past its own time: a lock renewed
 * on schedule is not kept past its due time, and a lock whose renewal failed gets a last
 * try RL_BACKOFF_MIN_MS before its key expires. Called with r->mu held. */
static void back_off(rl_renewer *r, int64_t now)
{
    int64_t wait = rl_backoff_next(&r->backoff, RL_RENEW_BACKOFF_CAP_MS);
    for (const redis_lock *l = r->head; l; l = l->renew_next) {
        int64_t latest = l->renew_retry
                             ? l->renewed_ms + l->opts.expire_ms - RL_BACKOFF_MIN_MS - now
                             : l->renew_due_ms - now;
        if (latest < wait)
            wait = latest > RL_BACKOFF_MIN_MS ? latest : RL_BACKOFF_MIN_MS;
    }
    r->not_before_ms = now + wait;
}

static void *renewer_main(void *arg)
{
    rl_renewer *r = arg;
    redis_lock_client *c = r->c;
    renew_room m = {0};
    room_alloc(&m); /* under the guard of rl_renewer_add, which waits for started */
    pthread_mutex_lock(&r->mu);
    r->started = true;
    pthread_cond_broadcast(&r->done);
    while (!r->stop) {
        if (!m.batch || !m.lost || !m.results || !m.calls || !m.replies) {
            /* cannot work without memory: retry allocating soon */
            pthread_mutex_unlock(&r->mu);
            rl_fork_guard_enter();
            bool ok = room_alloc(&m);
            rl_fork_guard_leave();
            pthread_mutex_lock(&r->mu);
            if (!ok)
                timed_wait(r, rl_now_ms() + RL_BACKOFF_MIN_MS);
            continue;
        }
        int64_t now = rl_now_ms(), next = RL_INFINITE;
        int n = 0;
        for (redis_lock *l = r->head, *nx; l; l = nx) {
            nx = l->renew_next;
            if (l->opts.max_hold_ms && now - l->acquired_at_ms >= l->opts.max_hold_ms) {
                rl_log(c, LOG_WARNING, "%s held for max_hold_ms (%lld ms): renewal stops, the "
                       "lock expires in %lld ms", l->name, (long long)l->opts.max_hold_ms,
                       (long long)l->opts.expire_ms);
                unlink_lock(r, l);
                continue;
            }
            /* renew what falls due soon along with what is due (fewer, larger batches);
             * a lock whose renewal failed waits for its retry time */
            int64_t early = l->renew_retry ? 0 : interval_of(l) / 10;
            if (l->renew_due_ms <= now + early && n < RL_RENEW_BATCH)
                m.batch[n++] = l;
            else if (l->renew_due_ms < next)
                next = l->renew_due_ms;
        }
        if (n > 0 && now < r->not_before_ms) {
            next = r->not_before_ms; /* backing off after a failed batch */
            n = 0;
        }
        if (n == 0) {
            if (next == RL_INFINITE)
                pthread_cond_wait(&r->wake, &r->mu);
            else
                timed_wait(r, next);
            continue;
        }
        for (int i = 0; i < n; i++)
            m.batch[i]->renew_busy = true;
        pthread_mutex_unlock(&r->mu);

        rl_fork_guard_enter();
        rl_log(c, LOG_DEBUG, "renewing %d lock%s", n, n == 1 ? "" : "s");
        int64_t sent = rl_now_ms();
        int rc = renew_batch(r, &m, n);
        rl_fork_guard_leave();

        pthread_mutex_lock(&r->mu);
        int nlost = 0;
        bool failed = false;
        now = rl_now_ms();
        for (int i = 0; i < n; i++) {
            redis_lock *l = m.batch[i];
            if (!l->renew_registered)
                continue; /* released meanwhile; release waits for renew_busy */
            if (m.results[i] == 0) {
                /* the key's new expiry counts from when the server ran the extend, at the
                 * earliest when it was sent: count the next interval from there too, or a
                 * slow round (a cold script cache costs two) is taken out of the margin */
                l->renew_due_ms = sent + interval_of(l);
                l->renewed_ms = sent;
                l->renew_retry = false;
                continue;
            }
            if (m.results[i] == 1) {
                atomic_store(&l->lost, true);
                unlink_lock(r, l);
                m.lost[nlost++] = l;
                continue;
            }
            if (now - l->renewed_ms >= l->opts.expire_ms) {
                /* Redis unreachable past the key's expiry: another client may own it now. */
                rl_log(c, LOG_ERR, "could not renew %s before its expiry", l->name);
                atomic_store(&l->lost, true);
                unlink_lock(r, l);
                m.lost[nlost++] = l;
                continue;
            }
            /* 2 (someone removed the expiry) or no answer: try again after a back-off */
            failed = true;
            l->renew_retry = true;
            l->renew_due_ms = now;
        }
        if (failed || rc) {
            back_off(r, now);
            for (int i = 0; i < n; i++)
                if (m.batch[i]->renew_retry && m.batch[i]->renew_due_ms < r->not_before_ms)
                    m.batch[i]->renew_due_ms = r->not_before_ms;
        } else {
            rl_backoff_reset(&r->backoff);
        }
        pthread_mutex_unlock(&r->mu);
        for (int i = 0; i < nlost; i++) {
            rl_log(c, LOG_ERR, "lost %s: renewal found it gone or owned by another",
                   m.lost[i]->name);
            if (m.lost[i]->opts.on_lost)
                m.lost[i]->opts.on_lost(m.lost[i], m.lost[i]->opts.on_lost_payload);
        }
        pthread_mutex_lock(&r->mu);
        for (int i = 0; i < n; i++)
            m.batch[i]->renew_busy = false;
        pthread_cond_broadcast(&r->done);
    }
    /* the stopper takes the guard before it lets us end: our teardown (freeing, and the
     * thread's own exit in the C library) happens while no fork() can copy it */
    r->left_loop = true;
    pthread_cond_broadcast(&r->done);
    while (!r->may_exit)
        pthread_cond_wait(&r->done, &r->mu);
    pthread_mutex_unlock(&r->mu);
    room_free(&m);
    return NULL;
}

int rl_renewer_add(redis_lock *l)
{
    redis_lock_client *c = l->client;
    pthread_mutex_lock(&create_mu);
    rl_renewer *r = c->renewer;
    if (!r) {
        r = rl_calloc(1, sizeof *r);
        if (!r) {
            pthread_mutex_unlock(&create_mu);
            return rl_error(REDIS_LOCK_ENOMEM, "out of memory starting the renewal thread");
        }
        r->c = c;
        pthread_mutex_init(&r->mu, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&r->wake, &ca);
        pthread_condattr_destroy(&ca);
        pthread_cond_init(&r->done, NULL);
        /* no fork() while the thread is being born: it allocates then */
        rl_fork_guard_enter();
        int err = pthread_create(&r->thread, NULL, renewer_main, r);
        if (!err) {
            pthread_mutex_lock(&r->mu);
            while (!r->started)
                pthread_cond_wait(&r->done, &r->mu);
            pthread_mutex_unlock(&r->mu);
        }
        rl_fork_guard_leave();
        if (err) {
            pthread_cond_destroy(&r->wake);
            pthread_cond_destroy(&r->done);
            pthread_mutex_destroy(&r->mu);
            free(r);
            pthread_mutex_unlock(&create_mu);
            return rl_error(err == ENOMEM || err == EAGAIN ? REDIS_LOCK_ENOMEM : REDIS_LOCK_EINVAL,
                            "cannot start the renewal thread: %s", strerror(err));
        }
        c->renewer = r;
    }
    pthread_mutex_unlock(&create_mu);
    pthread_mutex_lock(&r->mu);
    if (!l->renew_registered) {
        l->renew_registered = true;
        l->renew_next = r->head;
        r->head = l;
    }
    /* from when the acquiring command was sent: the key's expiry counts from no earlier */
    l->renew_due_ms = (l->renewed_ms ? l->renewed_ms : rl_now_ms()) + interval_of(l);
    l->renew_retry = false;
    pthread_cond_signal(&r->wake);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

void rl_renewer_remove(redis_lock *l)
{
    pthread_mutex_lock(&create_mu);
    rl_renewer *r = l->client->renewer;
    pthread_mutex_unlock(&create_mu);
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    if (l->renew_registered)
        unlink_lock(r, l);
    /* a renewal in flight for this lock (or its on_lost) finishes first, unless we are
     * that very callback */
    while (l->renew_busy && !pthread_equal(pthread_self(), r->thread))
        pthread_cond_wait(&r->done, &r->mu);
    pthread_mutex_unlock(&r->mu);
}

void rl_renewer_stop(redis_lock_client *c)
{
    pthread_mutex_lock(&create_mu);
    rl_renewer *r = c->renewer;
    c->renewer = NULL;
    pthread_mutex_unlock(&create_mu);
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->wake);
    while (!r->left_loop) /* a batch in flight may wait for its server: not under the guard */
        pthread_cond_wait(&r->done, &r->mu);
    pthread_mutex_unlock(&r->mu);
    rl_fork_guard_enter(); /* the thread's end, and its connection's, are not fork()ed */
    pthread_mutex_lock(&r->mu);
    r->may_exit = true;
    pthread_cond_broadcast(&r->done);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    rl_conn_close(r->conn);
    rl_fork_guard_leave();
    pthread_cond_destroy(&r->wake);
    pthread_cond_destroy(&r->done);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

void rl_renewer_atfork_child(void)
{
    pthread_mutex_init(&create_mu, NULL);
}

void rl_renewer_forget(redis_lock_client *c)
{
    /* In a forked child: the thread was not copied and its mutexes may be held. Close our
     * copy of its socket and let the parent's renewals stay the parent's. */
    rl_renewer *r = c->renewer;
    c->renewer = NULL;
    if (r) {
        rl_conn_close(r->conn);
        free(r);
    }
}
