/* Test harness: a throwaway redis-server per test program, on a private unix socket in
 * a temp dir; it dies with the test process (PR_SET_PDEATHSIG) and is stopped at exit.
 *
 * Transport: with RL_TEST_TRANSPORT=tls in the environment every server also listens
 * with TLS on a private loopback port (certificates from tests/make-certs.sh, made once
 * per test process) and its url is rediss://127.0.0.1:PORT/0?cacert=..., so the same
 * test programs run over TLS. rt_raw() and rt_cmd() stay on the unix socket. */
#ifndef RL_TEST_HARNESS_H
#define RL_TEST_HARNESS_H

#include <redis_lock.h>

#include <hiredis/hiredis.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

typedef struct {
    pid_t pid;
    char dir[128];
    char sock[192];
    char url[512]; /* unix:///dir/redis.sock (with credentials if the test set them), or
                      rediss://127.0.0.1:PORT/0?cacert=... with TLS */
    int port;      /* > 0 when started with tcp */
    int tls_port;  /* > 0 when started with TLS */
    int tls_mutual;
    char extra[2048];
} rt_server;

/* Flags of rt_server_start (1 = RT_TCP, for the callers that pass a boolean) */
enum {
    RT_TCP = 1,        /* also listen on a free loopback port */
    RT_TLS = 2,        /* also listen with TLS on a free loopback port; url is rediss:// */
    RT_TLS_MUTUAL = 4, /* with RT_TLS: tls-auth-clients yes (a client certificate needed) */
};
/* Start a server. extra_conf: more redis.conf lines (may be NULL); flags: RT_*.
 * RL_TEST_TRANSPORT=tls adds RT_TLS. Fails the test (never skips) when the server cannot
 * start. */
void rt_server_start(rt_server *s, const char *extra_conf, int flags);

/* Is this run over TLS (RL_TEST_TRANSPORT=tls)? */
int rt_tls(void);
/* The directory of this process's test certificates (tests/make-certs.sh), made on first
 * use: ca.crt, server.*, client.*, other-ca.*, other-client.* (.crt and .key). */
const char *rt_certs_dir(void);
void rt_server_stop(rt_server *s);
/* Kill (SIGKILL: no persistence, nothing saved) and start again on the same socket/port. */
void rt_server_restart(rt_server *s);

/* The shared server of this test program (started by rt_setup_group). */
extern rt_server rt_main;
int rt_setup_group(void **state);
int rt_teardown_group(void **state);
int rt_flush(void **state); /* per-test setup: FLUSHALL + SCRIPT FLUSH */

/* A raw hiredis connection to the server, for setting up and checking state. */
redisContext *rt_raw(const rt_server *s);
/* Run a command on a fresh raw connection; caller frees the reply. Fails the test on
 * connection errors. */
redisReply *rt_cmd(const rt_server *s, const char *fmt, ...);
long long rt_cmd_int(const rt_server *s, const char *fmt, ...);

/* A client for the server; fails the test on error. */
redis_lock_client *rt_client(const rt_server *s);
redis_lock_client *rt_client_url(const char *url);

/* A lock handle with expire_ms and otherwise default options; fails the test on error. */
redis_lock *rt_new_lock(redis_lock_client *c, const char *name, int64_t expire_ms);

/* Assert that the lock is held by expected_id (via redis_lock_get_owner_id). */
void rt_assert_owner(redis_lock *l, const char *expected_id);

int64_t rt_now_us(void);
int64_t rt_now_ms(void);
void rt_sleep_ms(int64_t ms);

/* A child process that hung: print every thread's stack to stderr (gdb in batch mode, if it
 * is installed and may attach), so that a hang in CI says where it was stuck. */
void rt_dump_stacks(pid_t pid);

/* Run tests; argv[1] (optional) is a name filter, as in `test_lock acquire_*`. */
int rt_run(const char *group, const struct CMUnitTest *tests, size_t n, int argc, char **argv,
           int with_server);
#define RT_RUN(tests, argc, argv, with_server) \
    rt_run(__FILE__, tests, sizeof(tests) / sizeof((tests)[0]), argc, argv, with_server)

/* assert_int_equal with the library's last error in the failure message */
#define assert_rl(expected, expr)                                                           \
    do {                                                                                    \
        int rt_rc_ = (expr);                                                                \
        if (rt_rc_ != (expected))                                                           \
            fail_msg("%s returned %s (%d), expected %s: %s", #expr,                         \
                     redis_lock_code_name(rt_rc_), rt_rc_, redis_lock_code_name(expected), \
                     redis_lock_last_error());                                              \
    } while (0)

#endif
