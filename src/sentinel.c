/* Sentinel: where the master is. The sentinels of a redis+sentinel:// URL are asked in turn
 * (SENTINEL get-master-addr-by-name) when the address is not known: on the first
 * connection, and after a connection to the master was lost, refused, or found demoted
 * (ROLE on every new connection, READONLY on a write). Every resolution has an epoch;
 * pooled connections of an older epoch are closed, never reused (client.c).
 *
 * +switch-master: the sentinel that answered the first resolution keeps the connection,
 * subscribed to +switch-master. No thread reads it: every rl_client_get() (a lock call, the
 * renewal thread, a cache call) polls it without waiting first, under the pool's mutex, so
 * a switch is seen by the next command that takes a connection, at the cost of one poll()
 * system call. A thread of our own would see it no sooner than that command, and would
 * have to be stopped, forked around and woken; this costs nothing when nobody calls. */
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/* Ask one sentinel for the master's address; with subscribe, also SUBSCRIBE +switch-master
 * in the same round trip and keep the connection in *sub. */
static int ask_one(redis_lock_client *c, const rl_sentinel_addr *s, int64_t deadline,
                   bool subscribe, char *host, size_t hsize, int *port, rl_conn **sub)
{
    const rl_url *u = &c->url;
    rl_conn *conn;
    int rc = rl_conn_connect(c, s->host, s->port, deadline, &conn);
    if (rc)
        return rc;
    rl_buf b = {0};
    int nauth = 0;
    if (u->sentinel_password) {
        const char *argv[3] = {"AUTH", u->sentinel_user ? u->sentinel_user : u->sentinel_password,
                               u->sentinel_password};
        nauth = 1;
        rc = rl_buf_add(&b, u->sentinel_user ? 3 : 2, argv, NULL);
    }
    if (!rc) {
        const char *argv[3] = {"SENTINEL", "get-master-addr-by-name", u->master_name};
        rc = rl_buf_add(&b, 3, argv, NULL);
    }
    if (!rc && subscribe) {
        const char *argv[2] = {"SUBSCRIBE", "+switch-master"};
        rc = rl_buf_add(&b, 2, argv, NULL);
    }
    redisReply *r[3] = {NULL, NULL, NULL};
    if (!rc)
        rc = rl_conn_pipeline(c, conn, &b, r);
    rl_buf_free(&b);
    if (!rc && nauth)
        rc = rl_reply_error(r[0], "AUTH to the sentinel failed");
    const redisReply *a = r[nauth];
    if (!rc && (rc = rl_reply_error(a, "SENTINEL get-master-addr-by-name")) == 0) {
        if (a->type != REDIS_REPLY_ARRAY || a->elements != 2 ||
            a->element[0]->type != REDIS_REPLY_STRING || a->element[1]->type != REDIS_REPLY_STRING)
            rc = rl_error(REDIS_LOCK_ECONN, "sentinel %s:%d does not know a master named %s",
                          s->host, s->port, u->master_name);
        else if (a->element[0]->len >= hsize || atoi(a->element[1]->str) <= 0)
            rc = rl_error(REDIS_LOCK_ESERVER, "sentinel %s:%d named a bad address", s->host,
                          s->port);
        else {
            memcpy(host, a->element[0]->str, a->element[0]->len + 1);
            *port = atoi(a->element[1]->str);
        }
    }
    if (!rc && subscribe)
        rc = rl_reply_error(r[nauth + 1], "SUBSCRIBE +switch-master");
    for (int i = 0; i < 3; i++)
        if (r[i])
            freeReplyObject(r[i]);
    if (!rc && subscribe)
        *sub = conn;
    else
        rl_conn_close(conn);
    return rc;
}

/* Ask the sentinels in turn; the first that answers wins. */
static int ask_sentinels(redis_lock_client *c, int64_t deadline, bool subscribe, char *host,
                         size_t hsize, int *port, rl_conn **sub)
{
    const rl_url *u = &c->url;
    int rc = REDIS_LOCK_ECONN;
    *sub = NULL;
    for (int i = 0; i < u->nsentinels; i++) {
        int64_t now = rl_now_ms();
        if (now >= deadline && i > 0)
            break;
        /* each sentinel gets the connect timeout, but none may use up the others' time */
        int64_t left = deadline - now, share = left / (u->nsentinels - i);
        int64_t d = now + (share < 200 ? (left < 200 ? left : 200) : share);
        rc = ask_one(c, &u->sentinels[i], d, subscribe, host, hsize, port, sub);
        if (!rc)
            return 0;
        if (rc == REDIS_LOCK_ENOMEM || rc == REDIS_LOCK_EAUTH)
            return rc;
        rl_log(c, LOG_WARNING, "%s; trying the next sentinel", redis_lock_last_error());
    }
    if (rc == REDIS_LOCK_ECONN)
        rc = rl_error(REDIS_LOCK_ECONN, "no sentinel of %s named the master: %s", u->masked,
                      redis_lock_last_error());
    return rc;
}

/* A new address (or a new subscription) under mu: bump the epoch if the master moved. */
static void set_master_locked(redis_lock_client *c, const char *host, int port, const char *why)
{
    if (!c->resolved || c->master_port != port || strcmp(c->master_host, host) != 0) {
        bool had = c->master_host[0] != '\0';
        if (had && (c->master_port != port || strcmp(c->master_host, host) != 0))
            rl_log(c, LOG_INFO, "master %s moved from %s:%d to %s:%d (%s)", c->url.master_name,
                   c->master_host, c->master_port, host, port, why);
        else if (!had)
            rl_log(c, LOG_INFO, "master %s is at %s:%d (%s)", c->url.master_name, host, port, why);
        if (had && (c->master_port != port || strcmp(c->master_host, host) != 0))
            c->epoch++;
        snprintf(c->master_host, sizeof c->master_host, "%s", host);
        c->master_port = port;
    }
    c->resolved = true;
}

int rl_sentinel_master(redis_lock_client *c, int64_t deadline, char *host, size_t hsize,
                       int *port, unsigned long *epoch)
{
    pthread_mutex_lock(&c->resolve_mu);
    pthread_mutex_lock(&c->mu);
    rl_sentinel_poll_locked(c); /* a +switch-master not taken in yet */
    bool known = c->resolved;
    bool subscribe = c->sub == NULL;
    pthread_mutex_unlock(&c->mu);
    int rc = 0;
    if (!known) {
        char h[256];
        int p = 0;
        rl_conn *sub = NULL;
        rc = ask_sentinels(c, deadline, subscribe, h, sizeof h, &p, &sub);
        if (!rc) {
            pthread_mutex_lock(&c->mu);
            set_master_locked(c, h, p, "asked the sentinels");
            if (sub && !c->sub) {
                c->sub = sub;
                sub = NULL;
            }
            pthread_mutex_unlock(&c->mu);
            rl_conn_close(sub);
        }
    }
    if (!rc) {
        pthread_mutex_lock(&c->mu);
        if (strlen(c->master_host) >= hsize) {
            rc = rl_error(REDIS_LOCK_EINVAL, "master host name too long");
        } else {
            strcpy(host, c->master_host);
            *port = c->master_port;
            *epoch = c->epoch;
        }
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&c->resolve_mu);
    return rc;
}

void rl_sentinel_invalidate(redis_lock_client *c, unsigned long epoch, bool demoted)
{
    pthread_mutex_lock(&c->mu);
    if (c->epoch == epoch && c->resolved) {
        c->resolved = false;
        if (demoted) {
            c->epoch++;
            rl_log(c, LOG_INFO, "%s:%d is no longer the master of %s: dropping its connections",
                   c->master_host, c->master_port, c->url.master_name);
        }
    }
    pthread_mutex_unlock(&c->mu);
}

/* A +switch-master message: "NAME old-ip old-port new-ip new-port". */
static void on_message(redis_lock_client *c, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[0]->type != REDIS_REPLY_STRING || strcmp(r->element[0]->str, "message") != 0 ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    char name[256], oldh[256], newh[256];
    int oldp, newp;
    if (sscanf(r->element[2]->str, "%255s %255s %d %255s %d", name, oldh, &oldp, newh, &newp) != 5 ||
        strcmp(name, c->url.master_name) != 0)
        return;
    set_master_locked(c, newh, newp, "+switch-master");
}

static void drop_sub_locked(redis_lock_client *c, const char *why)
{
    rl_log(c, LOG_INFO, "lost the +switch-master subscription (%s); asking the sentinels again",
           why);
    rl_conn_close(c->sub);
    c->sub = NULL;
    /* a switch may be missed until rl_client_get subscribes again (and asks then) */
}

void rl_sentinel_resubscribe(redis_lock_client *c)
{
    pthread_mutex_lock(&c->resolve_mu);
    pthread_mutex_lock(&c->mu);
    bool need = c->sub == NULL;
    pthread_mutex_unlock(&c->mu);
    if (need) {
        char h[256];
        int p = 0;
        rl_conn *sub = NULL;
        if (ask_sentinels(c, rl_now_ms() + c->opts.connect_timeout_ms, true, h, sizeof h, &p,
                          &sub) == 0) {
            pthread_mutex_lock(&c->mu);
            set_master_locked(c, h, p, "asked the sentinels");
            if (!c->sub) {
                c->sub = sub;
                sub = NULL;
            }
            pthread_mutex_unlock(&c->mu);
            rl_conn_close(sub);
        } else {
            rl_log(c, LOG_WARNING, "cannot subscribe to +switch-master: %s",
                   redis_lock_last_error());
        }
    }
    pthread_mutex_unlock(&c->resolve_mu);
}

void rl_sentinel_poll_locked(redis_lock_client *c)
{
    rl_conn *s = c->sub;
    if (!s)
        return;
    if (s->fork_gen != rl_fork_gen()) {
        rl_conn_close(s);
        c->sub = NULL;
        return;
    }
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(s->reader, &reply) != REDIS_OK) {
            drop_sub_locked(c, "bad reply");
            return;
        }
        if (reply) {
            on_message(c, reply);
            freeReplyObject(reply);
            continue;
        }
        if (!s->tr->pending(s)) {
            struct pollfd p = {s->fd, POLLIN, 0};
            if (poll(&p, 1, 0) == 0)
                return;
        }
        char buf[4096];
        short ev;
        ssize_t n = s->tr->read(s, buf, sizeof buf, &ev);
        if (n > 0) {
            if (redisReaderFeed(s->reader, buf, (size_t)n) != REDIS_OK) {
                drop_sub_locked(c, "out of memory");
                return;
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        drop_sub_locked(c, n == 0 ? "the sentinel closed it" : strerror(errno));
        return;
    }
}

void rl_sentinel_free(redis_lock_client *c)
{
    rl_conn_close(c->sub);
    c->sub = NULL;
}
