#include "harness.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

rt_server rt_main;

int64_t rt_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t rt_now_ms(void)
{
    return rt_now_us() / 1000;
}

void rt_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    socklen_t len = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        fail_msg("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static void spawn(rt_server *s)
{
    char conf[256], log[256];
    snprintf(conf, sizeof conf, "%s/redis.conf", s->dir);
    snprintf(log, sizeof log, "%s/redis.log", s->dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        fail_msg("cannot write %s: %s", conf, strerror(errno));
    fprintf(f, "port %d\nbind 127.0.0.1\nunixsocket %s\nunixsocketperm 700\nsave \"\"\n"
               "appendonly no\ndaemonize no\ndir %s\nlogfile %s\n",
            s->port, s->sock, s->dir, log);
    if (s->tls_port > 0) {
        const char *d = rt_certs_dir();
        fprintf(f, "tls-port %d\ntls-cert-file %s/server.crt\ntls-key-file %s/server.key\n"
                   "tls-ca-cert-file %s/ca.crt\ntls-auth-clients %s\n",
                s->tls_port, d, d, d, s->tls_mutual ? "yes" : "no");
    }
    fprintf(f, "%s\n", s->extra);
    fclose(f);
    unlink(s->sock);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        execlp("redis-server", "redis-server", conf, (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    int64_t deadline = rt_now_ms() + 10000;
    while (rt_now_ms() < deadline) {
        redisContext *c = redisConnectUnix(s->sock);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            if (!ok && r && r->type == REDIS_REPLY_ERROR && strstr(r->str, "NOAUTH"))
                ok = 1;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return;
        } else if (c) {
            redisFree(c);
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->pid = 0;
            fail_msg("redis-server exited at start (status %d); see %s", status, log);
        }
        rt_sleep_ms(10);
    }
    fail_msg("redis-server did not answer on %s within 10 s", s->sock);
}

/* Every server directory this process made, so that a test that fails before its
 * rt_server_stop() still leaves nothing behind (the server itself dies with us). */
static char started_dirs[64][128];
static pid_t started_pids[64];
static int nstarted;
static pid_t registry_owner;

static void remove_started_dirs(void)
{
    if (getpid() != registry_owner)
        return;
    for (int i = 0; i < nstarted; i++) {
        if (started_pids[i] > 0) {
            kill(started_pids[i], SIGKILL);
            waitpid(started_pids[i], NULL, 0);
        }
        if (started_dirs[i][0]) {
            char cmd[300];
            snprintf(cmd, sizeof cmd, "rm -rf '%.127s'", started_dirs[i]);
            if (system(cmd) != 0)
                fprintf(stderr, "harness: could not remove %s\n", started_dirs[i]);
        }
    }
}

static void track(const rt_server *s, bool add)
{
    for (int i = 0; i < nstarted; i++) {
        if (strcmp(started_dirs[i], s->dir) == 0) {
            started_pids[i] = add ? s->pid : 0;
            if (!add)
                started_dirs[i][0] = '\0';
            return;
        }
    }
    if (!add || nstarted == 64)
        return;
    if (!registry_owner) {
        registry_owner = getpid();
        atexit(remove_started_dirs);
    }
    snprintf(started_dirs[nstarted], sizeof started_dirs[nstarted], "%s", s->dir);
    started_pids[nstarted++] = s->pid;
}

int rt_tls(void)
{
    const char *t = getenv("RL_TEST_TRANSPORT");
    return t && strcmp(t, "tls") == 0;
}

static char certs_dir[128];
static pid_t certs_owner;

static void remove_certs(void)
{
    if (getpid() != certs_owner || !certs_dir[0])
        return;
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", certs_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: could not remove %s\n", certs_dir);
}

const char *rt_certs_dir(void)
{
    if (certs_dir[0])
        return certs_dir;
    char dir[128] = "/tmp/rl-certs-XXXXXX";
    if (!mkdtemp(dir))
        fail_msg("mkdtemp: %s", strerror(errno));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh '%s/tests/make-certs.sh' '%s'", RT_SOURCE_DIR, dir);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("%s failed (status %d): is the openssl tool installed?", cmd, rc);
    memcpy(certs_dir, dir, sizeof dir);
    certs_owner = getpid();
    atexit(remove_certs);
    return certs_dir;
}

void rt_server_start(rt_server *s, const char *extra_conf, int flags)
{
    memset(s, 0, sizeof *s);
    snprintf(s->dir, sizeof s->dir, "/tmp/rl-test-XXXXXX");
    if (!mkdtemp(s->dir))
        fail_msg("mkdtemp: %s", strerror(errno));
    snprintf(s->sock, sizeof s->sock, "%s/redis.sock", s->dir);
    snprintf(s->url, sizeof s->url, "unix://%s", s->sock);
    snprintf(s->extra, sizeof s->extra, "%s", extra_conf ? extra_conf : "");
    s->port = flags & RT_TCP ? free_port() : 0;
    if (rt_tls())
        flags |= RT_TLS;
    if (flags & RT_TLS) {
        s->tls_port = free_port();
        s->tls_mutual = (flags & RT_TLS_MUTUAL) != 0;
        const char *d = rt_certs_dir();
        if (s->tls_mutual)
            snprintf(s->url, sizeof s->url,
                     "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt&cert=%s/client.crt&key=%s/client.key",
                     s->tls_port, d, d, d);
        else
            snprintf(s->url, sizeof s->url, "rediss://127.0.0.1:%d/0?cacert=%s/ca.crt",
                     s->tls_port, d);
    }
    track(s, true);
    spawn(s);
    track(s, true);
}

static void kill_server(rt_server *s, int sig)
{
    if (s->pid > 0) {
        kill(s->pid, sig);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

void rt_server_restart(rt_server *s)
{
    kill_server(s, SIGKILL);
    spawn(s);
    track(s, true);
}

void rt_server_stop(rt_server *s)
{
    track(s, false);
    kill_server(s, SIGTERM);
    if (s->dir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", s->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "harness: could not remove %s\n", s->dir);
        s->dir[0] = '\0';
    }
}

/* a forked test child that exits must not stop its parent's server */
static pid_t main_owner;
static void atexit_stop(void)
{
    if (getpid() == main_owner)
        rt_server_stop(&rt_main);
}

int rt_setup_group(void **state)
{
    (void)state;
    rt_server_start(&rt_main, NULL, 0);
    main_owner = getpid();
    atexit(atexit_stop);
    return 0;
}

int rt_teardown_group(void **state)
{
    (void)state;
    rt_server_stop(&rt_main);
    return 0;
}

redisContext *rt_raw(const rt_server *s)
{
    redisContext *c = redisConnectUnix(s->sock);
    if (!c || c->err)
        fail_msg("cannot connect to the test server at %s: %s", s->sock,
                 c ? c->errstr : "out of memory");
    return c;
}

static redisReply *vcmd(const rt_server *s, const char *fmt, va_list ap)
{
    redisContext *c = rt_raw(s);
    redisReply *r = redisvCommand(c, fmt, ap);
    if (!r)
        fail_msg("command %s failed: %s", fmt, c->errstr);
    redisFree(c);
    return r;
}

redisReply *rt_cmd(const rt_server *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(s, fmt, ap);
    va_end(ap);
    return r;
}

long long rt_cmd_int(const rt_server *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(s, fmt, ap);
    va_end(ap);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("command %s: expected an integer reply, got type %d (%s)", fmt, r->type,
                 r->str ? r->str : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

int rt_flush(void **state)
{
    (void)state;
    redisReply *r = rt_cmd(&rt_main, "FLUSHALL");
    freeReplyObject(r);
    r = rt_cmd(&rt_main, "SCRIPT FLUSH");
    freeReplyObject(r);
    return 0;
}

redis_lock_client *rt_client_url(const char *url)
{
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = url;
    redis_lock_client *c = NULL;
    int rc = redis_lock_client_open(&c, &o);
    if (rc)
        fail_msg("redis_lock_client_open(%s): %s: %s", url, redis_lock_code_name(rc),
                 redis_lock_last_error());
    return c;
}

redis_lock *rt_new_lock(redis_lock_client *c, const char *name, int64_t expire_ms)
{
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = expire_ms;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, name, &o));
    assert_non_null(l);
    return l;
}

void rt_assert_owner(redis_lock *l, const char *expected_id)
{
    char *owner = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_get_owner_id(l, &owner));
    assert_non_null(owner);
    int same = strcmp(owner, expected_id) == 0;
    if (!same)
        fail_msg("lock %s is held by \"%s\", expected \"%s\"", redis_lock_name(l), owner,
                 expected_id);
    free(owner);
}

redis_lock_client *rt_client(const rt_server *s)
{
    return rt_client_url(s->url);
}

void rt_dump_stacks(pid_t pid)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "command -v gdb >/dev/null 2>&1 && gdb -p %ld -batch -nx -q "
             "-ex 'thread apply all bt' </dev/null 1>&2 2>/dev/null",
             (long)pid);
    fprintf(stderr, "harness: the stacks of process %ld:\n", (long)pid);
    fflush(stderr);
    if (system(cmd) != 0)
        fprintf(stderr, "harness: could not print them (is gdb installed?)\n");
}

int rt_run(const char *group, const struct CMUnitTest *tests, size_t n, int argc, char **argv,
           int with_server)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    signal(SIGPIPE, SIG_DFL); /* the library must never raise it: let it kill us if it does */
    return _cmocka_run_group_tests(group, tests, n, with_server ? rt_setup_group : NULL,
                                   with_server ? rt_teardown_group : NULL);
}
