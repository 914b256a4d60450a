/* One connection to Redis. hiredis formats the commands and parses the replies; the
 * socket is ours, so that it is close-on-exec from birth, never raises SIGPIPE
 * (MSG_NOSIGNAL) and every wait is a poll() against a monotonic deadline. Bytes move
 * through a transport: the plain socket here, or TLS (tls.c) for rediss://. */
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <syslog.h>
#include <unistd.h>

int rl_buf_add(rl_buf *b, int argc, const char **argv, const size_t *argvlen)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
    if (n < 0)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory formatting a command");
    size_t len = (size_t)n;
    if (!b->data) {
        b->data = b->small;
        b->cap = sizeof b->small;
    }
    if (b->len + len > b->cap) {
        size_t cap = b->cap * 2;
        while (cap < b->len + len)
            cap *= 2;
        bool fixed = b->data == b->small || b->borrowed;
        char *d = fixed ? rl_malloc(cap) : rl_realloc(b->data, cap);
        if (!d) {
            redisFreeCommand(cmd);
            return rl_error(REDIS_LOCK_ENOMEM, "out of memory formatting a command");
        }
        if (fixed)
            memcpy(d, b->data, b->len);
        b->data = d;
        b->cap = cap;
        b->borrowed = false;
    }
    memcpy(b->data + b->len, cmd, len);
    b->len += len;
    b->count++;
    redisFreeCommand(cmd);
    return 0;
}

void rl_buf_borrow(rl_buf *b, char *mem, size_t cap)
{
    if (mem && cap > sizeof b->small) {
        b->data = mem;
        b->cap = cap;
        b->borrowed = true;
    }
}

void rl_buf_free(rl_buf *b)
{
    if (b->data != b->small && !b->borrowed)
        free(b->data);
    b->borrowed = false;
    b->data = NULL;
    b->len = b->cap = 0;
    b->count = 0;
}

int rl_wait_fd(int fd, short events, int64_t deadline_ms, int wake_fd)
{
    for (;;) {
        struct pollfd p[2] = {{fd, events, 0}, {wake_fd, POLLIN, 0}};
        struct timespec ts, *tsp = NULL;
        if (deadline_ms != RL_INFINITE) {
            /* microsecond precision: a poll() in whole ms would add up to 1 ms per wait */
            int64_t left_us = deadline_ms * 1000 - rl_now_us();
            if (left_us <= 0)
                return 0;
            /* the kernel may fire a poll up to 0.1% of its timeout late: aim a little
             * early and finish with a short wait (the loop comes back here) */
            if (left_us > 2000)
                left_us -= left_us / 500 + 50;
            ts.tv_sec = (time_t)(left_us / 1000000);
            ts.tv_nsec = (long)(left_us % 1000000) * 1000L;
            tsp = &ts;
        }
        unsigned guard = rl_fork_guard_suspend(); /* a fork need not wait for a server */
        int n = ppoll(p, wake_fd >= 0 ? 2 : 1, tsp, NULL);
        int err = errno;
        rl_fork_guard_resume(guard);
        errno = err;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            continue; /* re-check the deadline */
        if (wake_fd >= 0 && (p[1].revents & POLLIN))
            return 2;
        return 1;
    }
}

/* ---- the plain transport ---- */

static ssize_t tcp_read(rl_conn *conn, void *buf, size_t n, short *wait)
{
    *wait = POLLIN;
    return recv(conn->fd, buf, n, 0);
}

static ssize_t tcp_write(rl_conn *conn, const void *buf, size_t n, short *wait)
{
    *wait = POLLOUT;
    return send(conn->fd, buf, n, MSG_NOSIGNAL);
}

static size_t tcp_pending(const rl_conn *conn)
{
    (void)conn;
    return 0;
}

static void tcp_close(rl_conn *conn)
{
    (void)conn;
}

static const char *tcp_error(const rl_conn *conn, int err, int *code)
{
    (void)conn;
    *code = REDIS_LOCK_ECONN;
    return strerror(err);
}

static const rl_transport tcp_transport = {tcp_read, tcp_write, tcp_pending, tcp_close,
                                           tcp_error};

/* A read or write failed with errno err: the error, with the transport's reason. */
static int io_error(redis_lock_client *c, const rl_conn *conn, const char *doing, int err)
{
    int code = REDIS_LOCK_ECONN;
    const char *why = conn->tr->error(conn, err, &code);
    return rl_error(code, "%s Redis at %s: %s", doing, c->url.masked, why);
}

static int connect_socket(redis_lock_client *c, const char *host, int port, int64_t deadline,
                          int *out_fd)
{
    const rl_url *u = &c->url;
    struct addrinfo *res = NULL, *ai;
    struct sockaddr_un sun;
    int fd = -1, err = 0;
    char what[300];

    if (u->unix_socket) {
        if (strlen(u->host) >= sizeof sun.sun_path)
            return rl_error(REDIS_LOCK_EINVAL, "unix socket path too long: %s", u->host);
        memset(&sun, 0, sizeof sun);
        sun.sun_family = AF_UNIX;
        strcpy(sun.sun_path, u->host);
        snprintf(what, sizeof what, "%s", u->host);
    } else {
        struct addrinfo hints = {0};
        char portbuf[16];
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        snprintf(portbuf, sizeof portbuf, "%d", port);
        unsigned guard = rl_fork_guard_suspend(); /* nor for a name server */
        int gai = getaddrinfo(host, portbuf, &hints, &res);
        int gai_errno = errno;
        rl_fork_guard_resume(guard);
        errno = gai_errno;
        if (gai)
            return rl_error(REDIS_LOCK_ECONN, "cannot resolve %s: %s", host,
                            gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
        snprintf(what, sizeof what, "%s:%d", host, port);
    }
    for (ai = res;; ai = ai->ai_next) {
        const struct sockaddr *sa;
        socklen_t salen;
        int family;
        if (u->unix_socket) {
            sa = (const struct sockaddr *)&sun;
            salen = sizeof sun;
            family = AF_UNIX;
        } else {
            if (!ai)
                break;
            sa = ai->ai_addr;
            salen = ai->ai_addrlen;
            family = ai->ai_family;
        }
        fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            err = errno;
        } else if (connect(fd, sa, salen) == 0) {
            break;
        } else if (errno == EINPROGRESS) {
            int w = rl_wait_fd(fd, POLLOUT, deadline, -1);
            socklen_t elen = sizeof err;
            if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 && err == 0)
                break;
            if (w == 0)
                err = ETIMEDOUT;
        } else {
            err = errno;
        }
        if (fd >= 0)
            close(fd);
        fd = -1;
        if (u->unix_socket)
            break;
    }
    if (res)
        freeaddrinfo(res);
    if (fd < 0)
        return rl_error(REDIS_LOCK_ECONN, "cannot connect to %s: %s", what,
                        strerror(err ? err : ECONNREFUSED));
    if (!u->unix_socket) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    }
    *out_fd = fd;
    return 0;
}

void rl_conn_close(rl_conn *conn)
{
    if (!conn)
        return;
    if (conn->tr)
        conn->tr->close(conn);
    if (conn->fd >= 0)
        close(conn->fd);
    if (conn->reader)
        redisReaderFree(conn->reader);
    free(conn);
}

int rl_conn_send(redis_lock_client *c, rl_conn *conn, const char *data, size_t len)
{
    int64_t deadline = rl_now_ms() + c->opts.command_timeout_ms;
    while (len) {
        short ev = POLLOUT;
        ssize_t n = conn->tr->write(conn, data, len, &ev);
        if (n > 0) {
            data += n;
            len -= (size_t)n;
            deadline = rl_now_ms() + c->opts.command_timeout_ms; /* silence, not size */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = rl_wait_fd(conn->fd, ev, deadline, -1);
            if (w == 1)
                continue;
            return rl_error(REDIS_LOCK_ECONN, "writing to Redis at %s: %s", c->url.masked,
                            w == 0 ? "timed out" : strerror(errno));
        }
        return io_error(c, conn, "writing to", n < 0 ? errno : EPIPE);
    }
    return 0;
}

/* The reader failed: out of memory (hiredis reports it as REDIS_ERR_OOM), or a protocol
 * error; either way the connection's stream is lost. */
static int reader_error(redis_lock_client *c, rl_conn *conn)
{
    if (conn->reader->err == REDIS_ERR_OOM)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory reading a reply from Redis");
    return rl_error(REDIS_LOCK_ECONN, "bad reply from Redis at %s: %s", c->url.masked,
                    conn->reader->errstr);
}

/* Under Sentinel, a reply that says the node is a master no more: READONLY (a write on a
 * replica, from a command or a script), or a blocked command ended by the role change. */
static bool is_demotion(const redisReply *r)
{
    static const char *const prefixes[] = {"READONLY ", "UNBLOCKED force unblock"};
    if (r->type != REDIS_REPLY_ERROR)
        return false;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (r->len >= strlen(prefixes[i]) && memcmp(r->str, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return false;
}

int rl_conn_read(redis_lock_client *c, rl_conn *conn, redisReply **out, int64_t deadline_ms,
                 int wake_fd)
{
    *out = NULL;
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(conn->reader, &reply) != REDIS_OK)
            return reader_error(c, conn);
        if (reply) {
            if (c->url.sentinel && is_demotion(reply)) {
                redisReply *e = reply;
                conn->demoted = true;
                int rc = rl_error(REDIS_LOCK_ECONN, "%s:%d is no longer the master of %s: %.*s",
                                  conn->host, conn->port, c->url.master_name,
                                  (int)(e->len > 200 ? 200 : e->len), e->str);
                freeReplyObject(reply);
                return rc;
            }
            *out = reply;
            return 0;
        }
        /* Read until the transport has nothing more before polling: TLS may hold whole
         * records (a whole reply) that the socket no longer shows as readable. */
        char buf[16384];
        short ev = POLLIN;
        ssize_t n = conn->tr->read(conn, buf, sizeof buf, &ev);
        if (n > 0) {
            if (redisReaderFeed(conn->reader, buf, (size_t)n) != REDIS_OK)
                return reader_error(c, conn);
            /* the command timeout bounds silence, not the transfer of a large reply */
            if (wake_fd < 0 && deadline_ms != RL_INFINITE)
                deadline_ms = rl_now_ms() + c->opts.command_timeout_ms;
            continue;
        }
        if (n == 0)
            return rl_error(REDIS_LOCK_ECONN, "Redis at %s closed the connection",
                            c->url.masked);
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return io_error(c, conn, "reading from", errno);
        int w = rl_wait_fd(conn->fd, ev, deadline_ms, wake_fd);
        if (w == 2)
            return 1;
        if (w == 0 && wake_fd >= 0)
            return 2; /* a wait's own deadline: not an error */
        if (w == 0)
            return rl_error(REDIS_LOCK_ECONN, "Redis at %s did not answer in %d ms",
                            c->url.masked, c->opts.command_timeout_ms);
        if (w < 0)
            return rl_error(REDIS_LOCK_ECONN, "waiting for Redis at %s: %s", c->url.masked,
                            strerror(errno));
    }
}

/* Does an error reply refuse us for who we are (credentials, ACL) rather than for what
 * we asked? */
static bool is_auth_refusal(const redisReply *r)
{
    static const char *const codes[] = {"NOAUTH", "WRONGPASS", "NOPERM"};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        size_t n = strlen(codes[i]);
        if (r->len >= n && memcmp(r->str, codes[i], n) == 0 &&
            (r->len == n || r->str[n] == ' '))
            return true;
    }
    return false;
}

int rl_reply_error(const redisReply *r, const char *what)
{
    if (r && r->type == REDIS_REPLY_ERROR)
        return rl_error(is_auth_refusal(r) ? REDIS_LOCK_EAUTH : REDIS_LOCK_ESERVER, "%s: %.*s",
                        what, (int)(r->len > 300 ? 300 : r->len), r->str);
    return 0;
}

int rl_conn_pipeline(redis_lock_client *c, rl_conn *conn, const rl_buf *b, redisReply **out)
{
    int rc = rl_conn_send(c, conn, b->data, b->len);
    for (int i = 0; i < b->count; i++)
        out[i] = NULL;
    if (rc)
        return rc;
    int64_t deadline = rl_now_ms() + c->opts.command_timeout_ms;
    for (int i = 0; i < b->count; i++) {
        rc = rl_conn_read(c, conn, &out[i], deadline, -1);
        if (rc) {
            for (int j = 0; j < i; j++) {
                freeReplyObject(out[j]);
                out[j] = NULL;
            }
            return rc;
        }
    }
    return 0;
}

int rl_conn_command(redis_lock_client *c, rl_conn *conn, redisReply **out, int argc,
                    const char **argv, const size_t *argvlen)
{
    rl_buf b = {0};
    int rc = rl_buf_add(&b, argc, argv, argvlen);
    if (!rc)
        rc = rl_conn_pipeline(c, conn, &b, out);
    rl_buf_free(&b);
    if (!rc)
        rc = rl_reply_error(*out, argv[0]);
    return rc;
}

bool rl_conn_idle_ok(rl_conn *conn)
{
    if (conn->fork_gen != rl_fork_gen() || conn->tr->pending(conn))
        return false;
    struct pollfd p = {conn->fd, POLLIN | POLLRDHUP, 0};
    int n = poll(&p, 1, 0);
    if (n == 0)
        return true;
    if (n < 0 || !conn->tls || p.revents != POLLIN)
        return false;
    /* TLS: records that carry no data (a late session ticket, a key update) may arrive
     * after a reply; reading consumes them. Any data at all means a stale connection. */
    char b;
    short ev;
    return conn->tr->read(conn, &b, 1, &ev) < 0 && errno == EAGAIN && !conn->tr->pending(conn);
}

int rl_conn_connect(redis_lock_client *c, const char *host, int port, int64_t deadline,
                    rl_conn **out)
{
    int fd = -1, rc;
    *out = NULL;
    if ((rc = connect_socket(c, host, port, deadline, &fd)))
        return rc;
    rl_conn *conn = rl_calloc(1, sizeof *conn);
    if (!conn) {
        close(fd);
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory opening a connection");
    }
    conn->fd = fd;
    conn->tr = &tcp_transport;
    conn->fork_gen = rl_fork_gen();
    snprintf(conn->host, sizeof conn->host, "%s", host);
    conn->port = port;
    conn->reader = rl_reader_create();
    if (!conn->reader) {
        rl_conn_close(conn);
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory opening a connection");
    }
    if (c->tls_ctx && (rc = rl_tls_connect(c, conn, deadline))) {
        rl_conn_close(conn);
        return rc;
    }
    *out = conn;
    return 0;
}

/* Is a ROLE reply a master's? */
static bool role_is_master(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
           r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0;
}

/* One connection to host:port (the URL's, or the master the sentinels named): AUTH, SELECT,
 * CLIENT ID and, under Sentinel, ROLE in one round trip. *not_master: ROLE said otherwise. */
static int open_data(redis_lock_client *c, const char *host, int port, int64_t deadline,
                     rl_conn **out, bool *not_master)
{
    int rc;
    rl_conn *conn;
    *out = NULL;
    *not_master = false;
    if ((rc = rl_conn_connect(c, host, port, deadline, &conn)))
        return rc;
    /* AUTH, SELECT and CLIENT ID in one round trip. */
    rl_buf b = {0};
    char db[16];
    snprintf(db, sizeof db, "%d", c->url.db);
    const rl_url *u = &c->url;
    int nauth = 0;
    if (u->password) {
        const char *argv[3] = {"AUTH", u->user ? u->user : u->password, u->password};
        nauth = 1;
        rc = rl_buf_add(&b, u->user ? 3 : 2, argv, NULL);
    } else if (u->user) {
        rc = rl_error(REDIS_LOCK_EINVAL, "URL has a user name but no password");
    }
    if (!rc && u->db) {
        const char *argv[2] = {"SELECT", db};
        rc = rl_buf_add(&b, 2, argv, NULL);
    }
    if (!rc) {
        const char *argv[2] = {"CLIENT", "ID"};
        rc = rl_buf_add(&b, 2, argv, NULL);
    }
    if (!rc && c->url.sentinel) {
        const char *argv[1] = {"ROLE"};
        rc = rl_buf_add(&b, 1, argv, NULL);
    }
    redisReply *r[4] = {NULL, NULL, NULL, NULL};
    if (!rc)
        rc = rl_conn_pipeline(c, conn, &b, r);
    if (!rc) {
        int i = 0;
        if (nauth)
            rc = rl_reply_error(r[i++], "AUTH failed");
        if (!rc && u->db)
            rc = rl_reply_error(r[i++], "SELECT failed");
        else if (u->db)
            i++;
        if (!rc && r[i] && r[i]->type == REDIS_REPLY_INTEGER)
            conn->client_id = r[i]->integer;
        else if (!rc && r[i] && r[i]->type == REDIS_REPLY_ERROR &&
                 strncmp(r[i]->str, "NOPERM", 6) == 0)
            conn->client_id = 0; /* an ACL without CLIENT: waits end by dropping the conn */
        else if (!rc && r[i] && r[i]->type == REDIS_REPLY_ERROR)
            rc = rl_reply_error(r[i], "CLIENT ID failed");
        i++;
        if (!rc && c->url.sentinel && !role_is_master(r[i])) {
            *not_master = true;
            rc = rl_error(REDIS_LOCK_ECONN, "%s:%d is not the master of %s (ROLE: %s)", host,
                          port, c->url.master_name,
                          r[i] && r[i]->type == REDIS_REPLY_ARRAY && r[i]->elements &&
                                  r[i]->element[0]->type == REDIS_REPLY_STRING
                              ? r[i]->element[0]->str
                              : "no answer");
        }
    }
    for (int i = 0; i < 4; i++)
        if (r[i])
            freeReplyObject(r[i]);
    rl_buf_free(&b);
    if (rc) {
        rl_conn_close(conn);
        return rc;
    }
    rl_log(c, LOG_DEBUG, "connected to %s (%s:%d, client id %lld)", c->url.masked, host, port,
           conn->client_id);
    *out = conn;
    return 0;
}

int rl_conn_open(redis_lock_client *c, rl_conn **out)
{
    int64_t deadline = rl_now_ms() + c->opts.connect_timeout_ms;
    bool not_master;
    if (!c->url.sentinel)
        return open_data(c, c->url.host, c->url.port, deadline, out, &not_master);
    /* Sentinel: the master the sentinels name, if ROLE agrees; else ask again (backing off)
     * until the connect timeout. */
    rl_backoff bo = {0};
    for (;;) {
        char host[256];
        int port;
        unsigned long epoch;
        int rc = rl_sentinel_master(c, deadline, host, sizeof host, &port, &epoch);
        if (rc)
            return rc;
        rc = open_data(c, host, port, deadline, out, &not_master);
        if (!rc) {
            (*out)->epoch = epoch;
            return 0;
        }
        if (rc != REDIS_LOCK_ECONN)
            return rc;
        rl_sentinel_invalidate(c, epoch, not_master);
        int64_t wait = rl_backoff_next(&bo, 1000);
        if (rl_now_ms() + wait >= deadline)
            return rc;
        rl_log(c, LOG_INFO, "%s; asking the sentinels again in %lld ms", redis_lock_last_error(),
               (long long)wait);
        struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
        unsigned guard = rl_fork_guard_suspend(); /* a fork need not wait for a back-off */
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        rl_fork_guard_resume(guard);
    }
}
