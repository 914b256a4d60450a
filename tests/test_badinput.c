/* labels: threaded forks */
/* Bad input and hostile server states: every one must give a clear code and a
 * message, never crash, and never corrupt a lock (a failed call leaves no lock:NAME of
 * its own, and a lock held before stays held by its owner).
 *
 *  - NULL and empty names, ids and cache keys; 1 MB names, ids and cache keys;
 *  - NUL inside a name or id cannot be expressed: the API takes C strings, so "ab\0cd"
 *    is the name "ab" (checked here, so the table in docs/reliability.md is true);
 *  - negative and overflowing times: INT64_MIN, -2, INT64_MAX for timeouts, expiries,
 *    the signal expiry, extend, max_hold, the cache's ttl and timeout;
 *  - keys of the wrong type: lock:x a list or a hash, lock-signal:x a string,
 *    lock-fence:x not an integer (text, a list, INT64_MAX so INCR overflows), the cache
 *    key a list;
 *  - real error replies from real servers: OOM (maxmemory 1, noeviction), READONLY (a
 *    replica of another harness server), NOAUTH / WRONGPASS (requirepass), NOPERM (ACL
 *    users without +evalsha, without +eval, without access to the lock:* keys).
 *
 * Scenarios whose bug would be undefined behaviour (signed overflow: UBSan aborts the
 * process in the sanitizer build) run in a forked child, so one finding does not hide
 * the others. RT_BADINPUT_TABLE=FILE appends one markdown row per check to FILE (the
 * table in docs/reliability.md is made from it). */
#include "harness.h"
#include "internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MB (1024 * 1024)

static rt_server replica_master, replica; /* READONLY */
static rt_server auth_srv;                /* NOAUTH, WRONGPASS, NOPERM */

/* ---- checking and the table ---- */

static void row(const char *input, const char *call, int rc)
{
    const char *path = getenv("RT_BADINPUT_TABLE");
    if (!path || !*path)
        return;
    FILE *f = fopen(path, "a");
    if (!f)
        return;
    char msg[200];
    snprintf(msg, sizeof msg, "%s", rc ? redis_lock_last_error() : "");
    for (char *p = msg; *p; p++)
        if (*p == '|' || *p == '\n' || *p == '\r')
            *p = ' ';
    fprintf(f, "| %s | `%s` | `%s` | %s |\n", input, call, redis_lock_code_name(rc), msg);
    fclose(f);
}

static int must_not_run(void *payload)
{
    (void)payload;
    fail_msg("the function of redis_lock_with ran although the acquire failed");
    return 1;
}

static void mention(const char *needle)
{
    const char *e = redis_lock_last_error();
    if (!strstr(e, needle))
        fail_msg("last error \"%s\" does not mention \"%s\"", e, needle);
}

/* rc must be want; a failure needs a message, mentioning `needle` when given */
static void expect(const char *input, const char *call, int rc, int want, const char *needle)
{
    row(input, call, rc);
    if (rc != want)
        fail_msg("%s: %s returned %s (%d), expected %s: %s", input, call,
                 redis_lock_code_name(rc), rc, redis_lock_code_name(want),
                 redis_lock_last_error());
    if (rc < 0 && redis_lock_last_error()[0] == '\0')
        fail_msg("%s: %s returned %s without a message", input, call, redis_lock_code_name(rc));
    if (rc < 0 && needle)
        mention(needle);
}

static long long key_exists(const rt_server *s, const char *prefix, const char *name)
{
    size_t p = strlen(prefix), n = strlen(name);
    char *key = malloc(p + n);
    assert_non_null(key);
    memcpy(key, prefix, p);
    memcpy(key + p, name, n);
    redisContext *ctx = rt_raw(s);
    redisReply *r = redisCommand(ctx, "EXISTS %b", key, p + n);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    redisFree(ctx);
    free(key);
    return v;
}

static redisContext *admin(void);

/* the value of lock:NAME (malloc'd) or NULL */
static char *lock_owner(const rt_server *s, const char *name)
{
    redisContext *ctx = s == &auth_srv ? admin() : rt_raw(s);
    redisReply *r = redisCommand(ctx, "GET lock:%s", name);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("GET lock:%s: %s", name, r->str);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    redisFree(ctx);
    return v;
}

static void assert_owner(const rt_server *s, const char *name, const char *id)
{
    char *v = lock_owner(s, name);
    if (!id && v) {
        char shown[64];
        snprintf(shown, sizeof shown, "%s", v);
        free(v);
        fail_msg("lock:%s is left in Redis (held by %s)", name, shown);
    }
    if (id && (!v || strcmp(v, id) != 0)) {
        free(v);
        fail_msg("lock:%s is not held by %s any more", name, id);
    }
    free(v);
}

static void cmd_ok(const rt_server *s, const char *fmt, const char *arg)
{
    redisReply *r = rt_cmd(s, fmt, arg);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("setup command %s failed: %s", fmt, r->str);
    freeReplyObject(r);
}

static redis_lock *mk(redis_lock_client *c, const char *name, int64_t expire_ms, bool fencing)
{
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = expire_ms;
    o.fencing = fencing;
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, name, &o));
    return l;
}

/* Run fn in a forked child with its own client; the child reports through its exit
 * status (0 ok, 1 a check failed: its message is on stderr). An abort (UBSan) or a
 * crash in the child is a failure of the test, with the signal named. */
typedef int (*child_fn)(char *msg, size_t n);

static void run_child(const char *what, child_fn fn)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char msg[512] = "";
        alarm(60); /* nothing here may hang */
        int rc = fn(msg, sizeof msg);
        if (rc)
            fprintf(stderr, "%s: %s\n", what, msg);
        fflush(stderr);
        _exit(rc ? 1 : 0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(status))
        fail_msg("%s: the child died of signal %d (%s): see stderr (UBSan/ASan report?)",
                 what, WTERMSIG(status), strsignal(WTERMSIG(status)));
    if (WEXITSTATUS(status) != 0)
        fail_msg("%s: failed (see the message above)", what);
}

#define CHILD_CHECK(cond, ...)                 \
    do {                                       \
        if (!(cond)) {                         \
            snprintf(msg, n, __VA_ARGS__);     \
            goto out;                          \
        }                                      \
    } while (0)

/* ================= names, ids, cache keys ================= */

static void null_and_empty_names(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = (redis_lock *)(uintptr_t)1;
    expect("name NULL", "redis_lock_new", redis_lock_new(&l, c, NULL, NULL), REDIS_LOCK_EINVAL,
           "name");
    assert_null(l);
    expect("name \"\"", "redis_lock_new", redis_lock_new(&l, c, "", NULL), REDIS_LOCK_EINVAL,
           "name");
    assert_null(l);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.id = "";
    expect("id \"\"", "redis_lock_new", redis_lock_new(&l, c, "x", &o), REDIS_LOCK_EINVAL, "id");
    assert_null(l);

    redis_lock_cache_options co;
    redis_lock_cache_options_init(&co);
    co.ttl_ms = 1000;
    char *v = (char *)"junk";
    size_t len = 9;
    expect("cache key NULL", "redis_lock_cache_get_or_set",
           redis_lock_cache_get_or_set(c, NULL, &co, NULL, NULL, &v, &len), REDIS_LOCK_EINVAL,
           "key");
    assert_null(v);
    expect("cache key \"\"", "redis_lock_cache_get_or_set",
           redis_lock_cache_get_or_set(c, "", &co, NULL, NULL, &v, &len), REDIS_LOCK_EINVAL,
           "key");
    expect("cache key NULL", "redis_lock_cache_delete", redis_lock_cache_delete(c, NULL),
           REDIS_LOCK_EINVAL, "key");
    expect("cache key \"\"", "redis_lock_cache_delete", redis_lock_cache_delete(c, ""),
           REDIS_LOCK_EINVAL, "key");
    /* NULL handles: EINVAL, not a crash */
    expect("lock NULL", "redis_lock_acquire", redis_lock_acquire(NULL, 0), REDIS_LOCK_EINVAL,
           NULL);
    expect("lock NULL", "redis_lock_with", redis_lock_with(NULL, 0, must_not_run, NULL),
           REDIS_LOCK_EINVAL, NULL);
    assert_null(redis_lock_id(NULL));
    assert_null(redis_lock_name(NULL));
    assert_int_equal(redis_lock_fencing_token(NULL), 0);
    assert_int_equal(rt_cmd_int(&rt_main, "DBSIZE"), 0);
    redis_lock_client_close(c);
}

static char *huge(size_t n, char fill)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    for (size_t i = 0; i < n; i++) /* every byte but NUL, mostly `fill` */
        s[i] = i % 4096 == 7 ? (char)(1 + i / 4096 % 255) : fill;
    s[n] = '\0';
    return s;
}

typedef struct {
    redis_lock *l;
    int rc;
} waiter_arg;

static void *waiter(void *p)
{
    waiter_arg *w = p;
    w->rc = redis_lock_acquire(w->l, 5000);
    return NULL;
}

static void huge_names_and_ids(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    char *name = huge(MB, 'n'), *id = huge(MB, 'i');
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.id = id;
    o.expire_ms = 60000;
    o.fencing = true;
    redis_lock *a = NULL, *b = NULL;
    expect("name and id of 1 MB", "redis_lock_new", redis_lock_new(&a, c, name, &o),
           REDIS_LOCK_OK, NULL);
    assert_int_equal(strlen(redis_lock_name(a)), MB);
    expect("name and id of 1 MB", "redis_lock_acquire(0)", redis_lock_acquire(a, 0),
           REDIS_LOCK_OK, NULL);
    assert_int_equal(key_exists(&rt_main, "lock:", name), 1);
    assert_true(redis_lock_fencing_token(a) > 0);
    b = mk(c, name, 0, false);
    expect("name of 1 MB, held", "redis_lock_acquire(0)", redis_lock_acquire(b, 0),
           REDIS_LOCK_BUSY, NULL);
    assert_true(strlen(redis_lock_last_error()) < 4096); /* the message is bounded */
    char *owner = NULL;
    expect("name and id of 1 MB", "redis_lock_get_owner_id", redis_lock_get_owner_id(b, &owner),
           REDIS_LOCK_OK, NULL);
    assert_non_null(owner);
    assert_int_equal(strlen(owner), MB);
    assert_string_equal(owner, id);
    free(owner);
    bool locked = false;
    expect("name of 1 MB", "redis_lock_locked", redis_lock_locked(b, &locked), REDIS_LOCK_OK,
           NULL);
    assert_true(locked);
    int64_t ttl = 0;
    expect("name of 1 MB", "redis_lock_ttl", redis_lock_ttl(b, &ttl), REDIS_LOCK_OK, NULL);
    assert_true(ttl > 50000);
    expect("name and id of 1 MB", "redis_lock_extend", redis_lock_extend(a, 90000),
           REDIS_LOCK_OK, NULL);
    /* a waiter on the 1 MB signal key is woken by the release */
    waiter_arg w = {b, -100};
    pthread_t t;
    pthread_create(&t, NULL, waiter, &w);
    rt_sleep_ms(200);
    expect("name and id of 1 MB", "redis_lock_release", redis_lock_release(a), REDIS_LOCK_OK,
           NULL);
    pthread_join(t, NULL);
    expect("name of 1 MB, waiting", "redis_lock_acquire(5000)", w.rc, REDIS_LOCK_OK, NULL);
    size_t count = 0;
    expect("name of 1 MB", "redis_lock_reset_all", redis_lock_reset_all(c, &count),
           REDIS_LOCK_OK, NULL);
    assert_int_equal(count, 1);
    assert_int_equal(key_exists(&rt_main, "lock:", name), 0);
    redis_lock_free(a);
    redis_lock_free(b);

    free(name);
    free(id);
    redis_lock_client_close(c);
}

static int make_hello(void *payload, char **value, size_t *len)
{
    int *calls = payload;
    if (calls)
        (*calls)++;
    *value = strdup("hello");
    *len = 5;
    return *value ? 0 : 1;
}

static void huge_cache_key(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    char *key = huge(MB, 'k');
    redis_lock_cache_options co;
    redis_lock_cache_options_init(&co);
    co.ttl_ms = 60000;
    char *v = NULL;
    size_t len = 0;
    int calls = 0;
    expect("cache key of 1 MB", "redis_lock_cache_get_or_set",
           redis_lock_cache_get_or_set(c, key, &co, make_hello, &calls, &v, &len),
           REDIS_LOCK_OK, NULL);
    assert_int_equal(calls, 1);
    assert_string_equal(v, "hello");
    free(v);
    v = NULL;
    expect("cache key of 1 MB, cached", "redis_lock_cache_get_or_set",
           redis_lock_cache_get_or_set(c, key, &co, make_hello, &calls, &v, &len),
           REDIS_LOCK_OK, NULL);
    assert_int_equal(calls, 1);
    free(v);
    assert_int_equal(key_exists(&rt_main, "", key), 1);
    expect("cache key of 1 MB", "redis_lock_cache_delete", redis_lock_cache_delete(c, key),
           REDIS_LOCK_OK, NULL);
    assert_int_equal(key_exists(&rt_main, "", key), 0);
    assert_int_equal(key_exists(&rt_main, "lock:get_or_set:", key), 0);
    free(key);
    redis_lock_client_close(c);
}

static void nul_inside_is_the_end(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    static const char name[] = "ab\0cd", id[] = "me\0you";
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.id = id;
    redis_lock *l = NULL;
    expect("name \"ab\\0cd\", id \"me\\0you\"", "redis_lock_new", redis_lock_new(&l, c, name, &o),
           REDIS_LOCK_OK, NULL);
    assert_string_equal(redis_lock_name(l), "ab");
    assert_string_equal(redis_lock_id(l), "me");
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    redisReply *r = rt_cmd(&rt_main, "GET lock:ab");
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 2);
    assert_string_equal(r->str, "me");
    freeReplyObject(r);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
}

/* ================= times ================= */

static void negative_times(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *l = NULL;
    redis_lock_options o;
    const int64_t bad[] = {-1, -2, INT64_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char in[64];
        snprintf(in, sizeof in, "expire_ms %lld", (long long)bad[i]);
        redis_lock_options_init(&o);
        o.expire_ms = bad[i];
        expect(in, "redis_lock_new", redis_lock_new(&l, c, "t", &o), REDIS_LOCK_EINVAL,
               "expire");
        snprintf(in, sizeof in, "signal_expire_ms %lld", (long long)bad[i]);
        redis_lock_options_init(&o);
        o.signal_expire_ms = bad[i];
        expect(in, "redis_lock_new", redis_lock_new(&l, c, "t", &o), REDIS_LOCK_EINVAL,
               "signal");
        snprintf(in, sizeof in, "max_hold_ms %lld", (long long)bad[i]);
        redis_lock_options_init(&o);
        o.max_hold_ms = bad[i];
        expect(in, "redis_lock_new", redis_lock_new(&l, c, "t", &o), REDIS_LOCK_EINVAL,
               "max_hold");
        snprintf(in, sizeof in, "renewal_interval_ms %lld", (long long)bad[i]);
        redis_lock_options_init(&o);
        o.expire_ms = 1000;
        o.auto_renewal = true;
        o.renewal_interval_ms = bad[i];
        expect(in, "redis_lock_new", redis_lock_new(&l, c, "t", &o), REDIS_LOCK_EINVAL,
               "renewal");
    }
    redis_lock_options_init(&o);
    o.signal_expire_ms = 0;
    expect("signal_expire_ms 0", "redis_lock_new", redis_lock_new(&l, c, "t", &o),
           REDIS_LOCK_EINVAL, "signal");
    assert_null(l);

    l = mk(c, "t", 1000, false);
    expect("timeout_ms -2", "redis_lock_acquire", redis_lock_acquire(l, -2), REDIS_LOCK_EINVAL,
           "timeout");
    expect("timeout_ms INT64_MIN", "redis_lock_acquire", redis_lock_acquire(l, INT64_MIN),
           REDIS_LOCK_EINVAL, "timeout");
    expect("timeout_ms INT64_MIN", "redis_lock_with",
           redis_lock_with(l, INT64_MIN, must_not_run, NULL),
           REDIS_LOCK_EINVAL, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    expect("expire_ms -1", "redis_lock_extend", redis_lock_extend(l, -1), REDIS_LOCK_EINVAL,
           "expire");
    expect("expire_ms INT64_MIN", "redis_lock_extend", redis_lock_extend(l, INT64_MIN),
           REDIS_LOCK_EINVAL, "expire");
    assert_owner(&rt_main, "t", redis_lock_id(l));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);

    redis_lock_cache_options co;
    char *v = NULL;
    size_t len = 0;
    const int64_t badttl[] = {0, -1, INT64_MIN};
    for (size_t i = 0; i < 3; i++) {
        char in[64];
        snprintf(in, sizeof in, "cache ttl_ms %lld", (long long)badttl[i]);
        redis_lock_cache_options_init(&co);
        co.ttl_ms = badttl[i];
        expect(in, "redis_lock_cache_get_or_set",
               redis_lock_cache_get_or_set(c, "ck", &co, make_hello, NULL, &v, &len),
               REDIS_LOCK_EINVAL, "ttl");
    }
    redis_lock_cache_options_init(&co);
    co.ttl_ms = 1000;
    co.timeout_ms = INT64_MIN;
    expect("cache timeout_ms INT64_MIN", "redis_lock_cache_get_or_set",
           redis_lock_cache_get_or_set(c, "ck", &co, make_hello, NULL, &v, &len),
           REDIS_LOCK_EINVAL, "timeout");
    co.timeout_ms = -1;
    co.lock.expire_ms = -5;
    expect("cache lock.expire_ms -5", "redis_lock_cache_get_or_set",
           redis_lock_cache_get_or_set(c, "ck", &co, make_hello, NULL, &v, &len),
           REDIS_LOCK_EINVAL, "expire");
    assert_null(v);

    redis_lock_client_options cl;
    const int badint[] = {0, -1, INT32_MIN};
    for (size_t i = 0; i < 3; i++) {
        char in[64];
        redis_lock_client *x = NULL;
        snprintf(in, sizeof in, "connect_timeout_ms %d", badint[i]);
        redis_lock_client_options_init(&cl);
        cl.url = rt_main.url;
        cl.connect_timeout_ms = badint[i];
        expect(in, "redis_lock_client_open", redis_lock_client_open(&x, &cl), REDIS_LOCK_EINVAL,
               "timeout");
        snprintf(in, sizeof in, "command_timeout_ms %d", badint[i]);
        redis_lock_client_options_init(&cl);
        cl.url = rt_main.url;
        cl.command_timeout_ms = badint[i];
        expect(in, "redis_lock_client_open", redis_lock_client_open(&x, &cl), REDIS_LOCK_EINVAL,
               "timeout");
        assert_null(x);
    }
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:t ck lock:get_or_set:ck"), 0);
    redis_lock_client_close(c);
}

static void int_max_client_timeouts(void **state)
{
    (void)state;
    redis_lock_client_options cl;
    redis_lock_client_options_init(&cl);
    cl.url = rt_main.url;
    cl.connect_timeout_ms = INT32_MAX;
    cl.command_timeout_ms = INT32_MAX;
    redis_lock_client *c = NULL;
    expect("connect/command_timeout_ms INT_MAX", "redis_lock_client_open",
           redis_lock_client_open(&c, &cl), REDIS_LOCK_OK, NULL);
    redis_lock *l = mk(c, "imax", 0, false);
    expect("command_timeout_ms INT_MAX", "redis_lock_acquire(0)", redis_lock_acquire(l, 0),
           REDIS_LOCK_OK, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
}

/* acquire(INT64_MAX) is "wait about forever": it must wait for the holder, not return
 * BUSY at once (deadline = now + INT64_MAX overflows) */
static int child_timeout_int64_max(char *msg, size_t n, bool renewal)
{
    int ret = 1;
    redis_lock_client *c = NULL;
    redis_lock *h = NULL, *w = NULL;
    if (redis_lock_client_open(&c, &(redis_lock_client_options){
                                       .version = REDIS_LOCK_CLIENT_OPTIONS_VERSION,
                                       .url = rt_main.url, .connect_timeout_ms = 2000,
                                       .command_timeout_ms = 2000}))
        CHILD_CHECK(0, "client_open: %s", redis_lock_last_error());
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 400; /* the holder never releases: its key expires */
    redis_lock_new(&h, c, "tmax", &o);
    redis_lock_options_init(&o);
    if (renewal) {
        o.expire_ms = 5000;
        o.auto_renewal = true;
    }
    redis_lock_new(&w, c, "tmax", &o);
    CHILD_CHECK(h && w, "lock_new failed: %s", redis_lock_last_error());
    CHILD_CHECK(redis_lock_acquire(h, 0) == 0, "holder: %s", redis_lock_last_error());
    int64_t t0 = rt_now_ms();
    int rc = redis_lock_acquire(w, INT64_MAX);
    int64_t took = rt_now_ms() - t0;
    row(renewal ? "timeout_ms INT64_MAX (auto_renewal), held 400 ms more"
                : "timeout_ms INT64_MAX (no expiry), held 400 ms more",
        "redis_lock_acquire", rc);
    CHILD_CHECK(rc == REDIS_LOCK_OK,
                "acquire(INT64_MAX) returned %s after %lld ms instead of waiting for the "
                "holder's key to expire: %s",
                redis_lock_code_name(rc), (long long)took, redis_lock_last_error());
    CHILD_CHECK(took >= 300, "acquire(INT64_MAX) took only %lld ms", (long long)took);
    redis_lock_release(w);
    ret = 0;
out:
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(c);
    return ret;
}

static int child_tmax_plain(char *msg, size_t n)
{
    return child_timeout_int64_max(msg, n, false);
}

static int child_tmax_renewal(char *msg, size_t n)
{
    return child_timeout_int64_max(msg, n, true);
}

static void timeout_int64_max_waits(void **state)
{
    (void)state;
    run_child("acquire(INT64_MAX), no expiry", child_tmax_plain);
    run_child("acquire(INT64_MAX), auto_renewal", child_tmax_renewal);
    assert_owner(&rt_main, "tmax", NULL);
}

static int child_cache_timeout_max(char *msg, size_t n)
{
    int ret = 1;
    redis_lock_client *c = NULL;
    redis_lock *h = NULL;
    char *v = NULL;
    size_t len = 0;
    if (redis_lock_client_open(&c, &(redis_lock_client_options){
                                       .version = REDIS_LOCK_CLIENT_OPTIONS_VERSION,
                                       .url = rt_main.url, .connect_timeout_ms = 2000,
                                       .command_timeout_ms = 2000}))
        CHILD_CHECK(0, "client_open: %s", redis_lock_last_error());
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 400; /* "another client computing" that died: its lock expires */
    redis_lock_new(&h, c, "get_or_set:ctmax", &o);
    CHILD_CHECK(h && redis_lock_acquire(h, 0) == 0, "holder: %s", redis_lock_last_error());
    redis_lock_cache_options co;
    redis_lock_cache_options_init(&co);
    co.ttl_ms = 10000;
    co.timeout_ms = INT64_MAX;
    int64_t t0 = rt_now_ms();
    int rc = redis_lock_cache_get_or_set(c, "ctmax", &co, make_hello, NULL, &v, &len);
    int64_t took = rt_now_ms() - t0;
    row("cache timeout_ms INT64_MAX, computing lock held 400 ms more",
        "redis_lock_cache_get_or_set", rc);
    CHILD_CHECK(rc == REDIS_LOCK_OK,
                "cache_get_or_set(timeout INT64_MAX) returned %s after %lld ms instead of "
                "waiting: %s",
                redis_lock_code_name(rc), (long long)took, redis_lock_last_error());
    CHILD_CHECK(v && strcmp(v, "hello") == 0, "wrong value");
    ret = 0;
out:
    free(v);
    redis_lock_free(h);
    redis_lock_client_close(c);
    return ret;
}

static void cache_timeout_int64_max_waits(void **state)
{
    (void)state;
    run_child("cache_get_or_set(timeout INT64_MAX)", child_cache_timeout_max);
}

/* expire_ms so large that Redis refuses it (SET PX INT64_MAX): a clear error, and no key */
static void expire_int64_max(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = INT64_MAX;
    redis_lock *l = NULL;
    int rc = redis_lock_new(&l, c, "emax", &o);
    if (rc == REDIS_LOCK_EINVAL) {
        expect("expire_ms INT64_MAX", "redis_lock_new", rc, REDIS_LOCK_EINVAL, "expire");
    } else {
        expect("expire_ms INT64_MAX", "redis_lock_new", rc, REDIS_LOCK_OK, NULL);
        rc = redis_lock_acquire(l, 0);
        row("expire_ms INT64_MAX", "redis_lock_acquire(0)", rc);
        if (rc != REDIS_LOCK_EINVAL && rc != REDIS_LOCK_ESERVER)
            fail_msg("acquire with expire_ms INT64_MAX returned %s: %s",
                     redis_lock_code_name(rc), redis_lock_last_error());
        assert_true(redis_lock_last_error()[0] != '\0');
        assert_owner(&rt_main, "emax", NULL);
    }
    redis_lock_free(l);

    /* extend(INT64_MAX): refused, the lock keeps its expiry and owner */
    l = mk(c, "emax", 5000, false);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    rc = redis_lock_extend(l, INT64_MAX);
    row("expire_ms INT64_MAX", "redis_lock_extend", rc);
    if (rc != REDIS_LOCK_EINVAL && rc != REDIS_LOCK_ESERVER)
        fail_msg("extend(INT64_MAX) returned %s: %s", redis_lock_code_name(rc),
                 redis_lock_last_error());
    assert_true(redis_lock_last_error()[0] != '\0');
    assert_owner(&rt_main, "emax", redis_lock_id(l));
    long long pttl = rt_cmd_int(&rt_main, "PTTL lock:emax");
    assert_true(pttl > 0 && pttl <= 5000);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);

    /* the cache's ttl: refused, nothing stored, no lock left */
    redis_lock_cache_options co;
    redis_lock_cache_options_init(&co);
    co.ttl_ms = INT64_MAX;
    char *v = NULL;
    size_t len = 0;
    rc = redis_lock_cache_get_or_set(c, "cmax", &co, make_hello, NULL, &v, &len);
    row("cache ttl_ms INT64_MAX", "redis_lock_cache_get_or_set", rc);
    if (rc != REDIS_LOCK_EINVAL && rc != REDIS_LOCK_ESERVER)
        fail_msg("cache ttl INT64_MAX returned %s: %s", redis_lock_code_name(rc),
                 redis_lock_last_error());
    assert_null(v);
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS cmax"), 0);
    assert_owner(&rt_main, "get_or_set:cmax", NULL);
    redis_lock_client_close(c);
}

/* signal_expire_ms INT64_MAX: the release script's PEXPIRE is refused by Redis after it
 * already pushed the signal; the lock must not be left held */
static void signal_expire_int64_max(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.signal_expire_ms = INT64_MAX;
    redis_lock *l = NULL;
    int rc = redis_lock_new(&l, c, "smax", &o);
    if (rc == REDIS_LOCK_EINVAL) {
        expect("signal_expire_ms INT64_MAX", "redis_lock_new", rc, REDIS_LOCK_EINVAL, "signal");
    } else {
        expect("signal_expire_ms INT64_MAX", "redis_lock_new", rc, REDIS_LOCK_OK, NULL);
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
        rc = redis_lock_release(l);
        row("signal_expire_ms INT64_MAX", "redis_lock_release", rc);
        char *left = lock_owner(&rt_main, "smax");
        bool held = left != NULL;
        free(left);
        if (rc != REDIS_LOCK_OK || held)
            fail_msg("release with signal_expire_ms INT64_MAX returned %s (%s) and %s the "
                     "lock held: validate signal_expire_ms in redis_lock_new",
                     redis_lock_code_name(rc), redis_lock_last_error(),
                     held ? "left" : "did not leave");
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
        rc = redis_lock_reset(l);
        row("signal_expire_ms INT64_MAX", "redis_lock_reset", rc);
        assert_rl(REDIS_LOCK_OK, rc);
        assert_owner(&rt_main, "smax", NULL);
    }
    redis_lock_free(l);
    redis_lock_client_close(c);
}

/* expire_ms that Redis accepts but whose arithmetic could overflow (interval = expire *
 * 2 / 3, due = now + interval) with auto_renewal: refused up front, or renewed at a sane
 * pace; nothing may overflow (UBSan) */
static int child_huge_expire(char *msg, size_t n, int64_t expire_ms, const char *input)
{
    int ret = 1;
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    if (redis_lock_client_open(&c, &(redis_lock_client_options){
                                       .version = REDIS_LOCK_CLIENT_OPTIONS_VERSION,
                                       .url = rt_main.url, .connect_timeout_ms = 2000,
                                       .command_timeout_ms = 2000}))
        CHILD_CHECK(0, "client_open: %s", redis_lock_last_error());
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = expire_ms;
    o.auto_renewal = true;
    int rc = redis_lock_new(&l, c, "hmax", &o);
    row(input, "redis_lock_new", rc);
    if (rc == REDIS_LOCK_EINVAL) {
        ret = 0; /* refused up front: fine */
        goto out;
    }
    CHILD_CHECK(rc == 0, "lock_new: %s", redis_lock_last_error());
    long long before = 0, after = 0;
    redisReply *r = rt_cmd(&rt_main, "INFO commandstats");
    const char *p = strstr(r->str, "cmdstat_evalsha:calls=");
    before = p ? atoll(p + 22) : 0;
    freeReplyObject(r);
    rc = redis_lock_acquire(l, 0);
    row(input, "redis_lock_acquire(0)", rc);
    if (rc == REDIS_LOCK_EINVAL || rc == REDIS_LOCK_ESERVER) {
        ret = 0; /* refused at acquire: fine, if no key is left */
        char *left = lock_owner(&rt_main, "hmax");
        free(left);
        CHILD_CHECK(!left, "a refused acquire left its key");
        goto out;
    }
    CHILD_CHECK(rc == 0, "acquire: %s", redis_lock_last_error());
    rt_sleep_ms(500);
    r = rt_cmd(&rt_main, "INFO commandstats");
    p = strstr(r->str, "cmdstat_evalsha:calls=");
    after = p ? atoll(p + 22) : 0;
    freeReplyObject(r);
    CHILD_CHECK(after - before < 10,
                "%s: %lld renewals in 500 ms (the renewal interval overflowed?)", input,
                after - before);
    long long pttl = rt_cmd_int(&rt_main, "PTTL lock:hmax");
    CHILD_CHECK(pttl > 0, "PTTL %lld", pttl);
    CHILD_CHECK(redis_lock_release(l) == 0, "release: %s", redis_lock_last_error());
    ret = 0;
out:
    redis_lock_free(l);
    redis_lock_client_close(c);
    return ret;
}

static int child_expire_2_62(char *msg, size_t n)
{
    return child_huge_expire(msg, n, INT64_C(1) << 62, "expire_ms 2^62, auto_renewal");
}

static int child_expire_max(char *msg, size_t n)
{
    return child_huge_expire(msg, n, RL_MAX_MS, "expire_ms RL_MAX_MS (10^13), auto_renewal");
}

static void huge_expire_with_renewal(void **state)
{
    (void)state;
    run_child("expire_ms 2^62 with auto_renewal", child_expire_2_62);
    run_child("expire_ms RL_MAX_MS with auto_renewal", child_expire_max);
    assert_owner(&rt_main, "hmax", NULL);
}

static void max_hold_int64_max(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 300;
    o.auto_renewal = true;
    o.max_hold_ms = INT64_MAX;
    redis_lock *l = NULL;
    expect("max_hold_ms INT64_MAX", "redis_lock_new", redis_lock_new(&l, c, "hold", &o),
           REDIS_LOCK_OK, NULL);
    expect("max_hold_ms INT64_MAX", "redis_lock_acquire(0)", redis_lock_acquire(l, 0),
           REDIS_LOCK_OK, NULL);
    rt_sleep_ms(700); /* renewed past its expiry */
    assert_owner(&rt_main, "hold", redis_lock_id(l));
    expect("max_hold_ms INT64_MAX", "redis_lock_release", redis_lock_release(l), REDIS_LOCK_OK,
           NULL);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

/* ================= keys of the wrong type ================= */

static void wrong_type_lock_key(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    const char *types[2] = {"list", "hash"};
    for (int t = 0; t < 2; t++) {
        char in[64];
        snprintf(in, sizeof in, "`lock:x` a %s", types[t]);
        rt_flush(NULL);
        if (t == 0)
            cmd_ok(&rt_main, "RPUSH lock:x %s", "a");
        else
            cmd_ok(&rt_main, "HSET lock:x f %s", "v");
        redis_lock *l = mk(c, "x", 1000, true);
        expect(in, "redis_lock_acquire(0)", redis_lock_acquire(l, 0), REDIS_LOCK_ESERVER,
               "WRONGTYPE");
        expect(in, "redis_lock_acquire(300)", redis_lock_acquire(l, 300), REDIS_LOCK_ESERVER,
               "WRONGTYPE");
        expect(in, "redis_lock_release", redis_lock_release(l), REDIS_LOCK_ESERVER,
               "WRONGTYPE");
        expect(in, "redis_lock_extend", redis_lock_extend(l, 1000), REDIS_LOCK_ESERVER,
               "WRONGTYPE");
        bool locked = false;
        expect(in, "redis_lock_locked", redis_lock_locked(l, &locked), REDIS_LOCK_OK, NULL);
        assert_true(locked);
        char *owner = (char *)"junk";
        expect(in, "redis_lock_get_owner_id", redis_lock_get_owner_id(l, &owner),
               REDIS_LOCK_ESERVER, "WRONGTYPE");
        assert_null(owner);
        int64_t ttl = 0;
        expect(in, "redis_lock_ttl", redis_lock_ttl(l, &ttl), REDIS_LOCK_OK, NULL);
        assert_int_equal(ttl, -1);
        expect(in, "redis_lock_with", redis_lock_with(l, 0, must_not_run, NULL),
               REDIS_LOCK_ESERVER, "WRONGTYPE");
        /* nothing above touched it, nor counted a fencing token */
        redisReply *r = rt_cmd(&rt_main, "TYPE lock:x");
        assert_string_equal(r->str, types[t]);
        freeReplyObject(r);
        assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock-fence:x"), 0);
        /* the client is fine after the error replies */
        redis_lock *ok = mk(c, "fine", 0, false);
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(ok, 0));
        assert_rl(REDIS_LOCK_OK, redis_lock_release(ok));
        redis_lock_free(ok);
        /* reset deletes whatever is there (python-redis-lock does the same) */
        size_t count = 0;
        expect(in, "redis_lock_reset_all", redis_lock_reset_all(c, &count), REDIS_LOCK_OK, NULL);
        assert_int_equal(count, 1);
        assert_int_equal(rt_cmd_int(&rt_main, "EXISTS lock:x"), 0);
        redis_lock_free(l);
    }
    redis_lock_client_close(c);
}

static void wrong_type_signal_key(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *h = mk(c, "s", 0, false), *w = mk(c, "s", 0, false);
    cmd_ok(&rt_main, "SET lock-signal:s %s", "text");
    const char *in = "`lock-signal:x` a string";
    expect(in, "redis_lock_acquire(0)", redis_lock_acquire(h, 0), REDIS_LOCK_OK, NULL);
    expect(in, "redis_lock_acquire(300)", redis_lock_acquire(w, 300), REDIS_LOCK_ESERVER,
           "WRONGTYPE");
    assert_owner(&rt_main, "s", redis_lock_id(h));
    expect(in, "redis_lock_release", redis_lock_release(h), REDIS_LOCK_OK, NULL);
    assert_int_equal(rt_cmd_int(&rt_main, "LLEN lock-signal:s"), 1);
    cmd_ok(&rt_main, "SET lock-signal:s %s", "text");
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(h, 0));
    expect(in, "redis_lock_reset", redis_lock_reset(w), REDIS_LOCK_OK, NULL);
    assert_owner(&rt_main, "s", NULL);
    assert_int_equal(rt_cmd_int(&rt_main, "LLEN lock-signal:s"), 1);
    redis_lock_free(h);
    redis_lock_free(w);
    redis_lock_client_close(c);
}

/* the fencing counter cannot be incremented: the acquire fails, and must not leave the
 * lock held by an owner that was told it failed */
static void wrong_type_fence_key(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    static const struct {
        const char *in, *setup, *arg, *mention;
    } cases[] = {
        {"`lock-fence:x` = \"abc\"", "SET lock-fence:f %s", "abc", "integer"},
        {"`lock-fence:x` = INT64_MAX", "SET lock-fence:f %s", "9223372036854775807",
         "overflow"},
        {"`lock-fence:x` a list", "RPUSH lock-fence:f %s", "a", "WRONGTYPE"},
    };
    int left_behind = 0;
    char report[1024] = "";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rt_flush(NULL);
        cmd_ok(&rt_main, cases[i].setup, cases[i].arg);
        redis_lock *l = mk(c, "f", 0, true), *nf = mk(c, "f", 0, false);
        expect(cases[i].in, "redis_lock_acquire(0) with fencing", redis_lock_acquire(l, 0),
               REDIS_LOCK_ESERVER, cases[i].mention);
        char *owner = lock_owner(&rt_main, "f");
        if (owner) {
            left_behind++;
            size_t u = strlen(report);
            snprintf(report + u, sizeof report - u, "%s%s", u ? "; " : "", cases[i].in);
            free(owner);
            redisReply *r = rt_cmd(&rt_main, "DEL lock:f");
            freeReplyObject(r);
        }
        /* the handle is not left believing it holds the lock */
        assert_int_equal(redis_lock_fencing_token(l), 0);
        /* without fencing the counter is not touched: the lock works */
        expect(cases[i].in, "redis_lock_acquire(0) without fencing", redis_lock_acquire(nf, 0),
               REDIS_LOCK_OK, NULL);
        assert_rl(REDIS_LOCK_OK, redis_lock_release(nf));
        redis_lock_free(l);
        redis_lock_free(nf);
    }
    redis_lock_client_close(c);
    if (left_behind)
        fail_msg("the acquire script SETs lock:NAME before INCR lock-fence:NAME fails, and a "
                 "script error does not roll back: acquire returned ESERVER but left the lock "
                 "held by its id (%s)",
                 report);
}

static void wrong_type_cache_key(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    cmd_ok(&rt_main, "RPUSH ck %s", "a");
    redis_lock_cache_options co;
    redis_lock_cache_options_init(&co);
    co.ttl_ms = 1000;
    char *v = NULL;
    size_t len = 0;
    int calls = 0;
    expect("cache key a list", "redis_lock_cache_get_or_set",
           redis_lock_cache_get_or_set(c, "ck", &co, make_hello, &calls, &v, &len),
           REDIS_LOCK_ESERVER, "WRONGTYPE");
    assert_null(v);
    assert_int_equal(calls, 0);
    assert_owner(&rt_main, "get_or_set:ck", NULL);
    /* refresh computes and overwrites whatever type was there (SET) */
    co.refresh = true;
    expect("cache key a list, refresh", "redis_lock_cache_get_or_set",
           redis_lock_cache_get_or_set(c, "ck", &co, make_hello, &calls, &v, &len),
           REDIS_LOCK_OK, NULL);
    assert_string_equal(v, "hello");
    free(v);
    cmd_ok(&rt_main, "RPUSH ck2 %s", "a");
    expect("cache key a list", "redis_lock_cache_delete", redis_lock_cache_delete(c, "ck2"),
           REDIS_LOCK_OK, NULL);
    redis_lock_client_close(c);
}

/* ================= real error replies ================= */

static void config_set(const rt_server *s, const char *param, const char *value)
{
    redisReply *r = rt_cmd(s, "CONFIG SET %s %s", param, value);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("CONFIG SET %s %s: %s", param, value, r->str);
    freeReplyObject(r);
}

static int oom_teardown(void **state)
{
    (void)state;
    config_set(&rt_main, "maxmemory", "0");
    return 0;
}

static void oom_replies(void **state)
{
    (void)state;
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock *held = mk(c, "held", 60000, false), *l = mk(c, "o", 1000, true);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(held, 0));
    cmd_ok(&rt_main, "SET ck %s", "cached");
    config_set(&rt_main, "maxmemory-policy", "noeviction");
    config_set(&rt_main, "maxmemory", "1");
    const char *in = "OOM (`maxmemory 1`, noeviction)";
    expect(in, "redis_lock_acquire(0)", redis_lock_acquire(l, 0), REDIS_LOCK_ESERVER, "OOM");
    expect(in, "redis_lock_acquire(300)", redis_lock_acquire(l, 300), REDIS_LOCK_ESERVER, "OOM");
    assert_owner(&rt_main, "o", NULL);
    expect(in, "redis_lock_with", redis_lock_with(l, 0, must_not_run, NULL),
           REDIS_LOCK_ESERVER, "OOM");
    /* reads work */
    bool locked = false;
    expect(in, "redis_lock_locked", redis_lock_locked(held, &locked), REDIS_LOCK_OK, NULL);
    assert_true(locked);
    char *owner = NULL;
    expect(in, "redis_lock_get_owner_id", redis_lock_get_owner_id(held, &owner), REDIS_LOCK_OK,
           NULL);
    assert_string_equal(owner, redis_lock_id(held));
    free(owner);
    int64_t ttl = 0;
    expect(in, "redis_lock_ttl", redis_lock_ttl(held, &ttl), REDIS_LOCK_OK, NULL);
    /* extend: PEXPIRE does not grow memory */
    int rc = redis_lock_extend(held, 90000);
    row(in, "redis_lock_extend", rc);
    if (rc != REDIS_LOCK_OK && rc != REDIS_LOCK_ESERVER)
        fail_msg("extend under OOM returned %s", redis_lock_code_name(rc));
    assert_owner(&rt_main, "held", redis_lock_id(held));
    /* release: refused (the signal push needs memory) or done; never half done */
    rc = redis_lock_release(held);
    row(in, "redis_lock_release", rc);
    if (rc == REDIS_LOCK_ESERVER) {
        mention("OOM");
        assert_owner(&rt_main, "held", redis_lock_id(held));
    } else {
        assert_rl(REDIS_LOCK_OK, rc);
        assert_owner(&rt_main, "held", NULL);
    }
    /* the cache: a hit is served; a miss cannot take the lock and make is not called */
    redis_lock_cache_options co;
    redis_lock_cache_options_init(&co);
    co.ttl_ms = 10000;
    char *v = NULL;
    size_t len = 0;
    int calls = 0;
    expect(in, "redis_lock_cache_get_or_set (hit)",
           redis_lock_cache_get_or_set(c, "ck", &co, make_hello, &calls, &v, &len),
           REDIS_LOCK_OK, NULL);
    assert_string_equal(v, "cached");
    free(v);
    v = NULL;
    expect(in, "redis_lock_cache_get_or_set (miss)",
           redis_lock_cache_get_or_set(c, "ck-miss", &co, make_hello, &calls, &v, &len),
           REDIS_LOCK_ESERVER, "OOM");
    assert_null(v);
    assert_int_equal(calls, 0);
    assert_owner(&rt_main, "get_or_set:ck-miss", NULL);
    expect(in, "redis_lock_cache_delete", redis_lock_cache_delete(c, "ck"), REDIS_LOCK_OK, NULL);
    /* a new client can still connect */
    redis_lock_client *c2 = NULL;
    redis_lock_client_options co2;
    redis_lock_client_options_init(&co2);
    co2.url = rt_main.url;
    expect(in, "redis_lock_client_open", redis_lock_client_open(&c2, &co2), REDIS_LOCK_OK, NULL);
    redis_lock_client_close(c2);
    /* memory back: everything works again on the same handles */
    config_set(&rt_main, "maxmemory", "0");
    if (rc == REDIS_LOCK_ESERVER)
        assert_rl(REDIS_LOCK_OK, redis_lock_release(held));
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(held);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static void readonly_replies(void **state)
{
    (void)state;
    char conf[128];
    rt_server_start(&replica_master, NULL, 1);
    snprintf(conf, sizeof conf, "replicaof 127.0.0.1 %d\nreplica-read-only yes",
             replica_master.port);
    rt_server_start(&replica, conf, 0);
    /* a lock held on the master, seen by the replica */
    redis_lock_client *m = rt_client(&replica_master);
    redis_lock *held = mk(m, "r", 60000, false);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(held, 0));
    int64_t deadline = rt_now_ms() + 10000;
    while (key_exists(&replica, "lock:", "r") == 0 && rt_now_ms() < deadline)
        rt_sleep_ms(20);
    if (key_exists(&replica, "lock:", "r") == 0)
        fail_msg("the replica did not sync within 10 s");

    redis_lock_client *c = rt_client(&replica);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.id = redis_lock_id(held); /* the owner, connected to the replica by mistake */
    o.expire_ms = 60000;
    redis_lock *same = NULL, *l = mk(c, "free", 1000, true);
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&same, c, "r", &o));
    const char *in = "READONLY (a replica)";
    expect(in, "redis_lock_acquire(0)", redis_lock_acquire(l, 0), REDIS_LOCK_ESERVER,
           "READONLY");
    expect(in, "redis_lock_acquire(300)", redis_lock_acquire(l, 300), REDIS_LOCK_ESERVER,
           "READONLY");
    expect(in, "redis_lock_release", redis_lock_release(same), REDIS_LOCK_ESERVER, "READONLY");
    expect(in, "redis_lock_extend", redis_lock_extend(same, 90000), REDIS_LOCK_ESERVER,
           "READONLY");
    expect(in, "redis_lock_reset", redis_lock_reset(same), REDIS_LOCK_ESERVER, "READONLY");
    size_t count = 77;
    expect(in, "redis_lock_reset_all", redis_lock_reset_all(c, &count), REDIS_LOCK_ESERVER,
           "READONLY");
    assert_int_equal(count, 77);
    bool locked = false;
    expect(in, "redis_lock_locked", redis_lock_locked(same, &locked), REDIS_LOCK_OK, NULL);
    assert_true(locked);
    char *owner = NULL;
    expect(in, "redis_lock_get_owner_id", redis_lock_get_owner_id(same, &owner), REDIS_LOCK_OK,
           NULL);
    assert_string_equal(owner, redis_lock_id(held));
    free(owner);
    redis_lock_cache_options co;
    redis_lock_cache_options_init(&co);
    co.ttl_ms = 10000;
    char *v = NULL;
    size_t len = 0;
    int calls = 0;
    expect(in, "redis_lock_cache_get_or_set (miss)",
           redis_lock_cache_get_or_set(c, "ck", &co, make_hello, &calls, &v, &len),
           REDIS_LOCK_ESERVER, "READONLY");
    assert_int_equal(calls, 0);
    assert_null(v);
    expect(in, "redis_lock_cache_delete", redis_lock_cache_delete(c, "ck"), REDIS_LOCK_ESERVER,
           "READONLY");
    /* the master's lock is untouched by all of it */
    assert_owner(&replica_master, "r", redis_lock_id(held));
    long long pttl = rt_cmd_int(&replica_master, "PTTL lock:r");
    assert_true(pttl > 0 && pttl <= 60000);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(held));
    redis_lock_free(same);
    redis_lock_free(l);
    redis_lock_free(held);
    redis_lock_client_close(c);
    redis_lock_client_close(m);
    rt_server_stop(&replica);
    rt_server_stop(&replica_master);
}

static void assert_no_secret(const char *secret)
{
    if (strstr(redis_lock_last_error(), secret))
        fail_msg("the message shows the password: %s", redis_lock_last_error());
}

static void noauth_replies(void **state)
{
    (void)state;
    char url[512];
    redis_lock_client *c = (redis_lock_client *)(uintptr_t)1;
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = auth_srv.url;
    expect("NOAUTH (requirepass, no password)", "redis_lock_client_open",
           redis_lock_client_open(&c, &o), REDIS_LOCK_EAUTH, "NOAUTH");
    assert_null(c);
    snprintf(url, sizeof url, "unix://:Wr0ngPa55@%s", auth_srv.sock);
    o.url = url;
    expect("WRONGPASS (requirepass, wrong password)", "redis_lock_client_open",
           redis_lock_client_open(&c, &o), REDIS_LOCK_EAUTH, "WRONGPASS");
    assert_no_secret("Wr0ngPa55");
    assert_null(c);
    /* the password changes under an open client: its next connection is refused */
    snprintf(url, sizeof url, "unix://:s3cret@%s", auth_srv.sock);
    o.url = url;
    assert_rl(REDIS_LOCK_OK, redis_lock_client_open(&c, &o));
    redis_lock *l = mk(c, "a", 0, false);
    redisContext *ctx = rt_raw(&auth_srv);
    redisReply *r = redisCommand(ctx, "AUTH s3cret");
    freeReplyObject(r);
    r = redisCommand(ctx, "CONFIG SET requirepass changed");
    freeReplyObject(r);
    r = redisCommand(ctx, "CLIENT KILL TYPE normal SKIPME yes");
    freeReplyObject(r);
    int rc = redis_lock_acquire(l, 0);
    row("WRONGPASS (password changed, connection dropped)", "redis_lock_acquire(0)", rc);
    if (rc != REDIS_LOCK_EAUTH && rc != REDIS_LOCK_ECONN)
        fail_msg("acquire after a password change returned %s", redis_lock_code_name(rc));
    assert_true(redis_lock_last_error()[0] != '\0');
    assert_no_secret("s3cret");
    rc = redis_lock_acquire(l, 0);
    expect("WRONGPASS (password changed)", "redis_lock_acquire(0)", rc, REDIS_LOCK_EAUTH,
           "WRONGPASS");
    assert_no_secret("s3cret");
    r = redisCommand(ctx, "CONFIG SET requirepass s3cret");
    freeReplyObject(r);
    redisFree(ctx);
    expect("password restored", "redis_lock_acquire(0)", redis_lock_acquire(l, 0),
           REDIS_LOCK_OK, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static redisContext *admin(void)
{
    redisContext *ctx = rt_raw(&auth_srv);
    redisReply *r = redisCommand(ctx, "AUTH s3cret");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    return ctx;
}

static void acl_user(const char *user, const char *rules)
{
    redisContext *ctx = admin();
    const char *argv[16] = {"ACL", "SETUSER", user, "reset", "on", ">pw"};
    int argc = 6;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", rules);
    for (char *tok = strtok(buf, " "); tok && argc < 16; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("ACL SETUSER %s: %s", user, r->str);
    freeReplyObject(r);
    r = redisCommand(ctx, "FLUSHALL");
    freeReplyObject(r);
    r = redisCommand(ctx, "SCRIPT FLUSH");
    freeReplyObject(r);
    redisFree(ctx);
}

static redis_lock_client *acl_client(const char *user)
{
    char url[512];
    snprintf(url, sizeof url, "unix://%s:pw@%s", user, auth_srv.sock);
    return rt_client_url(url);
}

static void noperm_replies(void **state)
{
    (void)state;
    /* no EVALSHA (EVAL allowed): the library does not fall back on NOPERM */
    acl_user("noevalsha", "~* &* +@all -evalsha");
    redis_lock_client *c = acl_client("noevalsha");
    redis_lock *l = mk(c, "p", 1000, false);
    const char *in = "NOPERM (ACL user without +evalsha)";
    expect(in, "redis_lock_acquire(0)", redis_lock_acquire(l, 0), REDIS_LOCK_EAUTH, "NOPERM");
    expect(in, "redis_lock_release", redis_lock_release(l), REDIS_LOCK_EAUTH, "NOPERM");
    expect(in, "redis_lock_extend", redis_lock_extend(l, 1000), REDIS_LOCK_EAUTH, "NOPERM");
    expect(in, "redis_lock_reset", redis_lock_reset(l), REDIS_LOCK_EAUTH, "NOPERM");
    bool locked = true;
    expect(in, "redis_lock_locked", redis_lock_locked(l, &locked), REDIS_LOCK_OK, NULL);
    assert_false(locked);
    redis_lock_free(l);
    redis_lock_client_close(c);

    /* EVALSHA allowed, EVAL not: fine while the script is cached, NOPERM after a flush */
    acl_user("noeval", "~* &* +@all -eval");
    c = acl_client("noeval");
    l = mk(c, "p", 1000, false);
    in = "NOPERM (ACL user without +eval, script cache empty)";
    expect(in, "redis_lock_acquire(0)", redis_lock_acquire(l, 0), REDIS_LOCK_EAUTH, "NOPERM");
    assert_owner(&auth_srv, "p", NULL);
    /* an administrator loads the scripts: EVALSHA finds them, the lock works */
    redisContext *ctx = admin();
    for (int sc = 0; sc < RL_SCRIPT_COUNT; sc++) {
        redisReply *r = redisCommand(ctx, "SCRIPT LOAD %s", rl_script_source(sc));
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
    }
    redisFree(ctx);
    expect("ACL user without +eval, scripts loaded", "redis_lock_acquire(0)",
           redis_lock_acquire(l, 0), REDIS_LOCK_OK, NULL);
    expect("ACL user without +eval, scripts loaded", "redis_lock_release",
           redis_lock_release(l), REDIS_LOCK_OK, NULL);
    redis_lock_free(l);
    redis_lock_client_close(c);

    /* no access to the lock:* keys */
    acl_user("otherkeys", "~app:* &* +@all");
    c = acl_client("otherkeys");
    l = mk(c, "p", 1000, false);
    in = "NOPERM (ACL user limited to `~app:*`)";
    expect(in, "redis_lock_acquire(0)", redis_lock_acquire(l, 0), REDIS_LOCK_EAUTH, "NOPERM");
    bool lk = false;
    expect(in, "redis_lock_locked", redis_lock_locked(l, &lk), REDIS_LOCK_EAUTH, "NOPERM");
    char *owner = (char *)"junk";
    expect(in, "redis_lock_get_owner_id", redis_lock_get_owner_id(l, &owner),
           REDIS_LOCK_EAUTH, "NOPERM");
    assert_null(owner);
    int64_t ttl = 0;
    expect(in, "redis_lock_ttl", redis_lock_ttl(l, &ttl), REDIS_LOCK_EAUTH, "NOPERM");
    size_t count = 5;
    expect(in, "redis_lock_reset_all", redis_lock_reset_all(c, &count), REDIS_LOCK_OK, NULL);
    assert_int_equal(count, 0); /* SCAN shows it no lock:* key (there are none anyway) */
    redis_lock_cache_options co;
    redis_lock_cache_options_init(&co);
    co.ttl_ms = 1000;
    char *v = NULL;
    size_t len = 0;
    int calls = 0;
    expect(in, "redis_lock_cache_get_or_set (key ck)",
           redis_lock_cache_get_or_set(c, "ck", &co, make_hello, &calls, &v, &len),
           REDIS_LOCK_EAUTH, "NOPERM");
    expect(in, "redis_lock_cache_get_or_set (key app:ck, its lock is lock:get_or_set:app:ck)",
           redis_lock_cache_get_or_set(c, "app:ck", &co, make_hello, &calls, &v, &len),
           REDIS_LOCK_EAUTH, "NOPERM");
    assert_int_equal(calls, 0);
    assert_null(v);
    redis_lock_free(l);
    redis_lock_client_close(c);
}

static int setup_group(void **state)
{
    rt_setup_group(state);
    rt_server_start(&auth_srv, "requirepass s3cret", 0);
    return 0;
}

static int teardown_group(void **state)
{
    rt_server_stop(&auth_srv);
    rt_server_stop(&replica);
    rt_server_stop(&replica_master);
    return rt_teardown_group(state);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(null_and_empty_names, rt_flush),
        cmocka_unit_test_setup(huge_names_and_ids, rt_flush),
        cmocka_unit_test_setup(huge_cache_key, rt_flush),
        cmocka_unit_test_setup(nul_inside_is_the_end, rt_flush),
        cmocka_unit_test_setup(negative_times, rt_flush),
        cmocka_unit_test_setup(int_max_client_timeouts, rt_flush),
        cmocka_unit_test_setup(timeout_int64_max_waits, rt_flush),
        cmocka_unit_test_setup(cache_timeout_int64_max_waits, rt_flush),
        cmocka_unit_test_setup(expire_int64_max, rt_flush),
        cmocka_unit_test_setup(signal_expire_int64_max, rt_flush),
        cmocka_unit_test_setup(huge_expire_with_renewal, rt_flush),
        cmocka_unit_test_setup(max_hold_int64_max, rt_flush),
        cmocka_unit_test_setup(wrong_type_lock_key, rt_flush),
        cmocka_unit_test_setup(wrong_type_signal_key, rt_flush),
        cmocka_unit_test_setup(wrong_type_fence_key, rt_flush),
        cmocka_unit_test_setup(wrong_type_cache_key, rt_flush),
        cmocka_unit_test_setup_teardown(oom_replies, rt_flush, oom_teardown),
        cmocka_unit_test_setup(readonly_replies, rt_flush),
        cmocka_unit_test(noauth_replies),
        cmocka_unit_test(noperm_replies),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    signal(SIGPIPE, SIG_DFL);
    return cmocka_run_group_tests_name("test_badinput", tests, setup_group, teardown_group);
}
