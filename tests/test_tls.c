/* labels: forks */
/* TLS (rediss://) against real TLS servers with a throwaway PKI (tests/make-certs.sh):
 * each way a TLS connection can fail is made to happen and must come back as one line
 * naming OpenSSL's reason, with the right code, within the connect timeout; the URL
 * parameters and the version-2 client options; a forked child never touches its parent's
 * TLS sessions. The lock, renewal, fork, cancel, timing, cache and recovery tests also run
 * whole over TLS (ctest tls_*). */
#include "harness.h"
#include "internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

static rt_server tls_srv;    /* TLS, server certificate only */
static rt_server mutual_srv; /* TLS with tls-auth-clients yes */
static rt_server plain_srv;  /* plain TCP only: a TLS client on its port */

#define CONNECT_MS 1000
/* slack over the connect timeout for a noisy machine (sanitizers, valgrind) */
#define SLACK_MS 3000

static int setup(void **state)
{
    (void)state;
    rt_server_start(&tls_srv, NULL, RT_TLS);
    rt_server_start(&mutual_srv, NULL, RT_TLS | RT_TLS_MUTUAL);
    rt_server_start(&plain_srv, NULL, RT_TCP);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rt_server_stop(&tls_srv);
    rt_server_stop(&mutual_srv);
    rt_server_stop(&plain_srv);
    return 0;
}

typedef struct {
    int warnings;
    char last[512];
} log_seen;

static void collect(int level, const char *message, void *payload)
{
    log_seen *s = payload;
    if (level <= LOG_WARNING) {
        s->warnings++;
        snprintf(s->last, sizeof s->last, "%s", message);
    }
}

/* Open a client on url (printf-style); returns the code, *took_ms the time it took. */
static int open_url(redis_lock_client **out, int64_t *took_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int open_url(redis_lock_client **out, int64_t *took_ms, const char *fmt, ...)
{
    char url[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(url, sizeof url, fmt, ap);
    va_end(ap);
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = url;
    o.connect_timeout_ms = CONNECT_MS;
    int64_t t0 = rt_now_ms();
    *out = NULL;
    int rc = redis_lock_client_open(out, &o);
    if (took_ms)
        *took_ms = rt_now_ms() - t0;
    return rc;
}

/* The client could not open: code want, within the connect timeout, one line that
 * mentions each of the NULL-terminated words and not the password. */
static void expect_failure(int want, const char *words[], const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void expect_failure(int want, const char *words[], const char *fmt, ...)
{
    char url[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(url, sizeof url, fmt, ap);
    va_end(ap);
    redis_lock_client *c = NULL;
    int64_t took = 0;
    int rc = open_url(&c, &took, "%s", url);
    const char *e = redis_lock_last_error();
    if (rc != want)
        fail_msg("%s: %s (%s), expected %s", url, redis_lock_code_name(rc), e,
                 redis_lock_code_name(want));
    assert_null(c);
    print_message("%s -> %s: %s (%lld ms)\n", url, redis_lock_code_name(rc), e,
                  (long long)took);
    for (int i = 0; words[i]; i++)
        if (!strstr(e, words[i]))
            fail_msg("message \"%s\" does not mention \"%s\"", e, words[i]);
    assert_null(strchr(e, '\n'));
    assert_null(strstr(e, "topsecret"));
    assert_true(took < CONNECT_MS + SLACK_MS);
}

static void verified_connection_is_tls(void **state)
{
    (void)state;
    const char *d = rt_certs_dir();
    /* by IP address (the certificate's IP SAN) and by name (its DNS SAN) */
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK,
              open_url(&c, NULL, "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt", tls_srv.tls_port, d));
    redis_lock *l = rt_new_lock(c, "tls-basic", 10000);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    rt_assert_owner(l, redis_lock_id(l));
    /* the server sees our connection on its TLS port */
    redisReply *r = rt_cmd(&tls_srv, "CLIENT LIST TYPE normal");
    char laddr[64];
    snprintf(laddr, sizeof laddr, "laddr=127.0.0.1:%d ", tls_srv.tls_port);
    assert_non_null(strstr(r->str, laddr));
    freeReplyObject(r);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
    assert_rl(REDIS_LOCK_OK, open_url(&c, NULL, "rediss://localhost:%d/0?cacert=%s/ca.crt",
                                      tls_srv.tls_port, d));
    redis_lock_client_close(c);
    /* sni names the host to verify: "localhost" on a connection to 127.0.0.1 */
    assert_rl(REDIS_LOCK_OK, open_url(&c, NULL, "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt&sni=localhost",
                                      tls_srv.tls_port, d));
    redis_lock_client_close(c);
    /* cacertdir in c_rehash layout, made with the openssl tool */
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/cadir && cp %s/ca.crt %s/cadir/ && openssl rehash %s/cadir 2>/dev/null",
             d, d, d, d);
    assert_int_equal(system(cmd), 0);
    assert_rl(REDIS_LOCK_OK, open_url(&c, NULL, "rediss://127.0.0.1:%d/0?cacertdir=%s/cadir",
                                      tls_srv.tls_port, d));
    redis_lock_client_close(c);
}

static void server_certificate_refused(void **state)
{
    (void)state;
    const char *d = rt_certs_dir();
    /* a CA that did not sign the server's certificate */
    const char *wrong_ca[] = {"certificate verify failed", "rediss://:***@127.0.0.1", NULL};
    expect_failure(REDIS_LOCK_EAUTH, wrong_ca, "rediss://:topsecret@127.0.0.1:%d/0?cacert=%s/other-ca.crt",
                   tls_srv.tls_port, d);
    /* the system trust store does not know the test CA */
    const char *system_store[] = {"certificate verify failed", NULL};
    expect_failure(REDIS_LOCK_EAUTH, system_store, "rediss://127.0.0.1:%d", tls_srv.tls_port);
    /* the certificate is for localhost and 127.0.0.1, not for this name */
    const char *mismatch[] = {"hostname mismatch", NULL};
    expect_failure(REDIS_LOCK_EAUTH, mismatch, "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt&sni=db.example.invalid",
                   tls_srv.tls_port, d);
    /* insecure=1: no verification, and a warning says so */
    log_seen seen = {0};
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    char url[512];
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d/0?cacert=%s/other-ca.crt&insecure=1",
             tls_srv.tls_port, d);
    o.url = url;
    o.log = collect;
    o.log_payload = &seen;
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &o));
    assert_int_equal(seen.warnings, 1);
    assert_non_null(strstr(seen.last, "insecure"));
    redis_lock *l = rt_new_lock(c, "tls-insecure", 1000);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static void client_certificate(void **state)
{
    (void)state;
    const char *d = rt_certs_dir();
    /* none: the server refuses us after the handshake (TLS 1.3) */
    const char *none[] = {"refused the client certificate", NULL};
    expect_failure(REDIS_LOCK_EAUTH, none, "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt",
                   mutual_srv.tls_port, d);
    /* one its CA did not sign */
    const char *unknown[] = {"refused the client certificate", NULL};
    expect_failure(REDIS_LOCK_EAUTH, unknown,
                   "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt&cert=%s/other-client.crt&key=%s/other-client.key",
                   mutual_srv.tls_port, d, d, d);
    /* TLS 1.2: the refusal comes inside the handshake, not after it */
    rt_server tls12;
    rt_server_start(&tls12, "tls-protocols \"TLSv1.2\"", RT_TLS | RT_TLS_MUTUAL);
    const char *in_handshake[] = {"TLS handshake", "refused the client certificate", NULL};
    expect_failure(REDIS_LOCK_EAUTH, in_handshake, "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt",
                   tls12.tls_port, d);
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, open_url(&c, NULL, "%s", tls12.url));
    redis_lock_client_close(c);
    rt_server_stop(&tls12);
    /* the right one */
    assert_rl(REDIS_LOCK_OK, open_url(&c, NULL, "%s", mutual_srv.url));
    redis_lock *l = rt_new_lock(c, "tls-mutual", 1000);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static void not_a_tls_server(void **state)
{
    (void)state;
    const char *d = rt_certs_dir();
    /* a plain Redis on the port: it takes the ClientHello for a command and waits for
     * the rest, or answers in plain text; either way a connection error in time */
    const char *plain[] = {"TLS", NULL};
    expect_failure(REDIS_LOCK_ECONN, plain, "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt",
                   plain_srv.port, d);
    /* nothing listening */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    socklen_t len = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    const char *refused[] = {"cannot connect", NULL};
    expect_failure(REDIS_LOCK_ECONN, refused, "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt",
                   ntohs(a.sin_port), d);
}

static void bad_tls_files(void **state)
{
    (void)state;
    const char *d = rt_certs_dir();
    int p = tls_srv.tls_port;
    const char *missing[] = {"cacert", "/nonexistent/ca.crt", NULL};
    expect_failure(REDIS_LOCK_EINVAL, missing, "rediss://127.0.0.1:%d/0?cacert=/nonexistent/ca.crt", p);
    const char *notpem[] = {"cacert", NULL};
    expect_failure(REDIS_LOCK_EINVAL, notpem, "rediss://127.0.0.1:%d/0?cacert=%s/server.ext", p, d);
    const char *nodir[] = {"cacertdir", "not a directory", NULL};
    expect_failure(REDIS_LOCK_EINVAL, nodir, "rediss://127.0.0.1:%d/0?cacertdir=%s/ca.crt", p, d);
    const char *halfpair[] = {"cert and key", NULL};
    expect_failure(REDIS_LOCK_EINVAL, halfpair, "rediss://127.0.0.1:%d/0?cert=%s/client.crt", p, d);
    const char *mismatch[] = {"key", "mismatch", NULL};
    expect_failure(REDIS_LOCK_EINVAL, mismatch,
                   "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt&cert=%s/client.crt&key=%s/other-client.key",
                   p, d, d, d);
    /* a key with a passphrase: refused at once, never prompted for */
    char cmd[600];
    snprintf(cmd, sizeof cmd,
             "openssl pkey -in %s/client.key -aes256 -passout pass:secret -out %s/enc.key 2>/dev/null",
             d, d);
    assert_int_equal(system(cmd), 0);
    const char *passphrase[] = {"key", "enc.key", "passphrase", NULL};
    expect_failure(REDIS_LOCK_EINVAL, passphrase,
                   "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt&cert=%s/client.crt&key=%s/enc.key",
                   p, d, d, d);
    const char *unknown[] = {"unknown parameter verify", NULL};
    expect_failure(REDIS_LOCK_EINVAL, unknown, "rediss://127.0.0.1:%d/0?verify=no", p);
}

static void client_options_version_2(void **state)
{
    (void)state;
    const char *d = rt_certs_dir();
    char url[256], ca[256], other[256], cert[256], key[256];
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d/0", mutual_srv.tls_port);
    snprintf(ca, sizeof ca, "%s/ca.crt", d);
    snprintf(other, sizeof other, "%s/other-ca.crt", d);
    snprintf(cert, sizeof cert, "%s/client.crt", d);
    snprintf(key, sizeof key, "%s/client.key", d);
    /* the fields alone */
    redis_lock_client_options o;
    redis_lock_client_options_init_version(&o, 2); /* a caller built against version 2 */
    assert_int_equal(o.version, 2);
    o.url = url;
    o.tls_cacert = ca;
    o.tls_cert = cert;
    o.tls_key = key;
    o.tls_sni = "localhost";
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &o));
    redis_lock_client_close(c);
    /* a URL parameter overrides its field */
    char url2[600];
    snprintf(url2, sizeof url2, "%s?cacert=%s", url, ca);
    o.url = url2;
    o.tls_cacert = other;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &o));
    redis_lock_client_close(c);
    /* the fields do nothing for a URL that is not rediss:// (it may come from $REDIS_URL) */
    char unix_url[256];
    snprintf(unix_url, sizeof unix_url, "unix://%s", tls_srv.sock);
    o.url = unix_url;
    o.tls_cacert = "/nonexistent/ca.crt";
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &o));
    redis_lock_client_close(c);
}

/* What a caller compiled against version 1 passes: the struct ends at log_payload. */
typedef struct {
    unsigned version;
    const char *url;
    int connect_timeout_ms;
    int command_timeout_ms;
    void (*log)(int level, const char *message, void *payload);
    void *log_payload;
} options_v1;

static void version_1_caller(void **state)
{
    (void)state;
    /* The v1 struct is followed by junk bytes where version 2's fields would be: reading
     * one of them would follow a junk pointer (a crash, or ASan and valgrind reports). */
    size_t total = sizeof(redis_lock_client_options) + 64;
    unsigned char *block = malloc(total);
    assert_non_null(block);
    memset(block, 0xA5, total);
    options_v1 *v1 = (options_v1 *)block;
    char url[512];
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt", tls_srv.tls_port,
             rt_certs_dir());
    v1->version = 1;
    v1->url = url;
    v1->connect_timeout_ms = 2000;
    v1->command_timeout_ms = 2000;
    v1->log = NULL;
    v1->log_payload = NULL;
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK,
              redis_lock_client_open(&c, (const redis_lock_client_options *)(void *)v1));
    redis_lock *l = rt_new_lock(c, "tls-v1", 1000);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
    /* a version from the future is refused, clearly */
    v1->version = 99;
    assert_rl(REDIS_LOCK_EINVAL,
              redis_lock_client_open(&c, (const redis_lock_client_options *)(void *)v1));
    assert_non_null(strstr(redis_lock_last_error(), "version"));
    free(block);
}

static void forked_child_leaves_parent_session_alone(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&tls_srv);
    rl_conn *conn = NULL;
    assert_rl(REDIS_LOCK_OK, rl_client_get(c, &conn));
    long long parent_id = conn->client_id;
    rl_client_put(c, conn, true);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the child opens its own TLS session, uses it, and exits (closing the inherited
         * socket copies without a close_notify on the parent's session) */
        redis_lock *l = NULL;
        int rc = redis_lock_new(&l, c, "tls-fork", NULL);
        if (!rc)
            rc = redis_lock_acquire(l, 0);
        if (!rc)
            rc = redis_lock_release(l);
        redis_lock_free(l);
        redis_lock_client_close(c);
        _exit(rc == 0 ? 0 : 10 - rc);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    /* the parent's pooled session is intact: same connection, and it still talks */
    assert_rl(REDIS_LOCK_OK, rl_client_get(c, &conn));
    assert_int_equal(conn->client_id, parent_id);
    redisReply *r = NULL;
    const char *argv[] = {"PING"};
    assert_rl(REDIS_LOCK_OK, rl_conn_command(c, conn, &r, 1, argv, NULL));
    assert_string_equal(r->str, "PONG");
    freeReplyObject(r);
    rl_client_put(c, conn, true);
    redis_lock_client_close(c);
}

static void large_replies_and_pipelines(void **state)
{
    (void)state;
    /* a value of many TLS records, and a reply that arrives whole in a record already
     * read: neither may wait for the command timeout */
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = tls_srv.url;
    o.command_timeout_ms = 1500;
    redis_lock_client *c = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &o));
    size_t n = 3u << 20;
    char *big = malloc(n);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    rl_conn *conn = NULL;
    assert_rl(REDIS_LOCK_OK, rl_client_get(c, &conn));
    rl_buf b = {0};
    const char *set[] = {"SET", "tls-big", big};
    size_t setlen[] = {3, 7, n};
    assert_rl(REDIS_LOCK_OK, rl_buf_add(&b, 3, set, setlen));
    for (int i = 0; i < 50; i++) {
        const char *get[] = {"GET", "tls-big"};
        const char *ping[] = {"PING"};
        assert_rl(REDIS_LOCK_OK, rl_buf_add(&b, i % 10 == 0 ? 2 : 1, i % 10 == 0 ? get : ping,
                                            NULL));
    }
    redisReply *r[51];
    int64_t t0 = rt_now_ms();
    assert_rl(REDIS_LOCK_OK, rl_conn_pipeline(c, conn, &b, r));
    int64_t took = rt_now_ms() - t0;
    print_message("pipeline of 51 with 5 x 3 MiB replies over TLS: %lld ms\n", (long long)took);
    for (int i = 0; i < 51; i++) {
        if (i > 0 && (i - 1) % 10 == 0) {
            assert_int_equal(r[i]->type, REDIS_REPLY_STRING);
            assert_int_equal(r[i]->len, n);
            assert_memory_equal(r[i]->str, big, n);
        } else {
            assert_int_equal(r[i]->type, REDIS_REPLY_STATUS);
        }
        freeReplyObject(r[i]);
    }
    rl_buf_free(&b);
    /* many small commands, one at a time: each reply is read whole, no poll left waiting */
    t0 = rt_now_ms();
    for (int i = 0; i < 200; i++) {
        redisReply *p = NULL;
        const char *argv[] = {"PING"};
        assert_rl(REDIS_LOCK_OK, rl_conn_command(c, conn, &p, 1, argv, NULL));
        freeReplyObject(p);
    }
    took = rt_now_ms() - t0;
    print_message("200 PINGs over TLS: %lld ms\n", (long long)took);
    assert_true(took < 200 * 100);
    rl_client_put(c, conn, true);
    free(big);
    redis_lock_client_close(c);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verified_connection_is_tls),
        cmocka_unit_test(server_certificate_refused),
        cmocka_unit_test(client_certificate),
        cmocka_unit_test(not_a_tls_server),
        cmocka_unit_test(bad_tls_files),
        cmocka_unit_test(client_options_version_2),
        cmocka_unit_test(version_1_caller),
        cmocka_unit_test(forked_child_leaves_parent_session_alone),
        cmocka_unit_test(large_replies_and_pipelines),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    signal(SIGPIPE, SIG_DFL); /* the library must never raise it */
    return cmocka_run_group_tests(tests, setup, teardown);
}
