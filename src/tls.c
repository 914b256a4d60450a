/* TLS (rediss://) under the library's own socket I/O: OpenSSL does the record layer, the
 * socket stays ours. One SSL_CTX per client; one SSL per connection, reached by conn.c
 * through the transport interface only (read, write, pending, close, error).
 *
 * - The SSL talks to the socket through a BIO of ours whose writes are
 *   send(MSG_NOSIGNAL): OpenSSL's socket BIO uses write(), which raises SIGPIPE.
 * - The handshake is non-blocking and bounded by the connect deadline.
 * - Closing frees the SSL without SSL_shutdown(): after fork() the socket is shared with
 *   the parent, and a close_notify from the child would end the parent's session. No
 *   session is cached or resumed, so a child never reuses a parent's session. */
#include "internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

typedef struct {
    SSL *ssl;
    bool cert_requested; /* the server asked for a client certificate */
    int code;      /* REDIS_LOCK_ECONN or REDIS_LOCK_EAUTH for the last failure */
    char why[256]; /* and its reason, OpenSSL's words */
} rl_tls;

/* ---- a socket BIO that never raises SIGPIPE ---- */

static BIO_METHOD *nosig_method;
static pthread_once_t nosig_once = PTHREAD_ONCE_INIT;

static int nosig_fd(BIO *b)
{
    return (int)(intptr_t)BIO_get_data(b);
}

static int nosig_write(BIO *b, const char *buf, int len)
{
    BIO_clear_retry_flags(b);
    ssize_t n = send(nosig_fd(b), buf, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)n;
}

static int nosig_read(BIO *b, char *buf, int len)
{
    BIO_clear_retry_flags(b);
    ssize_t n = recv(nosig_fd(b), buf, (size_t)len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)n;
}

static int nosig_puts(BIO *b, const char *s)
{
    return nosig_write(b, s, (int)strlen(s));
}

static long nosig_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_C_GET_FD:
        if (ptr)
            *(int *)ptr = nosig_fd(b);
        return nosig_fd(b);
    default:
        return 0;
    }
}

static void nosig_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "redis-lock socket");
    if (m && BIO_meth_set_write(m, nosig_write) && BIO_meth_set_read(m, nosig_read) &&
        BIO_meth_set_puts(m, nosig_puts) && BIO_meth_set_ctrl(m, nosig_ctrl)) {
        nosig_method = m;
        return;
    }
    BIO_meth_free(m);
}

/* ---- errors ---- */

/* Is this OpenSSL reason a refusal of a certificate (ours by the server: an alert; the
 * server's by us: verification)? Those are EAUTH; anything else is a connection failure. */
static bool is_cert_refusal(unsigned long e)
{
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
        return false;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        return true;
    default:
        return false;
    }
}

/* Record why the SSL call that returned ret failed (SSL_get_error() gave err). */
static void note_failure(rl_tls *t, int ret, int err)
{
    unsigned long e = ERR_peek_last_error();
    t->code = REDIS_LOCK_ECONN;
    if (err == SSL_ERROR_SSL) {
        long v = SSL_get_verify_result(t->ssl);
        if (v != X509_V_OK) {
            t->code = REDIS_LOCK_EAUTH;
            snprintf(t->why, sizeof t->why, "certificate verify failed: %s",
                     X509_verify_cert_error_string(v));
        } else if (e) {
            const char *r = ERR_reason_error_string(e);
            /* TLS 1.2 says only "handshake failure" when it wanted a certificate from us */
            bool refused_ours = t->cert_requested && ERR_GET_LIB(e) == ERR_LIB_SSL &&
                                ERR_GET_REASON(e) == SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE;
            if (is_cert_refusal(e) || refused_ours)
                t->code = REDIS_LOCK_EAUTH;
            int plain = ERR_GET_LIB(e) == ERR_LIB_SSL &&
                        (ERR_GET_REASON(e) == SSL_R_WRONG_VERSION_NUMBER ||
                         ERR_GET_REASON(e) == SSL_R_PACKET_LENGTH_TOO_LONG);
            bool refused = refused_ours || (is_cert_refusal(e) &&
                                            ERR_GET_REASON(e) != SSL_R_CERTIFICATE_VERIFY_FAILED);
            snprintf(t->why, sizeof t->why, "%s%s%s",
                     refused ? "the server refused the client certificate: " : "",
                     r ? r : "TLS protocol error",
                     plain ? " (is the server speaking TLS on that port?)" : "");
        } else {
            snprintf(t->why, sizeof t->why, "TLS protocol error");
        }
    } else if (err == SSL_ERROR_SYSCALL) {
        snprintf(t->why, sizeof t->why, "%s",
                 ret == 0 || errno == 0 ? "connection closed" : strerror(errno));
    } else {
        snprintf(t->why, sizeof t->why, "TLS error %d", err);
    }
    ERR_clear_error();
}

/* ---- the transport ---- */

/* An SSL call returned ret: the recv()/send() style result. */
static ssize_t io_result(rl_conn *conn, int ret, short *wait)
{
    rl_tls *t = conn->tls;
    if (ret > 0)
        return ret;
    int err = SSL_get_error(t->ssl, ret);
    switch (err) {
    case SSL_ERROR_WANT_READ:
        *wait = POLLIN;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *wait = POLLOUT;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0; /* close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF) */
    case SSL_ERROR_SYSCALL:
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            *wait = POLLIN;
            return -1;
        }
        if (ret == 0 || errno == 0) {
            ERR_clear_error();
            return 0;
        }
        note_failure(t, ret, err);
        return -1;
    default:
        note_failure(t, ret, err);
        errno = EPROTO;
        return -1;
    }
}

static ssize_t tls_read(rl_conn *conn, void *buf, size_t n, short *wait)
{
    rl_tls *t = conn->tls;
    ERR_clear_error(); /* SSL_get_error() reads this thread's queue: start it empty */
    return io_result(conn, SSL_read(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n), wait);
}

static ssize_t tls_write(rl_conn *conn, const void *buf, size_t n, short *wait)
{
    rl_tls *t = conn->tls;
    ERR_clear_error();
    ssize_t r = io_result(conn, SSL_write(t->ssl, buf, n > INT_MAX ? INT_MAX : (int)n), wait);
    if (r < 0 && errno != EAGAIN && errno != EPROTO) {
        /* TLS 1.3: a server that refuses our certificate says so in an alert after the
         * handshake, and closes; the write fails first. Read the alert for its reason. */
        int saved = errno;
        char b;
        short w;
        ERR_clear_error();
        if (io_result(conn, SSL_read(t->ssl, &b, 1), &w) < 0 && errno == EPROTO &&
            t->code == REDIS_LOCK_EAUTH)
            return -1;
        errno = saved;
        snprintf(t->why, sizeof t->why, "%s", strerror(saved));
        t->code = REDIS_LOCK_ECONN;
    }
    return r;
}

static size_t tls_pending(const rl_conn *conn)
{
    const rl_tls *t = conn->tls;
    return SSL_pending(t->ssl) > 0 || SSL_has_pending(t->ssl);
}

static void tls_close(rl_conn *conn)
{
    rl_tls *t = conn->tls;
    if (!t)
        return;
    SSL_free(t->ssl); /* no SSL_shutdown: see the top of this file */
    free(t);
    conn->tls = NULL;
}

static const char *tls_error(const rl_conn *conn, int err, int *code)
{
    const rl_tls *t = conn->tls;
    if (err == EPROTO || t->why[0]) {
        *code = t->code;
        return t->why;
    }
    *code = REDIS_LOCK_ECONN;
    return strerror(err);
}

static const rl_transport tls_transport = {tls_read, tls_write, tls_pending, tls_close,
                                           tls_error};

/* ---- the client's context ---- */

static int ctx_error(int code, const char *what, const char *path)
{
    unsigned long e = ERR_peek_error(); /* the first: the cause, not "PEM lib" */
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return rl_error(code, "TLS: cannot load %s %s: %s", what, path,
                    r ? r : (errno ? strerror(errno) : "unknown error"));
}

/* The server asks for a client certificate (called whether we have one or not). */
static int on_cert_request(SSL *ssl, void *arg)
{
    (void)arg;
    rl_tls *t = SSL_get_app_data(ssl);
    if (t)
        t->cert_requested = true;
    return 1;
}

/* A key protected by a passphrase: refuse it rather than let OpenSSL prompt on the tty. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    *(bool *)u = true;
    return 0;
}

/* Take a field of the options when the URL did not set the same parameter. */
static int take(char **slot, const char *opt)
{
    if (*slot || !opt || !*opt)
        return 0;
    *slot = rl_strdup(opt);
    return *slot ? 0 : rl_error(REDIS_LOCK_ENOMEM, "out of memory setting up TLS");
}

/* NULL when path is a file (dir: a directory), else why not. */
static const char *not_usable(const char *path, bool dir)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return strerror(errno);
    if (dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
        return dir ? "not a directory" : "not a regular file";
    return NULL;
}

int rl_tls_client_init(redis_lock_client *c)
{
    rl_url *u = &c->url;
    const redis_lock_client_options *o = &c->opts;
    int rc;
    if ((rc = take(&u->cacert, o->tls_cacert)) || (rc = take(&u->cacertdir, o->tls_cacertdir)) ||
        (rc = take(&u->cert, o->tls_cert)) || (rc = take(&u->key, o->tls_key)) ||
        (rc = take(&u->sni, o->tls_sni)))
        return rc;
    if (u->insecure < 0)
        u->insecure = o->tls_insecure != 0;
    if (!u->cert != !u->key)
        return rl_error(REDIS_LOCK_EINVAL, "TLS: a client certificate needs both cert and key");
    const char *why;
    if (u->cacert && (why = not_usable(u->cacert, false)))
        return rl_error(REDIS_LOCK_EINVAL, "TLS: cannot load cacert %s: %s", u->cacert, why);
    if (u->cacertdir && (why = not_usable(u->cacertdir, true)))
        return rl_error(REDIS_LOCK_EINVAL, "TLS: cannot use cacertdir %s: %s", u->cacertdir,
                        why);
    pthread_once(&nosig_once, nosig_init);
    if (!nosig_method)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory setting up TLS");
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return ctx_error(REDIS_LOCK_ENOMEM, "the", "TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* one recv() for whatever has arrived, not one for each record's header and another
     * for its body; the reads drain what it buffers (SSL_has_pending) before any poll */
    SSL_CTX_set_read_ahead(ctx, 1);
    bool asked = false;
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &asked);
    SSL_CTX_set_cert_cb(ctx, on_cert_request, NULL);
    rc = 0;
    if (u->insecure) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
        rl_log(c, LOG_WARNING, "TLS to %s without certificate verification (insecure=1)",
               u->masked);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (u->cacert || u->cacertdir) {
            if (SSL_CTX_load_verify_locations(ctx, u->cacert, u->cacertdir) != 1)
                rc = ctx_error(REDIS_LOCK_EINVAL, u->cacert ? "cacert" : "cacertdir",
                               u->cacert ? u->cacert : u->cacertdir);
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            rc = ctx_error(REDIS_LOCK_EINVAL, "the system trust store", "");
        }
    }
    if (!rc && u->cert) {
        errno = 0;
        if (SSL_CTX_use_certificate_chain_file(ctx, u->cert) != 1)
            rc = ctx_error(REDIS_LOCK_EINVAL, "cert", u->cert);
        else if (SSL_CTX_use_PrivateKey_file(ctx, u->key, SSL_FILETYPE_PEM) != 1)
            rc = asked ? rl_error(REDIS_LOCK_EINVAL, "TLS: cannot load key %s: it needs a "
                                  "passphrase, which is not supported", u->key)
                       : ctx_error(REDIS_LOCK_EINVAL, "key", u->key);
        else if (SSL_CTX_check_private_key(ctx) != 1)
            rc = ctx_error(REDIS_LOCK_EINVAL, "key", u->key); /* not cert's key */
    }
    ERR_clear_error();
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL); /* &asked goes out of scope */
    SSL_CTX_set_default_passwd_cb(ctx, NULL);
    if (rc) {
        SSL_CTX_free(ctx);
        return rc;
    }
    c->tls_ctx = ctx;
    return 0;
}

void rl_tls_client_free(redis_lock_client *c)
{
    SSL_CTX_free(c->tls_ctx);
    c->tls_ctx = NULL;
}

/* ---- one connection ---- */

static bool is_ip_literal(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int rl_tls_connect(redis_lock_client *c, rl_conn *conn, int64_t deadline_ms)
{
    const rl_url *u = &c->url;
    const char *name = u->sni ? u->sni : conn->host[0] ? conn->host : u->host;
    rl_tls *t = rl_calloc(1, sizeof *t);
    if (!t)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory opening a TLS connection");
    ERR_clear_error();
    t->ssl = SSL_new(c->tls_ctx);
    BIO *bio = t->ssl ? BIO_new(nosig_method) : NULL;
    if (!bio) {
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory opening a TLS connection");
    }
    SSL_set_app_data(t->ssl, t);
    BIO_set_data(bio, (void *)(intptr_t)conn->fd);
    BIO_set_init(bio, 1);
    SSL_set_bio(t->ssl, bio, bio);
    conn->tls = t;
    conn->tr = &tls_transport;
    bool ok = true;
    if (!is_ip_literal(name))
        ok = SSL_set_tlsext_host_name(t->ssl, name) == 1;
    if (ok && !u->insecure)
        ok = is_ip_literal(name) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name) == 1
                                 : SSL_set1_host(t->ssl, name) == 1;
    if (!ok) {
        ERR_clear_error();
        return rl_error(REDIS_LOCK_EINVAL, "TLS: cannot use server name %s", name);
    }
    for (;;) {
        ERR_clear_error();
        short wait = 0;
        ssize_t n = io_result(conn, SSL_connect(t->ssl), &wait);
        if (n > 0)
            break;
        if (n < 0 && errno == EAGAIN) {
            int w = rl_wait_fd(conn->fd, wait, deadline_ms, -1);
            if (w == 1)
                continue;
            return rl_error(REDIS_LOCK_ECONN,
                            "TLS handshake with %s: %s", u->masked,
                            w == 0 ? "timed out (is the server speaking TLS on that port?)"
                                   : strerror(errno));
        }
        if (n == 0)
            return rl_error(REDIS_LOCK_ECONN,
                            "TLS handshake with %s: the server closed the connection",
                            u->masked);
        return rl_error(t->code, "TLS handshake with %s failed: %s", u->masked, t->why);
    }
    rl_log(c, LOG_DEBUG, "TLS to %s: %s, %s", u->masked, SSL_get_version(t->ssl),
           SSL_get_cipher_name(t->ssl));
    return 0;
}
