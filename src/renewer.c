/* The one renewal thread of a client: serves every auto-renewed lock of the client on
 * its own connection, one pipelined batch of EXTEND scripts per wake-up. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#define RL_RENEW_BATCH 1024
#define RL_RENEW_RETRY_MS 100

typedef struct rl_renewer {
    redis_lock_client *c;
    pthread_mutex_t mu;
    pthread_cond_t wake;  /* a lock was added, or stop */
    pthread_cond_t done;  /* a batch finished: renew_busy flags were cleared */
    pthread_t thread;
    bool stop;
    redis_lock *head;     /* registered locks */
    rl_conn *conn;
} rl_renewer;

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

/* Send one batch; fills results[i] with 0 renewed, 1 gone, 2 no expiry, -1 unknown. */
static void renew_batch(rl_renewer *r, redis_lock **batch, int n, int *results)
{
    redis_lock_client *c = r->c;
    rl_buf b = {0};
    redisReply **replies = NULL;
    int rc = 0;
    for (int i = 0; i < n; i++)
        results[i] = -1;
    if (!r->conn && (rc = rl_conn_open(c, &r->conn)))
        goto out;
    for (int i = 0; i < n && !rc; i++) {
        char ms[24];
        rl_fmt_ms(ms, sizeof ms, batch[i]->opts.expire_ms);
        const char *keys[1] = {batch[i]->key};
        size_t keylens[1] = {batch[i]->key_len};
        const char *args[2] = {batch[i]->id, ms};
        rc = rl_script_append(&b, RL_SCRIPT_EXTEND, 1, keys, keylens, 2, args, NULL);
    }
    if (!rc && !(replies = rl_calloc((size_t)n, sizeof *replies)))
        rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory renewing locks");
    for (int attempt = 0; !rc && attempt < 2; attempt++) {
        if ((rc = rl_conn_pipeline(c, r->conn, &b, replies)))
            break;
        bool noscript = false;
        for (int i = 0; i < n; i++) {
            if (replies[i]->type == REDIS_REPLY_INTEGER)
                results[i] = (int)replies[i]->integer;
            else if (rl_is_noscript(replies[i]))
                noscript = true;
            else
                rl_log(c, LOG_WARNING, "renewing %s: %.*s", batch[i]->name,
                       (int)replies[i]->len, replies[i]->str);
            freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
        if (!noscript)
            break;
        /* The script cache is cold (restart, SCRIPT FLUSH): load it and send the batch
         * again now (extending twice is harmless); waiting would risk the expiry. */
        const char *argv[3] = {"SCRIPT", "LOAD", rl_script_source(RL_SCRIPT_EXTEND)};
        redisReply *lr = NULL;
        rc = rl_conn_command(c, r->conn, &lr, 3, argv, NULL);
        if (lr)
            freeReplyObject(lr);
    }
out:
    free(replies);
    rl_buf_free(&b);
    if (rc) {
        rl_log(c, LOG_WARNING, "renewal failed: %s", redis_lock_last_error());
        if (rc == REDIS_LOCK_ECONN && r->conn) {
            rl_conn_close(r->conn);
            r->conn = NULL;
        }
    }
}

static void *renewer_main(void *arg)
{
    rl_renewer *r = arg;
    redis_lock_client *c = r->c;
    redis_lock **batch = rl_calloc(RL_RENEW_BATCH, sizeof *batch);
    redis_lock **lost = rl_calloc(RL_RENEW_BATCH, sizeof *lost);
    int *results = rl_calloc(RL_RENEW_BATCH, sizeof *results);
    pthread_mutex_lock(&r->mu);
    while (!r->stop) {
        if (!batch || !lost || !results) {
            /* cannot work without memory: retry allocating soon */
            pthread_mutex_unlock(&r->mu);
            if (!batch)
                batch = rl_calloc(RL_RENEW_BATCH, sizeof *batch);
            if (!lost)
                lost = rl_calloc(RL_RENEW_BATCH, sizeof *lost);
            if (!results)
                results = rl_calloc(RL_RENEW_BATCH, sizeof *results);
            pthread_mutex_lock(&r->mu);
            timed_wait(r, rl_now_ms() + RL_RENEW_RETRY_MS);
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
            /* renew what falls due soon along with what is due: fewer, larger batches */
            if (l->renew_due_ms <= now + interval_of(l) / 10 && n < RL_RENEW_BATCH)
                batch[n++] = l;
            else if (l->renew_due_ms < next)
                next = l->renew_due_ms;
        }
        if (n == 0) {
            if (next == RL_INFINITE)
                pthread_cond_wait(&r->wake, &r->mu);
            else
                timed_wait(r, next);
            continue;
        }
        for (int i = 0; i < n; i++)
            batch[i]->renew_busy = true;
        pthread_mutex_unlock(&r->mu);

        rl_log(c, LOG_DEBUG, "renewing %d lock%s", n, n == 1 ? "" : "s");
        int64_t sent = rl_now_ms();
        renew_batch(r, batch, n, results);

        pthread_mutex_lock(&r->mu);
        int nlost = 0;
        now = rl_now_ms();
        for (int i = 0; i < n; i++) {
            redis_lock *l = batch[i];
            if (!l->renew_registered)
                continue; /* released meanwhile; release waits for renew_busy */
            if (results[i] == 0) {
                l->renew_due_ms = now + interval_of(l);
                l->renewed_ms = sent;
                continue;
            }
            if (results[i] == 1) {
                atomic_store(&l->lost, true);
                unlink_lock(r, l);
                lost[nlost++] = l;
                continue;
            }
            if (now - l->renewed_ms >= l->opts.expire_ms) {
                /* Redis unreachable past the key's expiry: another client may own it now. */
                rl_log(c, LOG_ERR, "could not renew %s before its expiry", l->name);
                atomic_store(&l->lost, true);
                unlink_lock(r, l);
                lost[nlost++] = l;
                continue;
            }
            /* 2 (someone removed the expiry) or unknown: try again soon */
            l->renew_due_ms = now + RL_RENEW_RETRY_MS;
        }
        pthread_mutex_unlock(&r->mu);
        for (int i = 0; i < nlost; i++) {
            rl_log(c, LOG_ERR, "lost %s: renewal found it gone or owned by another", lost[i]->name);
            if (lost[i]->opts.on_lost)
                lost[i]->opts.on_lost(lost[i], lost[i]->opts.on_lost_payload);
        }
        pthread_mutex_lock(&r->mu);
        for (int i = 0; i < n; i++)
            batch[i]->renew_busy = false;
        pthread_cond_broadcast(&r->done);
    }
    pthread_mutex_unlock(&r->mu);
    free(batch);
    free(lost);
    free(results);
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
        int err = pthread_create(&r->thread, NULL, renewer_main, r);
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
    l->renew_due_ms = rl_now_ms() + interval_of(l);
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
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    rl_conn_close(r->conn);
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
