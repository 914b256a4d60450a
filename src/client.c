/* The client: options, a thread-safe pool of connections, fork detection, logging. */
#include "internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/* fork(): a child must not use its parent's connections nor count on its renewal
 * thread. A pthread_atfork child handler bumps a generation that every public call
 * compares with its client's. */
static atomic_ulong fork_generation;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t fork_mu = PTHREAD_MUTEX_INITIALIZER;

/* The fork guard. A renewal thread is the library's, so the application cannot keep it
 * still while it forks; if the thread is inside the allocator, hiredis or OpenSSL at that
 * moment, the locks it holds there are copied locked into the child, and the child hangs
 * the first time it needs them (starting its own renewal thread, say). So such a thread
 * is counted in the guard while it works and leaves it whenever it waits (for the network,
 * or in the application's log callback); the prepare handler waits until no thread is in,
 * and keeps new ones out until fork() returns, so fork() waits only for work in hand (CPU
 * time, never a server's reply) and the child finds every such lock free. A waiting fork
 * goes first: a stream of renewals cannot hold it back. The guard is a count under a
 * mutex held briefly, not a lock held across fork(), so the child inherits no lock held
 * by the forking thread either. */
static pthread_mutex_t guard_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t guard_cv = PTHREAD_COND_INITIALIZER;
static unsigned guard_workers;             /* threads inside the guard */
static unsigned guard_forks;               /* fork()s waiting for them, or under way */
static _Thread_local unsigned guard_depth; /* this thread's rl_fork_guard_enter()s */

static void guard_take(void)
{
    pthread_mutex_lock(&guard_mu);
    while (guard_forks) /* a fork waits: it goes first */
        pthread_cond_wait(&guard_cv, &guard_mu);
    guard_workers++;
    pthread_mutex_unlock(&guard_mu);
}

static void guard_give(void)
{
    pthread_mutex_lock(&guard_mu);
    if (--guard_workers == 0 && guard_forks)
        pthread_cond_broadcast(&guard_cv);
    pthread_mutex_unlock(&guard_mu);
}

void rl_fork_guard_enter(void)
{
    if (guard_depth++ == 0)
        guard_take();
}

void rl_fork_guard_leave(void)
{
    if (--guard_depth == 0)
        guard_give();
}

unsigned rl_fork_guard_suspend(void)
{
    unsigned depth = guard_depth;
    if (depth) {
        guard_depth = 0;
        guard_give();
    }
    return depth;
}

void rl_fork_guard_resume(unsigned depth)
{
    if (depth) {
        guard_take();
        guard_depth = depth;
    }
}

static void on_fork_prepare(void)
{
    pthread_mutex_lock(&guard_mu);
    guard_forks++;
    /* every other thread out of the guard (a thread that forks inside it cannot wait for
     * itself) */
    while (guard_workers > (guard_depth ? 1u : 0u))
        pthread_cond_wait(&guard_cv, &guard_mu);
    pthread_mutex_unlock(&guard_mu);
}

static void on_fork_parent(void)
{
    pthread_mutex_lock(&guard_mu);
    if (--guard_forks == 0)
        pthread_cond_broadcast(&guard_cv);
    pthread_mutex_unlock(&guard_mu);
}

static void on_fork_child(void)
{
    atomic_fetch_add(&fork_generation, 1);
    pthread_mutex_init(&fork_mu, NULL);
    /* the forking thread is the child's only one: a thread that waited to enter the
     * guard, or to fork, is gone, and may have held guard_mu */
    pthread_mutex_init(&guard_mu, NULL);
    pthread_cond_init(&guard_cv, NULL);
    guard_forks = 0;
    guard_workers = guard_depth ? 1 : 0;
    rl_renewer_atfork_child();
}

static void register_atfork(void)
{
    pthread_atfork(on_fork_prepare, on_fork_parent, on_fork_child);
}

unsigned long rl_fork_gen(void)
{
    return atomic_load(&fork_generation);
}

void rl_client_check_fork(redis_lock_client *c)
{
    unsigned long gen = rl_fork_gen();
    if (__atomic_load_n(&c->fork_gen, __ATOMIC_ACQUIRE) == gen)
        return;
    pthread_mutex_lock(&fork_mu);
    if (c->fork_gen != gen) {
        /* We are the child; the threads that held c->mu at fork() are gone. Close our
         * copies of the parent's sockets without a word to Redis. */
        pthread_mutex_init(&c->mu, NULL);
        rl_conn *conn = c->pool;
        c->pool = NULL;
        while (conn) {
            rl_conn *next = conn->next;
            rl_conn_close(conn);
            conn = next;
        }
        pthread_mutex_init(&c->resolve_mu, NULL);
        rl_sentinel_free(c); /* the parent's subscription: closed without a word */
        rl_renewer_forget(c);
        __atomic_store_n(&c->fork_gen, gen, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&fork_mu);
}

void rl_log(redis_lock_client *c, int level, const char *fmt, ...)
{
    if (!c->opts.log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* the application's code never runs under the fork guard */
    unsigned guard = rl_fork_guard_suspend();
    c->opts.log(level, msg, c->opts.log_payload);
    rl_fork_guard_resume(guard);
}

/* Where each version's fields end (see rl_options_copy). */
static const size_t client_options_ends[] = {
    [1] = RL_FIELD_END(redis_lock_client_options, log_payload),
    [2] = RL_FIELD_END(redis_lock_client_options, tls_insecure),
    [3] = RL_FIELD_END(redis_lock_client_options, replica_timeout_ms),
};
_Static_assert(sizeof client_options_ends / sizeof *client_options_ends ==
                   REDIS_LOCK_CLIENT_OPTIONS_VERSION + 1,
               "a new REDIS_LOCK_CLIENT_OPTIONS_VERSION needs its entry in client_options_ends");

void redis_lock_client_options_init_version(redis_lock_client_options *opts, unsigned version)
{
    redis_lock_client_options d;
    memset(&d, 0, sizeof d);
    d.connect_timeout_ms = 2000;
    d.command_timeout_ms = 2000;
    d.replica_timeout_ms = 1000;
    rl_options_init(opts, &d, client_options_ends, REDIS_LOCK_CLIENT_OPTIONS_VERSION, version);
}

void(redis_lock_client_options_init)(redis_lock_client_options *opts)
{
    redis_lock_client_options_init_version(opts, 1);
}

/* Sentinel: take in what +switch-master said (subscribing again, at most once a second,
 * when the subscription is gone). */
static void sentinel_check(redis_lock_client *c)
{
    int64_t now = rl_now_ms();
    pthread_mutex_lock(&c->mu);
    rl_sentinel_poll_locked(c);
    bool resub = !c->sub && now >= c->sub_retry_ms;
    if (resub)
        c->sub_retry_ms = now + 1000;
    pthread_mutex_unlock(&c->mu);
    if (resub)
        rl_sentinel_resubscribe(c);
}

bool rl_client_conn_current(redis_lock_client *c, rl_conn *conn)
{
    if (!c->url.sentinel)
        return true;
    sentinel_check(c);
    pthread_mutex_lock(&c->mu);
    bool ok = conn->epoch == c->epoch && !conn->demoted;
    pthread_mutex_unlock(&c->mu);
    if (!ok)
        rl_log(c, LOG_DEBUG, "dropping a connection to %s:%d, a former master", conn->host,
               conn->port);
    return ok;
}

int rl_client_get(redis_lock_client *c, rl_conn **out)
{
    if (c->url.sentinel)
        sentinel_check(c);
    for (;;) {
        pthread_mutex_lock(&c->mu);
        rl_conn *conn = c->pool;
        if (conn)
            c->pool = conn->next;
        unsigned long epoch = c->epoch;
        pthread_mutex_unlock(&c->mu);
        if (!conn)
            break;
        if (c->url.sentinel && conn->epoch != epoch) {
            rl_log(c, LOG_DEBUG, "dropping a connection to %s:%d, a former master", conn->host,
                   conn->port);
            rl_conn_close(conn);
            continue;
        }
        if (rl_conn_idle_ok(conn)) {
            conn->next = NULL;
            *out = conn;
            return 0;
        }
        rl_log(c, LOG_DEBUG, "dropping a stale connection to %s", c->url.masked);
        rl_conn_close(conn);
    }
    return rl_conn_open(c, out);
}

int rl_client_command(redis_lock_client *c, redisReply **out, int argc, const char **argv,
                      const size_t *argvlen)
{
    *out = NULL;
    rl_conn *conn;
    int rc = rl_client_get(c, &conn);
    if (rc)
        return rc;
    rc = rl_conn_command(c, conn, out, argc, argv, argvlen);
    rl_client_put(c, conn, rl_conn_reusable(rc));
    if (rc && *out) {
        freeReplyObject(*out);
        *out = NULL;
    }
    return rc;
}

void rl_client_ensure_spare(redis_lock_client *c)
{
    pthread_mutex_lock(&c->mu);
    bool have = c->pool != NULL;
    pthread_mutex_unlock(&c->mu);
    rl_conn *conn;
    if (!have && rl_client_get(c, &conn) == 0)
        rl_client_put(c, conn, true);
}

void rl_client_put(redis_lock_client *c, rl_conn *conn, bool ok)
{
    if (!conn)
        return;
    if (c->url.sentinel && (conn->demoted || !ok))
        /* a lost connection: the master may have moved; demoted: it did */
        rl_sentinel_invalidate(c, conn->epoch, conn->demoted);
    if (!ok || conn->demoted || conn->fork_gen != rl_fork_gen()) {
        rl_conn_close(conn);
        return;
    }
    pthread_mutex_lock(&c->mu);
    if (c->url.sentinel && conn->epoch != c->epoch) {
        pthread_mutex_unlock(&c->mu);
        rl_conn_close(conn);
        return;
    }
    conn->next = c->pool;
    c->pool = conn;
    if (c->url.unix_socket)
        snprintf(c->last_node, sizeof c->last_node, "%s", conn->host);
    else
        snprintf(c->last_node, sizeof c->last_node, strchr(conn->host, ':') ? "[%s]:%d" : "%s:%d",
                 conn->host, conn->port);
    pthread_mutex_unlock(&c->mu);
}

/* The options' Sentinel and replica fields, where the URL did not set them (a query
 * parameter overrides its field). */
static int take_sentinel_options(redis_lock_client *c)
{
    rl_url *u = &c->url;
    const redis_lock_client_options *o = &c->opts;
    if ((o->sentinel_user || o->sentinel_password) && !u->sentinel) {
        rl_log(c, LOG_DEBUG, "sentinel_user/sentinel_password ignored: not a Sentinel URL");
    } else {
        if (!u->sentinel_user && o->sentinel_user && !(u->sentinel_user = rl_strdup(o->sentinel_user)))
            return rl_error(REDIS_LOCK_ENOMEM, "out of memory creating a client");
        if (!u->sentinel_password && o->sentinel_password &&
            !(u->sentinel_password = rl_strdup(o->sentinel_password)))
            return rl_error(REDIS_LOCK_ENOMEM, "out of memory creating a client");
    }
    if (u->min_replicas < 0)
        u->min_replicas = o->min_replicas;
    if (u->replica_timeout_ms < 0)
        u->replica_timeout_ms = o->replica_timeout_ms;
    if (u->min_replicas < 0 || u->min_replicas > 1000)
        return rl_error(REDIS_LOCK_EINVAL, "min_replicas must be 0 to 1000");
    if (u->replica_timeout_ms < 0)
        return rl_error(REDIS_LOCK_EINVAL, "replica_timeout_ms must be >= 0");
    if (u->replica_timeout_ms == 0)
        u->replica_timeout_ms = 1000;
    return 0;
}

int redis_lock_client_open(redis_lock_client **out, const redis_lock_client_options *opts)
{
    rl_error_clear();
    if (!out)
        return rl_error(REDIS_LOCK_EINVAL, "out is NULL");
    *out = NULL;
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    if (opts) {
        int rc = rl_options_copy(&o, opts, client_options_ends,
                                 REDIS_LOCK_CLIENT_OPTIONS_VERSION, "redis_lock_client_options");
        if (rc)
            return rc;
    }
    opts = &o;
    if (opts->connect_timeout_ms <= 0 || opts->command_timeout_ms <= 0)
        return rl_error(REDIS_LOCK_EINVAL, "timeouts must be > 0 ms");
    pthread_once(&atfork_once, register_atfork);
    redis_lock_client *c = rl_calloc(1, sizeof *c);
    if (!c)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory creating a client");
    c->opts = *opts;
    c->opts.url = NULL;
    c->fork_gen = rl_fork_gen();
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->resolve_mu, NULL);
    const char *url = opts->url;
    if (!url)
        url = getenv("REDIS_URL");
    if (!url || !*url)
        url = "redis://127.0.0.1:6379/0";
    int rc = rl_url_parse(&c->url, url);
    if (!rc)
        rc = take_sentinel_options(c);
    if (rc) {
        rl_url_free(&c->url);
        pthread_mutex_destroy(&c->mu);
        pthread_mutex_destroy(&c->resolve_mu);
        free(c);
        return rc;
    }
    if (c->url.tls)
        rc = rl_tls_client_init(c);
    /* the caller's strings need not outlive this call: TLS has what it needs in c->url */
    c->opts.tls_cacert = c->opts.tls_cacertdir = c->opts.tls_cert = c->opts.tls_key = NULL;
    c->opts.tls_sni = NULL;
    c->opts.sentinel_user = c->opts.sentinel_password = NULL;
    if (rc) {
        redis_lock_client_close(c);
        return rc;
    }
    rl_conn *conn;
    rc = rl_client_get(c, &conn);
    if (rc) {
        redis_lock_client_close(c);
        return rc;
    }
    rl_client_put(c, conn, true);
    *out = c;
    return 0;
}

void redis_lock_client_close(redis_lock_client *c)
{
    if (!c)
        return;
    rl_client_check_fork(c);
    rl_renewer_stop(c);
    rl_conn *conn = c->pool;
    while (conn) {
        rl_conn *next = conn->next;
        rl_conn_close(conn);
        conn = next;
    }
    rl_sentinel_free(c);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->resolve_mu);
    rl_tls_client_free(c);
    rl_url_free(&c->url);
    free(c);
}

int redis_lock_client_node(redis_lock_client *c, char *buf, size_t size)
{
    rl_error_clear();
    if (!c || !buf || !size)
        return rl_error(REDIS_LOCK_EINVAL, "client and buf must not be NULL");
    rl_client_check_fork(c);
    pthread_mutex_lock(&c->mu);
    size_t n = strlen(c->last_node);
    bool fits = n < size;
    if (fits)
        memcpy(buf, c->last_node, n + 1);
    pthread_mutex_unlock(&c->mu);
    if (!fits)
        return rl_error(REDIS_LOCK_EINVAL, "buffer of %zu bytes too small for the node name",
                        size);
    return 0;
}
