/* Acquire: one try (the acquire script) per round trip; between tries a BLPOP on the
 * lock's signal list, capped by the deadline and the holder's TTL and timed by our own
 * clock, with the next try queued behind it. */
#include "internal.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

int rl_parse_acquire_reply(const redisReply *r, const char *id, try_result *out)
{
    memset(out, 0, sizeof *out);
    out->next = -1;
    if (!r || r->type != REDIS_REPLY_ARRAY || r->elements < 2 || !r->element[0] ||
        r->element[0]->type != REDIS_REPLY_INTEGER)
        goto bad;
    if (r->element[0]->integer == -1) {
        /* the semaphore's holders have another limit */
        if (r->elements != 2 || r->element[1]->type != REDIS_REPLY_INTEGER ||
            r->element[1]->integer < 1)
            goto bad;
        out->limit_conflict = r->element[1]->integer;
        return 0;
    }
    if (r->element[0]->integer == 1) {
        if (r->elements != 2 || r->element[1]->type != REDIS_REPLY_INTEGER)
            goto bad;
        out->acquired = true;
        out->token = r->element[1]->integer;
        return 0;
    }
    /* the fair try adds a fourth element: when the earliest queue lease lapses */
    if (r->element[0]->integer != 0 || r->elements < 3 || r->elements > 4 ||
        r->element[2]->type != REDIS_REPLY_INTEGER ||
        (r->elements == 4 && r->element[3]->type != REDIS_REPLY_INTEGER))
        goto bad;
    if (r->elements == 4 && (out->next = r->element[3]->integer) < -1)
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

/* The acquire script's call for this handle: KEYS lock, fence, writers; ARGV id, expiry,
 * fencing, writer lease ("0" for a try-once acquire: it does not wait as a writer), the
 * shared marker. A fair handle's is the fair try's (fair.c; enqueue: join the queue if the
 * lock is held), a shared handle's the shared try's (shared.c). */
static void try_call_init(const redis_lock *l, rl_script_call *k, bool enqueue)
{
    if (l->opts.fair) {
        rl_fair_try_call(l, k, enqueue);
        return;
    }
    if (l->opts.shared) {
        rl_shared_try_call(l, k);
        return;
    }
    if (l->limit) {
        rl_sem_try_call(l, k);
        return;
    }
    k->nkeys = 3;
    k->keys[0] = l->key;
    k->keys[1] = l->fence_key;
    k->keys[2] = l->writers_key;
    k->keylens[0] = l->key_len;
    k->keylens[1] = l->fence_len;
    k->keylens[2] = l->writers_len;
    k->nargs = 5;
    k->args[0] = l->id;
    rl_fmt_ms(k->num, sizeof k->num, l->opts.expire_ms);
    k->args[1] = k->num;
    k->args[2] = l->opts.fencing ? "1" : "0";
    rl_fmt_ms(k->num2, sizeof k->num2, enqueue ? l->opts.queue_lease_ms : 0);
    k->args[3] = k->num2;
    k->args[4] = RL_SHARED_MARKER;
}

static int try_script(const redis_lock *l)
{
    return l->opts.fair     ? RL_SCRIPT_FAIR_TRY
           : l->opts.shared ? RL_SCRIPT_SHARED_TRY
           : l->limit       ? RL_SCRIPT_SEM_TRY
                            : RL_SCRIPT_ACQUIRE;
}

enum { WAIT_WOKEN, WAIT_TIMEOUT, WAIT_CANCELED };

/* End our own BLPOP early: CLIENT UNBLOCK from another connection, then read the
 * BLPOP's reply (nil, or the element if a signal raced us) into *popped. If that cannot
 * be done, the connection is dropped (*connp NULL). */
static void unblock(redis_lock *l, rl_conn **connp, bool *popped)
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
        return;
    }
    *popped = r->type == REDIS_REPLY_ARRAY;
    freeReplyObject(r);
}

/* Append one try (the acquire script) to a pipeline. */
static int append_try(redis_lock *l, rl_buf *b)
{
    rl_script_call k;
    try_call_init(l, &k, true);
    return rl_script_append(b, try_script(l), &k);
}

/* The outcome of a wait. */
typedef struct {
    bool popped;     /* a release signal was consumed */
    bool have_try;   /* the try queued behind the BLPOP ran: res holds its result */
    bool maybe_tried;/* its answer was lost: that try may or may not have run */
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
    /* a fair waiter listens on its own wake list (a grant) and on the signal list (a
     * plain release, a reset: the lock became free without a grant) */
    const char *argv[4] = {"BLPOP", l->signal_key, secs};
    size_t lens[4] = {5, l->signal_len, strlen(secs)};
    int argc = 3;
    if (l->opts.fair) {
        argv[1] = l->wake_key, lens[1] = l->wake_len;
        argv[2] = l->signal_key, lens[2] = l->signal_len;
        argv[3] = secs, lens[3] = strlen(secs);
        argc = 4;
    }
    rl_buf b = {0};
    rl_buf_borrow(&b, l->scratch, l->scratch_cap);
    int rc = rl_buf_add(&b, argc, argv, lens);
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
        unblock(l, connp, &w->popped);
        conn = *connp;
        if (!conn)
            return outcome; /* dropped: w->maybe_tried stays set */
        rc = 0;
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
        /* script cache flushed: no try ran; the next one goes through rl_script (EVAL) */
    } else if ((rc = rl_reply_error(r, "lock script failed")) == 0) {
        rc = rl_parse_acquire_reply(r, l->id, &w->res);
        w->have_try = rc == 0;
        w->maybe_tried = rc != 0; /* an answer we cannot read says nothing about the key */
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
    if (!rl_conn_reusable(rc) && *connp) {
        rl_conn_close(*connp);
        *connp = NULL;
    }
}

/* The fencing token of a lock an unanswered try took (its answer, with the token, was
 * lost). */
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

/* ---- acquire, step by step ----
 * An acquire is a loop of named steps around an acquire_state:
 *   connect    get a connection (after a failure, back off first);
 *   try        run the acquire script once and read its answer;
 *   judge      decide from the answer: taken, ours already, busy, try again, or wait;
 *   wait       BLPOP on the signal list, with the next try queued behind it;
 *   give back  on every way out after a try whose answer was lost (the connection broke,
 *              memory ran out reading it, a cancel), release what that try may have taken.
 */

#define RL_ACQUIRE_BACKOFF_CAP_MS 1000

typedef struct {
    redis_lock *l;
    int64_t timeout_ms;
    int64_t deadline;   /* RL_INFINITE: none */
    rl_conn *conn;      /* NULL: connect before the next try; else healthy */
    rl_backoff backoff; /* between attempts after a failure */
    int reconnects;     /* a try-once acquire (timeout 0) reconnects once, no more */
    bool unanswered;    /* a try was sent and its answer lost: the key may be ours */
    bool queued;        /* fair: a try that joins the queue was sent */
    bool writer;        /* plain: counted as a writer waiting on shared holders */
    bool have_answer;   /* res holds the answer of a try not judged yet */
    try_result res;
    int64_t sent_ms;    /* no later than the try that took the lock ran */
    bool acked_known;   /* the answer came with its WAIT (min_replicas): acked is its count */
    long long acked;
} acquire_state;

/* Sleep before the next attempt at the server (never past the deadline); a cancel ends
 * it early and is returned as ECANCELED. */
static int acquire_back_off(acquire_state *st)
{
    redis_lock *l = st->l;
    int64_t until = rl_now_ms() + rl_backoff_next(&st->backoff, RL_ACQUIRE_BACKOFF_CAP_MS);
    if (until > st->deadline)
        until = st->deadline;
    int64_t left = until - rl_now_ms();
    if (left > 0) {
        struct pollfd p = {l->wake_fd, POLLIN, 0};
        poll(&p, 1, (int)left);
    }
    if (rl_lock_take_cancel(l))
        return rl_error(REDIS_LOCK_ECANCELED, "acquire of %s canceled", l->name);
    return 0;
}

/* A shared waiter that a waiting writer keeps out sleeps on its own timer (until), or
 * until a cancel; no command is sent meanwhile. */
static int acquire_sleep(acquire_state *st, int64_t until)
{
    redis_lock *l = st->l;
    rl_log(l->client, LOG_DEBUG, "a writer waits for %s: shared acquire sleeps", l->name);
    for (int64_t left; (left = until - rl_now_ms()) > 0 && !atomic_load(&l->cancel);) {
        struct pollfd p = {l->wake_fd, POLLIN, 0};
        if (poll(&p, 1, left > 1000000 ? 1000000 : (int)left) > 0 && !atomic_load(&l->cancel)) {
            uint64_t v; /* a stray write without a cancel: drain it, sleep on */
            ssize_t n = read(l->wake_fd, &v, sizeof v);
            (void)n;
        }
    }
    if (rl_lock_take_cancel(l))
        return rl_error(REDIS_LOCK_ECANCELED, "acquire of %s canceled", l->name);
    return 0;
}

/* Get a connection for the next try; a failed connect is tried again, after a back-off,
 * until the deadline. */
static int acquire_connect(acquire_state *st)
{
    redis_lock *l = st->l;
    for (;;) {
        int rc = rl_client_get(l->client, &st->conn);
        if (rc != REDIS_LOCK_ECONN || st->timeout_ms == 0 || rl_now_ms() >= st->deadline)
            return rc;
        rl_log(l->client, LOG_WARNING, "%s; retrying", redis_lock_last_error());
        if ((rc = acquire_back_off(st)))
            return rc;
    }
}

/* After a try whose connection broke: may we reconnect and try again? */
static bool acquire_may_reconnect(acquire_state *st)
{
    if (st->timeout_ms == 0)
        return st->reconnects++ == 0; /* a pooled connection may have been stale */
    return rl_now_ms() < st->deadline;
}

/* Run one try on st->conn and read its answer into st->res. A lost answer (any failure
 * but an error reply: the try may have run) sets st->unanswered and drops the
 * connection. */
static int acquire_try(acquire_state *st)
{
    redis_lock *l = st->l;
    if (!st->unanswered)
        st->sent_ms = rl_now_ms(); /* an unanswered try may have set the key: keep its time */
    rl_script_call k;
    try_call_init(l, &k, st->timeout_ms != 0);
    st->queued |= l->opts.fair && st->timeout_ms != 0;
    redisReply *r = NULL;
    int rc = rl_script_acked(l->client, st->conn, try_script(l), &k, &r, l->scratch,
                             l->scratch_cap, &st->acked);
    st->acked_known = rc == 0;
    bool whole_reply = rl_conn_reusable(rc);
    if (!rc && (rc = rl_parse_acquire_reply(r, l->id, &st->res)))
        whole_reply = false; /* an answer we cannot read says nothing about the key */
    if (r)
        freeReplyObject(r);
    if (!rl_conn_reusable(rc)) {
        rl_conn_close(st->conn);
        st->conn = NULL;
    }
    if (!whole_reply)
        st->unanswered = true;
    if (rc)
        return rc;
    st->have_answer = true;
    rl_backoff_reset(&st->backoff);
    return 0;
}

typedef enum { JUDGED_TAKEN, JUDGED_TRY_AGAIN, JUDGED_WAIT, JUDGED_SLEEP, JUDGED_STOP } judgement;

/* Judge the answer in st->res. JUDGED_WAIT sets *until (the end of the wait);
 * JUDGED_STOP sets *rc (what to return). */
static judgement acquire_judge(acquire_state *st, int64_t *until, int *rc)
{
    redis_lock *l = st->l;
    try_result *res = &st->res;
    st->have_answer = false;
    if (res->mine && st->unanswered) {
        /* An earlier try did set the key before its answer was lost: it is ours. */
        res->acquired = true;
        if (l->opts.fencing && (*rc = read_fence(l, st->conn, &res->token))) {
            if (!rl_conn_reusable(*rc)) {
                rl_conn_close(st->conn);
                st->conn = NULL;
            }
            return JUDGED_STOP; /* st->unanswered stays set: the key is given back */
        }
    }
    st->unanswered = false;
    if (res->acquired)
        return JUDGED_TAKEN;
    if (res->limit_conflict) {
        *rc = rl_error(REDIS_LOCK_EINVAL, "semaphore %s is held with limit %lld; this handle "
                       "asks for limit %d", l->name, (long long)res->limit_conflict, l->limit);
        return JUDGED_STOP;
    }
    if (res->mine) {
        *rc = rl_error(REDIS_LOCK_EALREADY, "%s is already held by this id (%s)", l->name,
                       l->id);
        return JUDGED_STOP;
    }
    if (rl_lock_take_cancel(l)) {
        *rc = rl_error(REDIS_LOCK_ECANCELED, "acquire of %s canceled", l->name);
        return JUDGED_STOP;
    }
    int64_t now = rl_now_ms();
    if (st->timeout_ms == 0 || now >= st->deadline) {
        *rc = rl_error(REDIS_LOCK_BUSY, "%s is held by another owner", l->name);
        return JUDGED_STOP;
    }
    if (l->opts.shared && res->next >= 0) {
        /* a writer waits: sleep until its lease would lapse or the holders' key expire
         * (its release signal is for it, not for us) */
        *until = st->deadline;
        if (now + res->next + 1 < *until)
            *until = now + res->next + 1;
        if (res->pttl >= 0 && now + res->pttl + 1 < *until)
            *until = now + res->pttl + 1;
        return JUDGED_SLEEP;
    }
    if (res->pttl == -2)
        return JUDGED_TRY_AGAIN; /* freed between the SET and the GET */
    st->writer |= !l->opts.fair && !l->opts.shared && res->next >= 0;
    *until = st->deadline;
    if (l->opts.fair)
        *until = rl_fair_wait_until(l, res, now, st->deadline);
    else if (res->pttl >= 0 && now + res->pttl + 1 < *until)
        *until = now + res->pttl + 1; /* Redis deletes the key 1 ms after PTTL reaches 0 */
    if (!l->opts.fair && res->next >= 0 && now + l->opts.queue_lease_ms / 3 < *until)
        *until = now + l->opts.queue_lease_ms / 3; /* the next try renews our writer lease */
    return JUDGED_WAIT;
}

/* Wait for a release signal until `until`; the try queued behind the wait (see
 * wait_signal) leaves its answer in st->res for the judge. A broken connection is not an
 * error here: the caller reconnects (after a back-off). */
static int acquire_wait(acquire_state *st, int64_t until)
{
    redis_lock *l = st->l;
    redis_lock_client *c = l->client;
    rl_log(c, LOG_DEBUG, "waiting for %s (holder's ttl %lld ms)", l->name,
           (long long)st->res.pttl);
    if (until != RL_INFINITE)
        rl_client_ensure_spare(c);
    wait_outcome w;
    st->sent_ms = rl_now_ms(); /* the queued try runs after this: a safe lower bound */
    int rc = wait_signal(l, &st->conn, until, &w);
    if (w.maybe_tried)
        st->unanswered = true;
    if (w.have_try) {
        st->acked_known = false; /* the queued try came without a WAIT */
        st->res = w.res;
        st->have_answer = true;
        st->sent_ms = w.tried_ms; /* it ran when the BLPOP returned, about when it answered */
        /* a shared holder that entered on a release signal passes it on to the next
         * waiter (another shared one may enter too); one refused for a waiting writer
         * passes it on to that writer */
        if (l->opts.shared && w.popped && (w.res.acquired || w.res.next >= 0))
            pass_signal_on(l, &st->conn);
    }
    if (rc == REDIS_LOCK_ECONN) {
        rl_log(c, LOG_WARNING, "%s; reconnecting", redis_lock_last_error());
        return acquire_back_off(st);
    }
    if (rc < 0)
        return rc;
    if (atomic_load(&l->cancel) && !(st->have_answer && st->res.acquired)) {
        /* (a lock the queued try won is released by acquire_taken, like any other) */
        rl_lock_take_cancel(l);
        if (!st->unanswered && w.popped && !st->have_answer)
            pass_signal_on(l, &st->conn);
        return rl_error(REDIS_LOCK_ECANCELED, "acquire of %s canceled", l->name);
    }
    /* woken or timed out: the queued try's answer (or a new try) is judged next, and the
     * deadline after it, so a signal that raced our timer is still used */
    return 0;
}

/* Give back what an unanswered try may have taken: run the release script (it deletes
 * the key only if it holds our id). Best effort: if the server cannot be reached now
 * either, the key stays until its expiry. The error being returned keeps its message. */
static void acquire_give_back(acquire_state *st)
{
    redis_lock *l = st->l;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", redis_lock_last_error());
    int rc = l->opts.fair ? rl_fair_leave(l, RL_FAIR_GIVE_BACK) : rl_lock_release_now(l);
    rl_log(l->client, LOG_DEBUG, "giving back what an unanswered try of %s may have taken: %s",
           l->name, rc == 0 ? "released" : redis_lock_last_error());
    rl_error(0, "%s", msg);
    st->unanswered = false;
}

/* Every way out of an acquire but success: the connection goes back to the pool, and
 * what an unanswered try may have taken is given back. Returns rc. */
static int acquire_end(acquire_state *st, int rc)
{
    rl_client_put(st->l->client, st->conn, true);
    st->conn = NULL;
    if (st->writer)
        rl_writer_leave(st->l);
    if (st->unanswered) {
        acquire_give_back(st);
    } else if (st->queued && rc != REDIS_LOCK_EALREADY) {
        /* a fair waiter that gives up leaves the queue at once, handing on a grant it
         * has not claimed; if that fails, its lease lapses */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", redis_lock_last_error());
        int lrc = rl_fair_leave(st->l, RL_FAIR_LEAVE);
        if (lrc)
            rl_log(st->l->client, LOG_DEBUG, "leaving the queue of %s: %s", st->l->name,
                   redis_lock_last_error());
        rl_error(0, "%s", msg);
    }
    return rc;
}

/* min_replicas: did enough replicas acknowledge the key we took? The try's own WAIT
 * answered, or (a try queued behind a wait, or one whose answer was lost) a WAIT now. If
 * not, the key is given back and the acquire fails with EREPLICA. */
static int acquire_acknowledged(acquire_state *st)
{
    redis_lock *l = st->l;
    redis_lock_client *c = l->client;
    if (c->url.min_replicas <= 0)
        return 0;
    int rc = 0;
    if (!st->acked_known || st->res.mine) {
        rc = st->conn ? rl_replica_wait(c, st->conn, &st->acked) : REDIS_LOCK_ECONN;
        if (rc && !rl_conn_reusable(rc)) {
            rl_conn_close(st->conn);
            st->conn = NULL;
        }
    }
    if (!rc && st->acked >= c->url.min_replicas)
        return 0;
    if (!rc)
        rc = rl_replica_error(c, st->acked, "acquire");
    char msg[512];
    snprintf(msg, sizeof msg, "%s", redis_lock_last_error());
    rl_client_put(c, st->conn, true);
    st->conn = NULL;
    int rel = rl_lock_release_now(l);
    rl_log(c, LOG_WARNING, "%s; %s", msg,
           rel == 0 ? "the key was given back" : "could not give the key back (it expires)");
    return rl_error(rc, "%s", msg);
}

/* The lock is ours: record it, start renewing it. */
static int acquire_taken(acquire_state *st)
{
    redis_lock *l = st->l;
    redis_lock_client *c = l->client;
    int rc;
    if ((rc = acquire_acknowledged(st)))
        return rc;
    rl_client_put(c, st->conn, true);
    st->conn = NULL;
    l->token = st->res.token;
    l->acquired_at_ms = st->sent_ms;
    l->renewed_ms = st->sent_ms;
    atomic_store(&l->lost, false);
    if (rl_lock_take_cancel(l)) {
        rl_lock_release_now(l);
        return rl_error(REDIS_LOCK_ECANCELED, "acquire of %s canceled (the lock won at that "
                        "moment was released)", l->name);
    }
    if (l->opts.auto_renewal && (rc = rl_renewer_add(l))) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", redis_lock_last_error());
        rl_lock_release_now(l);
        return rl_error(rc, "%s", msg);
    }
    if (l->opts.fencing)
        rl_log(c, LOG_INFO, "acquired %s (fencing token %lld)", l->name, (long long)l->token);
    else
        rl_log(c, LOG_INFO, "acquired %s", l->name);
    return 0;
}

int redis_lock_acquire(redis_lock *l, int64_t timeout_ms)
{
    int rc = rl_lock_enter(l);
    if (rc)
        return rc;
    if (timeout_ms < -1)
        return rl_error(REDIS_LOCK_EINVAL, "timeout_ms must be -1, 0 or > 0 (got %lld)",
                        (long long)timeout_ms);
    if (timeout_ms > 0 && l->opts.expire_ms > 0 && !l->opts.auto_renewal &&
        timeout_ms > l->opts.expire_ms)
        return rl_error(REDIS_LOCK_ETOOLONG,
                        "timeout %lld ms is longer than the lock's expiry %lld ms without "
                        "auto_renewal", (long long)timeout_ms, (long long)l->opts.expire_ms);
    if (rl_lock_take_cancel(l))
        return rl_error(REDIS_LOCK_ECANCELED, "acquire of %s canceled", l->name);

    acquire_state st = {.l = l, .timeout_ms = timeout_ms};
    /* rounded up, so that the wait never ends before timeout_ms has fully passed */
    st.deadline = timeout_ms < 0 || timeout_ms > RL_MAX_MS
                      ? RL_INFINITE
                      : (rl_now_us() + 999) / 1000 + timeout_ms;
    rl_log(l->client, LOG_DEBUG, "acquiring %s as %s", l->name, l->id);
    for (;;) {
        if (!st.conn && (rc = acquire_connect(&st)))
            return acquire_end(&st, rc);
        if (!st.have_answer && (rc = acquire_try(&st))) {
            if (rc == REDIS_LOCK_ECONN && acquire_may_reconnect(&st) &&
                !(rc = acquire_back_off(&st)))
                continue;
            return acquire_end(&st, rc);
        }
        int64_t until = RL_INFINITE;
        switch (acquire_judge(&st, &until, &rc)) {
        case JUDGED_TAKEN:
            if (st.conn && !rl_client_conn_current(l->client, st.conn)) {
                /* Sentinel: won on a node that is master no more (a try queued behind a
                 * wait that began before the switch). That key is nobody's lock: the new
                 * master decides. Try there (the old key expires, or goes with the
                 * demotion). */
                rl_log(l->client, LOG_WARNING, "%s was taken on a former master; trying the "
                       "new one", l->name);
                rl_conn_close(st.conn);
                st.conn = NULL;
                st.unanswered = false;
                if ((rc = acquire_back_off(&st)))
                    return acquire_end(&st, rc);
                break;
            }
            return acquire_taken(&st);
        case JUDGED_STOP:
            return acquire_end(&st, rc);
        case JUDGED_TRY_AGAIN:
            break;
        case JUDGED_SLEEP:
            if ((rc = acquire_sleep(&st, until)))
                return acquire_end(&st, rc);
            break;
        case JUDGED_WAIT:
            if ((rc = acquire_wait(&st, until)))
                return acquire_end(&st, rc);
            break;
        }
    }
}
