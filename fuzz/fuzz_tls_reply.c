/* Fuzz target: replies through the TLS read path, in records split at every boundary.
 *
 * A TLS server in this process (an in-memory P-256 certificate; the client does not
 * verify, insecure=1) shakes hands with the library's own TLS connection (src/tls.c) over
 * a socketpair, then sends the input's reply bytes in TLS records whose sizes the first
 * two input bytes choose: byte 0 & 31 (+1) is the largest record; byte 1 bit 0 cycles the
 * sizes 1, 2, ..., max instead of max each time, so short inputs put a record boundary at
 * every offset; bit 1 ends the stream after the bytes (EOF), bit 2 with a close_notify
 * first; bit 3 has the server send two session tickets after the handshake (records
 * without data, read on the way to the first reply). Everything is written before the client reads, so every reply is already there.
 *
 * Invariant (a differential one): rl_conn_read() over TLS returns exactly the replies a
 * plain hiredis reader gets from the same bytes in one piece, in order, field for field;
 * then an error (ECONN: EOF, silence, or a protocol error where the plain reader has one;
 * or ENOMEM), never a reply more. The client's command timeout is 1 ms: a reply that
 * arrived whole is never left waiting behind a poll(). */
#include "fuzz.h"
#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define FUZZ_TLS_MAX 4096

static SSL_CTX *server_ctx;
static redis_lock_client client;

static void make_server_ctx(void)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *crt = X509_new();
    FUZZ_CHECK(key && crt, "cannot make a key");
    ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
    X509_gmtime_adj(X509_getm_notBefore(crt), -60);
    X509_gmtime_adj(X509_getm_notAfter(crt), 86400);
    X509_set_pubkey(crt, key);
    X509_NAME *name = X509_get_subject_name(crt);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(crt, name);
    FUZZ_CHECK(X509_sign(crt, key, EVP_sha256()) > 0, "cannot sign");
    server_ctx = SSL_CTX_new(TLS_server_method());
    FUZZ_CHECK(server_ctx && SSL_CTX_use_certificate(server_ctx, crt) == 1 &&
                   SSL_CTX_use_PrivateKey(server_ctx, key) == 1,
               "cannot make the server context");
    SSL_CTX_set_num_tickets(server_ctx, 0);
    X509_free(crt);
    EVP_PKEY_free(key);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    make_server_ctx();
    client.opts.version = REDIS_LOCK_CLIENT_OPTIONS_VERSION;
    client.opts.connect_timeout_ms = 5000;
    client.opts.command_timeout_ms = 1;
    client.url.tls = true;
    client.url.insecure = 1;
    client.url.host = strdup("fuzz");
    client.url.masked = strdup("rediss://fuzz:6379/0");
    FUZZ_CHECK(client.url.host && client.url.masked, "out of memory");
    FUZZ_CHECK(rl_tls_client_init(&client) == 0, "client TLS: %s", redis_lock_last_error());
    return 0;
}

static void *accept_thread(void *arg)
{
    SSL *ssl = arg;
    ERR_clear_error();
    intptr_t ok = SSL_accept(ssl) == 1;
    ERR_clear_error();
    return (void *)ok;
}

static bool same_reply(const redisReply *a, const redisReply *b)
{
    if (a->type != b->type || a->integer != b->integer || a->len != b->len ||
        a->elements != b->elements)
        return false;
    if (a->len && memcmp(a->str, b->str, a->len) != 0)
        return false;
    for (size_t i = 0; i < a->elements; i++)
        if (!same_reply(a->element[i], b->element[i]))
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > FUZZ_TLS_MAX + 2)
        return 0;
    const uint8_t *body = data + 2;
    size_t n = size - 2;
    if (fuzz_has_huge_array(body, n))
        return 0;
    size_t max_rec = (size_t)(data[0] & 31) + 1;
    bool cycle = data[1] & 1, eof = data[1] & 2, notify = data[1] & 4;

    /* what a plain reader makes of the bytes */
    redisReader *plain = redisReaderCreate();
    FUZZ_CHECK(plain, "out of memory");
    redisReply *want[FUZZ_TLS_MAX];
    size_t nwant = 0;
    bool plain_err = false;
    if (redisReaderFeed(plain, (const char *)body, n) != REDIS_OK)
        plain_err = true;
    while (!plain_err && nwant < FUZZ_TLS_MAX) {
        void *r = NULL;
        if (redisReaderGetReply(plain, &r) != REDIS_OK) {
            plain_err = true;
            break;
        }
        if (!r)
            break;
        want[nwant++] = r;
    }

    int sv[2];
    FUZZ_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
               strerror(errno));
    int bufsz = 1 << 20;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof bufsz);
    setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof bufsz);
    fcntl(sv[0], F_SETFL, O_NONBLOCK); /* the library's side, as rl_conn_open makes it */
    SSL *srv = SSL_new(server_ctx);
    FUZZ_CHECK(srv && SSL_set_fd(srv, sv[1]) == 1, "server SSL");
    if (data[1] & 8)
        SSL_set_num_tickets(srv, 2);
    rl_conn *conn = calloc(1, sizeof *conn);
    FUZZ_CHECK(conn, "out of memory");
    conn->fd = sv[0];
    conn->reader = redisReaderCreate();
    FUZZ_CHECK(conn->reader, "out of memory");
    pthread_t t;
    FUZZ_CHECK(pthread_create(&t, NULL, accept_thread, srv) == 0, "pthread_create");
    int rc = rl_tls_connect(&client, conn, rl_now_ms() + 5000);
    void *accepted = NULL;
    pthread_join(t, &accepted);
    FUZZ_CHECK(rc == 0 && accepted, "handshake failed: %s", redis_lock_last_error());

    /* the bytes, in records of the chosen sizes (one SSL_write is one record) */
    size_t off = 0, rec = 1;
    while (off < n) {
        size_t k = cycle ? rec : max_rec;
        if (k > n - off)
            k = n - off;
        ERR_clear_error();
        FUZZ_CHECK(SSL_write(srv, body + off, (int)k) == (int)k, "server write failed");
        off += k;
        rec = rec % max_rec + 1;
    }
    if (notify)
        SSL_shutdown(srv);
    if (eof)
        shutdown(sv[1], SHUT_WR);

    /* the client reads every reply that is there, then an error */
    for (size_t i = 0;; i++) {
        redisReply *got = NULL;
        rc = rl_conn_read(&client, conn, &got, rl_now_ms() + 1, -1);
        if (i < nwant) {
            FUZZ_CHECK(rc == 0 && got, "reply %zu of %zu missing over TLS (rc %d: %s)", i,
                       nwant, rc, redis_lock_last_error());
            FUZZ_CHECK(same_reply(got, want[i]), "reply %zu differs over TLS", i);
            freeReplyObject(got);
            continue;
        }
        FUZZ_CHECK(rc != 0 && !got, "a reply more over TLS than in the bytes (%zu)", nwant);
        FUZZ_CHECK(rc == REDIS_LOCK_ECONN || rc == REDIS_LOCK_ENOMEM, "unexpected code %d", rc);
        FUZZ_CHECK(redis_lock_last_error()[0], "an error without a message");
        break;
    }
    for (size_t i = 0; i < nwant; i++)
        freeReplyObject(want[i]);
    redisReaderFree(plain);
    rl_conn_close(conn); /* frees the client's SSL and closes sv[0] */
    SSL_free(srv);
    close(sv[1]);
    ERR_clear_error();
    return 0;
}
