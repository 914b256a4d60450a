/* labels: oom */
/* Allocation-failure walk over every public call.
 *
 * For each call: run it with the 1st of the library's own allocations failing
 * (rl_alloc_fail_at), then the 2nd, ... until a run counts fewer allocations than the one
 * meant to fail, i.e. it completed with nothing injected. Every run that had a failure
 * injected must
 *   - return REDIS_LOCK_ENOMEM with a message, or succeed (the allocation was optional:
 *     counted and printed);
 *   - not crash, and leak nothing: under ASan the test asks LSan for a leak check after
 *     every run, under valgrind it asks memcheck (VALGRIND_COUNT_LEAKS); both also check
 *     at exit (ctest's test_oom_valgrind runs this program under valgrind);
 *   - leave Redis as the failure explains: a failed acquire/with/cache call leaves no
 *     lock:NAME; a failed release/extend/reset/delete changes nothing, and the same call
 *     then succeeds without injection on the same handle (so the handle is not left in a
 *     state it cannot recover from).
 * Each call is walked twice: with the client's connection pool warm (one idle
 * connection) and cold (empty: the call must open a connection, whose allocations are
 * walked too).
 *
 * Only the library's allocations fail in these walks: hiredis allocates with its own
 * malloc (its reply reader and command formatter); see docs/reliability.md for that
 * boundary. The reply objects its reader makes can be failed too (rl_reply_fail_at): the
 * reply_oom_* tests walk those, i.e. memory running out while an answer is read. */
#include "harness.h"
#include "internal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define RT_HAVE_VALGRIND 1
#endif
#if __has_include(<sanitizer/lsan_interface.h>)
#include <sanitizer/lsan_interface.h>
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define RT_HAVE_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RT_HAVE_LSAN 1
#endif
#endif

#define WALK_MAX 400 /* no call makes this many allocations: reaching it is a failure */

static rt_server auth_srv; /* requirepass + db: client_open sends AUTH and SELECT too */

/* The lock names of the walks: short, or 2 KiB, so that commands outgrow any buffer the
 * library keeps inline and the heap path is walked too. */
static char long_name[2049];
static const char *acq_name = "acq", *held_name = "held", *with_name = "with";
static const char *cache_key = "ck";
static char cache_lock[2100] = "get_or_set:ck";

/* ---- leak checks after every run ---- */

#ifdef RT_HAVE_VALGRIND
static unsigned long vg_leaked;
#endif

static void check_no_leak(const char *call, long n)
{
#ifdef RT_HAVE_LSAN
    if (__lsan_do_recoverable_leak_check())
        fail_msg("%s: LeakSanitizer found a leak after failing allocation %ld", call, n);
#endif
#ifdef RT_HAVE_VALGRIND
    if (RUNNING_ON_VALGRIND) {
        /* definitely lost only: a running thread's TLS block counts as "possibly lost" */
        unsigned long leaked = 0, dubious = 0, reachable = 0, suppressed = 0;
        VALGRIND_DO_ADDED_LEAK_CHECK;
        VALGRIND_COUNT_LEAKS(leaked, dubious, reachable, suppressed);
        (void)dubious;
        (void)reachable;
        (void)suppressed;
        unsigned long before = vg_leaked;
        vg_leaked = leaked;
        if (leaked > before)
            fail_msg("%s: valgrind found %lu bytes leaked after failing allocation %ld", call,
                     leaked - before, n);
    }
#endif
    (void)call;
    (void)n;
}

/* ---- the walk ---- */

typedef struct env env;
typedef struct {
    const char *name;
    void (*setup)(env *e);          /* nothing injected */
    int (*call)(env *e);            /* the call under test: only this runs injected */
    void (*after)(env *e, int rc);  /* checks on Redis and outputs; may retry the call */
    void (*teardown)(env *e);       /* nothing injected */
} walk_spec;

struct env {
    const walk_spec *spec;
    bool cold;
    const char *url;
    redis_lock_client *c;       /* the client under test */
    redis_lock_client *other_c; /* a second client for setting up state */
    redis_lock *l, *other;
    redis_lock_options lo;
    /* outputs */
    redis_lock_client *opened;
    bool locked;
    char *owner;
    int64_t ttl;
    size_t count;
    char *value;
    size_t vlen;
    int fn_calls;
    int make_calls;
};

static void drain_pool(redis_lock_client *c)
{
    pthread_mutex_lock(&c->mu);
    rl_conn *conn = c->pool;
    c->pool = NULL;
    pthread_mutex_unlock(&c->mu);
    while (conn) {
        rl_conn *next = conn->next;
        rl_conn_close(conn);
        conn = next;
    }
}

static void base_setup(env *e)
{
    e->c = rt_client_url(e->url ? e->url : rt_main.url);
}

static void base_teardown(env *e)
{
    redis_lock_free(e->l);
    redis_lock_free(e->other);
    e->l = e->other = NULL;
    redis_lock_client_close(e->c);
    redis_lock_client_close(e->other_c);
    redis_lock_client_close(e->opened);
    e->c = e->other_c = e->opened = NULL;
    free(e->owner);
    e->owner = NULL;
    free(e->value);
    e->value = NULL;
}

/* The run's state lives in a global: when a check fails mid-run (cmocka longjmps out),
 * the next walk frees what it left, so one failure does not show up as leaks in every
 * later test. */
static env cur;
static char where[160]; /* which run a failed check belongs to */
static int soft_failures; /* locks left behind: reported for every run, fail at the end */

/* What a walk fails: the library's own allocations (rl_alloc_fail_at), or the reply
 * objects hiredis makes while reading a reply (rl_reply_fail_at), which is how memory
 * running out in the middle of reading an answer is made to happen. */
static long (*fail_at)(long nth) = rl_alloc_fail_at;

static void walk(const walk_spec *spec, const char *url)
{
    long optional = 0, n;
    int final_rc = -1000;
    rl_alloc_fail_at(0);
    rl_reply_fail_at(0);
    soft_failures = 0;
    if (cur.spec) {
        cur.spec->teardown(&cur);
        memset(&cur, 0, sizeof cur);
    }
    for (int cold = 0; cold <= 1; cold++) {
        for (n = 1; n <= WALK_MAX; n++) {
            env *ep = &cur;
#define e (*ep)
            memset(&e, 0, sizeof e);
            e.spec = spec;
            e.cold = cold;
            e.url = url;
            redis_lock_options_init(&e.lo);
            rt_flush(NULL);
            fail_at(0);
            spec->setup(&e);
            if (cold && e.c)
                drain_pool(e.c);
            fail_at(n);
            int rc = spec->call(&e);
            long counted = fail_at(0);
            bool injected = counted >= n;
            if (getenv("RT_OOM_VERBOSE"))
                print_message("  %s %s n=%ld counted=%ld: %s: %s\n", spec->name,
                              cold ? "cold" : "warm", n, counted, redis_lock_code_name(rc),
                              redis_lock_last_error());
            if (!injected) {
                if (rc != REDIS_LOCK_OK)
                    fail_msg("%s (%s pool): without any failure injected it returned %s: %s",
                             spec->name, cold ? "cold" : "warm", redis_lock_code_name(rc),
                             redis_lock_last_error());
            } else if (rc == REDIS_LOCK_OK) {
                optional++;
            } else if (rc != REDIS_LOCK_ENOMEM) {
                fail_msg("%s (%s pool): failing allocation %ld of %ld returned %s: %s",
                         spec->name, cold ? "cold" : "warm", n, counted,
                         redis_lock_code_name(rc), redis_lock_last_error());
            } else if (redis_lock_last_error()[0] == '\0') {
                fail_msg("%s (%s pool): failing allocation %ld returned ENOMEM without a "
                         "message", spec->name, cold ? "cold" : "warm", n);
            }
            snprintf(where, sizeof where, "%s, %s pool, failing allocation %ld of %ld, rc %s",
                     spec->name, cold ? "cold" : "warm", n, counted, redis_lock_code_name(rc));
            if (spec->after)
                spec->after(&e, rc);
            spec->teardown(&e);
            memset(&e, 0, sizeof e);
#undef e
            check_no_leak(spec->name, n);
            if (!injected) {
                final_rc = rc;
                break;
            }
        }
        if (n > WALK_MAX)
            fail_msg("%s: still failing after %d allocations", spec->name, WALK_MAX);
        print_message("%-28s %s pool: %3ld %s%s walked, %ld optional\n", spec->name,
                      cold ? "cold" : "warm", n - 1,
                      fail_at == rl_reply_fail_at ? "reply object" : "allocation",
                      n == 2 ? "" : "s", optional);
        optional = 0;
    }
    assert_int_equal(final_rc, REDIS_LOCK_OK);
    if (soft_failures)
        fail_msg("%s: %d run%s left a lock behind (listed above)", spec->name, soft_failures,
                 soft_failures == 1 ? "" : "s");
}

/* ---- state checks in Redis ---- */

static char *lock_value(const char *name)
{
    redisReply *r = rt_cmd(&rt_main, "GET lock:%s", name);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("GET lock:%s: %s", name, r->str);
    freeReplyObject(r);
    return v;
}

/* A lock left behind does not stop the walk: every run that leaves one is listed, and
 * the walk fails at its end. The key is deleted so the next run starts clean. */
static void assert_lock_absent(const char *name, const char *why)
{
    char *v = lock_value(name);
    if (v) {
        free(v);
        print_error("LOCK LEFT BEHIND: %s: lock:%.40s%s is left in Redis (%s)\n", why, name,
                    strlen(name) > 40 ? "..." : "", where);
        soft_failures++;
        redisReply *r = rt_cmd(&rt_main, "DEL lock:%s", name);
        freeReplyObject(r);
    }
}

static void assert_lock_owner(const char *name, const char *id, const char *why)
{
    char *v = lock_value(name);
    if (!v || strcmp(v, id) != 0) {
        free(v);
        fail_msg("%s: lock:%.40s is not held by %s (%s)", why, name, id, where);
    }
    free(v);
}

static redis_lock *mk_lock(redis_lock_client *c, const char *name, const redis_lock_options *o)
{
    redis_lock *l = NULL;
    assert_rl(REDIS_LOCK_OK, redis_lock_new(&l, c, name, o));
    return l;
}

/* ---- client_open ---- */

static void open_setup(env *e)
{
    (void)e;
}

static int open_call(env *e)
{
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = e->url;
    redis_lock_client *sentinel = (redis_lock_client *)&o;
    e->opened = sentinel; /* must be overwritten, with NULL on failure */
    int rc = redis_lock_client_open(&e->opened, &o);
    if (e->opened == sentinel) {
        e->opened = NULL;
        fail_msg("client_open returned %d without setting *out", rc);
    }
    return rc;
}

static void open_after(env *e, int rc)
{
    if (rc) {
        assert_null(e->opened);
        return;
    }
    assert_non_null(e->opened);
    /* the client works */
    redis_lock *l = mk_lock(e->opened, "open", NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
    redis_lock_free(l);
}

static const walk_spec open_spec = {"client_open", open_setup, open_call, open_after,
                                    base_teardown};

static void oom_client_open(void **state)
{
    (void)state;
    walk(&open_spec, rt_main.url);
}

static void oom_client_open_auth_db(void **state)
{
    (void)state;
    static const walk_spec spec = {"client_open (AUTH, SELECT)", open_setup, open_call,
                                   NULL, base_teardown};
    char url[512];
    snprintf(url, sizeof url, "unix://:s3cret@%s?db=2", auth_srv.sock);
    walk(&spec, url);
}

/* ---- lock_new ---- */

static int new_call(env *e)
{
    redis_lock *sentinel = (redis_lock *)e;
    e->l = sentinel; /* must be overwritten, with NULL on failure */
    int rc = redis_lock_new(&e->l, e->c, "newlock", &e->lo);
    if (e->l == sentinel) {
        e->l = NULL;
        fail_msg("lock_new returned %d without setting *out", rc);
    }
    return rc;
}

static void new_after(env *e, int rc)
{
    if (rc) {
        assert_null(e->l);
        return;
    }
    assert_non_null(e->l);
    assert_string_equal(redis_lock_name(e->l), "newlock");
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e->l, 0));
    assert_rl(REDIS_LOCK_OK, redis_lock_release(e->l));
}

static void oom_lock_new(void **state)
{
    (void)state;
    static const walk_spec spec = {"lock_new (random id)", base_setup, new_call, new_after,
                                   base_teardown};
    walk(&spec, NULL);
}

static void new_id_setup(env *e)
{
    base_setup(e);
    e->lo.id = "my-own-id";
    e->lo.expire_ms = 5000;
    e->lo.fencing = true;
}

static void oom_lock_new_id(void **state)
{
    (void)state;
    static const walk_spec spec = {"lock_new (given id)", new_id_setup, new_call, new_after,
                                   base_teardown};
    walk(&spec, NULL);
}

/* ---- acquire ---- */

static void acq_setup(env *e)
{
    base_setup(e);
    e->l = mk_lock(e->c, acq_name, &e->lo);
}

static void acq_fence_setup(env *e)
{
    base_setup(e);
    e->lo.fencing = true;
    e->lo.expire_ms = 10000;
    e->l = mk_lock(e->c, acq_name, &e->lo);
}

static void acq_renew_setup(env *e)
{
    base_setup(e);
    e->lo.expire_ms = 10000;
    e->lo.auto_renewal = true;
    e->l = mk_lock(e->c, acq_name, &e->lo);
}

static int acq_try_call(env *e)
{
    return redis_lock_acquire(e->l, 0);
}

static void acq_after(env *e, int rc)
{
    if (rc) {
        assert_lock_absent(acq_name, "a failed acquire");
        /* the handle recovers: the same acquire now succeeds (not EALREADY) */
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e->l, 0));
    }
    assert_lock_owner(acq_name, redis_lock_id(e->l), "after acquire");
    if (e->lo.fencing) {
        redisReply *r = rt_cmd(&rt_main, "GET lock-fence:acq");
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_int_equal(redis_lock_fencing_token(e->l), strtoll(r->str, NULL, 10));
        freeReplyObject(r);
    }
    assert_rl(REDIS_LOCK_OK, redis_lock_release(e->l));
}

static void oom_acquire_try(void **state)
{
    (void)state;
    static const walk_spec spec = {"acquire (try once)", acq_setup, acq_try_call, acq_after,
                                   base_teardown};
    walk(&spec, NULL);
}

static void oom_acquire_fencing(void **state)
{
    (void)state;
    static const walk_spec spec = {"acquire (fencing)", acq_fence_setup, acq_try_call,
                                   acq_after, base_teardown};
    walk(&spec, NULL);
}

static void oom_acquire_renewal(void **state)
{
    (void)state;
    static const walk_spec spec = {"acquire (auto_renewal)", acq_renew_setup, acq_try_call,
                                   acq_after, base_teardown};
    walk(&spec, NULL);
}

/* waiting: another client holds the lock for 150 ms more; the waiter sees its TTL, waits
 * (BLPOP, ended by its own timer through CLIENT UNBLOCK) and takes it */
static void acq_wait_setup(env *e)
{
    acq_setup(e);
    e->other_c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 150;
    e->other = mk_lock(e->other_c, acq_name, &o);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e->other, 0));
}

static int acq_wait_call(env *e)
{
    return redis_lock_acquire(e->l, 3000);
}

static void acq_wait_after(env *e, int rc)
{
    if (rc) {
        char *v = lock_value(acq_name);
        if (v && strcmp(v, redis_lock_id(e->l)) == 0)
            fail_msg("a failed waiting acquire left its own key");
        free(v);
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e->l, 3000));
    }
    assert_lock_owner(acq_name, redis_lock_id(e->l), "after a waiting acquire");
    assert_rl(REDIS_LOCK_OK, redis_lock_release(e->l));
}

static void oom_acquire_wait(void **state)
{
    (void)state;
    static const walk_spec spec = {"acquire (waiting)", acq_wait_setup, acq_wait_call,
                                   acq_wait_after, base_teardown};
    walk(&spec, NULL);
}

/* ---- the fair lock, the shared lock, the semaphore (docs/design.md 7) ---- */

/* a fair waiter behind a plain holder of 150 ms: a failed wait leaves neither the key nor
 * its place in the queue */
static void acq_fair_wait_setup(env *e)
{
    e->lo.fair = true;
    acq_wait_setup(e);
}

static void acq_fair_wait_after(env *e, int rc)
{
    if (rc) {
        long long queued = rt_cmd_int(&rt_main, "ZCARD lock-queue:%s", acq_name);
        if (queued)
            fail_msg("a failed fair acquire left %lld waiter(s) queued (%s)", queued, where);
    }
    acq_wait_after(e, rc);
}

static void oom_acquire_fair_wait(void **state)
{
    (void)state;
    static const walk_spec spec = {"acquire (fair, waiting)", acq_fair_wait_setup,
                                   acq_wait_call, acq_fair_wait_after, base_teardown};
    walk(&spec, NULL);
}

static void acq_shared_setup(env *e)
{
    e->lo.shared = true;
    e->lo.fencing = true;
    acq_setup(e);
}

static void acq_shared_after(env *e, int rc)
{
    if (rc) {
        if (rt_cmd_int(&rt_main, "EXISTS lock:%s lock-shared:%s", acq_name, acq_name))
            fail_msg("a failed shared acquire left its hold (%s)", where);
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e->l, 0));
    }
    assert_int_equal(rt_cmd_int(&rt_main, "ZCARD lock-shared:%s", acq_name), 1);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(e->l));
    assert_lock_absent(acq_name, "after a shared release");
}

static void oom_acquire_shared(void **state)
{
    (void)state;
    static const walk_spec spec = {"acquire (shared)", acq_shared_setup, acq_try_call,
                                   acq_shared_after, base_teardown};
    walk(&spec, NULL);
}

static void acq_sem_setup(env *e)
{
    base_setup(e);
    e->lo.fencing = true;
    assert_rl(REDIS_LOCK_OK, redis_lock_semaphore_new(&e->l, e->c, acq_name, 2, &e->lo));
}

static void acq_sem_after(env *e, int rc)
{
    if (rc) {
        if (rt_cmd_int(&rt_main, "EXISTS semaphore:%s", acq_name))
            fail_msg("a failed semaphore acquire left a permit (%s)", where);
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e->l, 0));
    }
    assert_int_equal(rt_cmd_int(&rt_main, "ZCARD semaphore:%s", acq_name), 1);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(e->l));
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS semaphore:%s", acq_name), 0);
}

static void oom_acquire_semaphore(void **state)
{
    (void)state;
    static const walk_spec spec = {"acquire (semaphore)", acq_sem_setup, acq_try_call,
                                   acq_sem_after, base_teardown};
    walk(&spec, NULL);
}

/* ---- release, extend, reset ---- */

static void held_setup(env *e)
{
    base_setup(e);
    e->lo.expire_ms = 10000;
    e->l = mk_lock(e->c, held_name, &e->lo);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e->l, 0));
}

static int release_call(env *e)
{
    return redis_lock_release(e->l);
}

static void release_after(env *e, int rc)
{
    if (rc) {
        assert_lock_owner(held_name, redis_lock_id(e->l), "a failed release");
        assert_rl(REDIS_LOCK_OK, redis_lock_release(e->l));
    }
    assert_lock_absent(held_name, "after release");
}

static void oom_release(void **state)
{
    (void)state;
    static const walk_spec spec = {"release", held_setup, release_call, release_after,
                                   base_teardown};
    walk(&spec, NULL);
}

static void held_renew_setup(env *e)
{
    base_setup(e);
    e->lo.expire_ms = 10000;
    e->lo.auto_renewal = true;
    e->l = mk_lock(e->c, held_name, &e->lo);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e->l, 0));
    rt_sleep_ms(30); /* let the renewal thread start (and allocate) before the walk */
}

static void oom_release_renewal(void **state)
{
    (void)state;
    static const walk_spec spec = {"release (auto_renewal)", held_renew_setup, release_call,
                                   release_after, base_teardown};
    walk(&spec, NULL);
}

static int extend_call(env *e)
{
    return redis_lock_extend(e->l, 60000);
}

static void extend_after(env *e, int rc)
{
    long long pttl = rt_cmd_int(&rt_main, "PTTL lock:held");
    if (rc) {
        if (pttl > 10000)
            fail_msg("a failed extend changed the expiry (%lld ms)", pttl);
        assert_rl(REDIS_LOCK_OK, redis_lock_extend(e->l, 60000));
        pttl = rt_cmd_int(&rt_main, "PTTL lock:held");
    }
    assert_true(pttl > 50000);
    assert_rl(REDIS_LOCK_OK, redis_lock_release(e->l));
}

static void oom_extend(void **state)
{
    (void)state;
    static const walk_spec spec = {"extend", held_setup, extend_call, extend_after,
                                   base_teardown};
    walk(&spec, NULL);
}

static void other_holds_setup(env *e)
{
    base_setup(e);
    e->l = mk_lock(e->c, held_name, &e->lo);
    e->other_c = rt_client(&rt_main);
    e->other = mk_lock(e->other_c, held_name, NULL);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(e->other, 0));
}

static int reset_call(env *e)
{
    return redis_lock_reset(e->l);
}

static void reset_after(env *e, int rc)
{
    if (rc) {
        assert_lock_owner(held_name, redis_lock_id(e->other), "a failed reset");
        assert_rl(REDIS_LOCK_OK, redis_lock_reset(e->l));
    }
    assert_lock_absent(held_name, "after reset");
    assert_int_equal(rt_cmd_int(&rt_main, "LLEN lock-signal:held"), 1);
}

static void oom_reset(void **state)
{
    (void)state;
    static const walk_spec spec = {"reset", other_holds_setup, reset_call, reset_after,
                                   base_teardown};
    walk(&spec, NULL);
}

/* ---- queries ---- */

static int locked_call(env *e)
{
    e->locked = false;
    return redis_lock_locked(e->l, &e->locked);
}

static void locked_after(env *e, int rc)
{
    if (!rc)
        assert_true(e->locked);
    assert_lock_owner(held_name, redis_lock_id(e->other), "locked");
}

static void oom_locked(void **state)
{
    (void)state;
    static const walk_spec spec = {"locked", other_holds_setup, locked_call, locked_after,
                                   base_teardown};
    walk(&spec, NULL);
}

static int owner_call(env *e)
{
    e->owner = (char *)"junk"; /* must be overwritten */
    int rc = redis_lock_get_owner_id(e->l, &e->owner);
    if (rc && e->owner) {
        const char *bad = e->owner;
        e->owner = NULL;
        fail_msg("get_owner_id failed but set *out (%p)", (const void *)bad);
    }
    return rc;
}

static void owner_after(env *e, int rc)
{
    if (!rc) {
        assert_non_null(e->owner);
        assert_string_equal(e->owner, redis_lock_id(e->other));
    }
}

static void oom_get_owner_id(void **state)
{
    (void)state;
    static const walk_spec spec = {"get_owner_id", other_holds_setup, owner_call, owner_after,
                                   base_teardown};
    walk(&spec, NULL);
}

static int ttl_call(env *e)
{
    e->ttl = 12345;
    return redis_lock_ttl(e->l, &e->ttl);
}

static void ttl_after(env *e, int rc)
{
    if (!rc)
        assert_int_equal(e->ttl, -1);
    else
        assert_int_equal(e->ttl, 12345);
}

static void oom_ttl(void **state)
{
    (void)state;
    static const walk_spec spec = {"ttl", other_holds_setup, ttl_call, ttl_after,
                                   base_teardown};
    walk(&spec, NULL);
}

/* ---- reset_all ---- */

static void many_held_setup(env *e)
{
    base_setup(e);
    e->other_c = rt_client(&rt_main);
    const char *names[3] = {"ra1", "ra2", "ra3"};
    for (int i = 0; i < 3; i++) {
        redis_lock *l = mk_lock(e->other_c, names[i], NULL);
        assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
        redis_lock_free(l);
    }
}

static int reset_all_call(env *e)
{
    e->count = 999;
    return redis_lock_reset_all(e->c, &e->count);
}

static void reset_all_after(env *e, int rc)
{
    if (rc) {
        assert_int_equal(e->count, 999);
        assert_rl(REDIS_LOCK_OK, redis_lock_reset_all(e->c, &e->count));
        /* a failure in the middle may have reset some locks already */
        assert_true(e->count <= 3);
    } else {
        assert_int_equal(e->count, 3);
    }
    redisReply *r = rt_cmd(&rt_main, "KEYS lock:*");
    assert_int_equal(r->elements, 0);
    freeReplyObject(r);
}

static void oom_reset_all(void **state)
{
    (void)state;
    static const walk_spec spec = {"reset_all", many_held_setup, reset_all_call,
                                   reset_all_after, base_teardown};
    walk(&spec, NULL);
}

/* ---- with ---- */

static int with_fn(void *payload)
{
    env *e = payload;
    e->fn_calls++;
    assert_lock_owner(with_name, redis_lock_id(e->l), "inside with");
    return 0;
}

static void with_setup(env *e)
{
    base_setup(e);
    e->lo.expire_ms = 10000;
    e->l = mk_lock(e->c, with_name, &e->lo);
}

static int with_call(env *e)
{
    return redis_lock_with(e->l, 0, with_fn, e);
}

static void with_after(env *e, int rc)
{
    assert_true(e->fn_calls <= 1);
    if (!rc)
        assert_int_equal(e->fn_calls, 1);
    /* whether fn ran or not, a finished with() leaves no lock behind */
    assert_lock_absent(with_name, rc ? "a failed with" : "after with");
}

static void oom_with(void **state)
{
    (void)state;
    static const walk_spec spec = {"with", with_setup, with_call, with_after, base_teardown};
    walk(&spec, NULL);
}

/* ---- cache ---- */

static int make_value(void *payload, char **value, size_t *len)
{
    env *e = payload;
    e->make_calls++;
    *value = malloc(6);
    if (!*value)
        return 1;
    memcpy(*value, "value!", 6);
    *len = 6;
    return 0;
}

static void cache_opts(redis_lock_cache_options *o, bool renewal)
{
    redis_lock_cache_options_init(o);
    o->ttl_ms = 60000;
    o->timeout_ms = 2000;
    if (!renewal) {
        o->lock.auto_renewal = false; /* no renewal thread allocating beside the walk */
        o->lock.expire_ms = 5000;
    }
}

static int cache_call_opts(env *e, bool renewal)
{
    redis_lock_cache_options o;
    cache_opts(&o, renewal);
    e->value = (char *)"junk"; /* must be overwritten */
    e->vlen = 77;
    int rc = redis_lock_cache_get_or_set(e->c, cache_key, &o, make_value, e, &e->value, &e->vlen);
    if (rc && e->value) {
        e->value = NULL;
        fail_msg("cache_get_or_set failed but set *out_value");
    }
    return rc;
}

static int cache_call(env *e)
{
    return cache_call_opts(e, false);
}

static int cache_renew_call(env *e)
{
    return cache_call_opts(e, true);
}

static void cache_after(env *e, int rc)
{
    assert_lock_absent(cache_lock, "cache_get_or_set");
    assert_true(e->make_calls <= 1);
    if (rc) {
        free(e->value);
        e->value = NULL;
        assert_rl(REDIS_LOCK_OK, cache_call(e));
    }
    assert_non_null(e->value);
    assert_int_equal(e->vlen, 6);
    assert_string_equal(e->value, "value!");
    redisReply *r = rt_cmd(&rt_main, "GET %s", cache_key);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_string_equal(r->str, "value!");
    freeReplyObject(r);
    assert_lock_absent(cache_lock, "cache_get_or_set");
}

/* the same walks with a 2 KiB lock name */
static void oom_long_names(void **state)
{
    (void)state;
    static const walk_spec acq = {"acquire (2 KiB name)", acq_setup, acq_try_call, acq_after,
                                  base_teardown};
    static const walk_spec wait = {"acquire waiting (2 KiB)", acq_wait_setup, acq_wait_call,
                                   acq_wait_after, base_teardown};
    static const walk_spec rel = {"release (2 KiB name)", held_setup, release_call,
                                  release_after, base_teardown};
    static const walk_spec with = {"with (2 KiB name)", with_setup, with_call, with_after,
                                   base_teardown};
    memset(long_name, 'L', sizeof long_name - 1);
    acq_name = held_name = with_name = long_name;
    walk(&acq, NULL);
    walk(&wait, NULL);
    walk(&rel, NULL);
    walk(&with, NULL);
    static const walk_spec cache = {"cache miss (2 KiB key)", base_setup, cache_call,
                                    cache_after, base_teardown};
    cache_key = long_name;
    snprintf(cache_lock, sizeof cache_lock, "get_or_set:%s", long_name);
    walk(&cache, NULL);
    cache_key = "ck";
    snprintf(cache_lock, sizeof cache_lock, "get_or_set:ck");
    acq_name = "acq";
    held_name = "held";
    with_name = "with";
}

static void oom_cache_miss(void **state)
{
    (void)state;
    static const walk_spec spec = {"cache_get_or_set (miss)", base_setup, cache_call,
                                   cache_after, base_teardown};
    walk(&spec, NULL);
}

static void oom_cache_miss_renewal(void **state)
{
    (void)state;
    static const walk_spec spec = {"cache_get_or_set (renewal)", base_setup,
                                   cache_renew_call, cache_after, base_teardown};
    walk(&spec, NULL);
}

static void cache_hit_setup(env *e)
{
    base_setup(e);
    redisReply *r = rt_cmd(&rt_main, "SET ck value!");
    freeReplyObject(r);
}

static void cache_hit_after(env *e, int rc)
{
    assert_int_equal(e->make_calls, 0);
    cache_after(e, rc);
    assert_int_equal(e->make_calls, 0);
}

static void oom_cache_hit(void **state)
{
    (void)state;
    static const walk_spec spec = {"cache_get_or_set (hit)", cache_hit_setup, cache_call,
                                   cache_hit_after, base_teardown};
    walk(&spec, NULL);
}

static int cache_delete_call(env *e)
{
    return redis_lock_cache_delete(e->c, "ck");
}

static void cache_delete_after(env *e, int rc)
{
    if (rc) {
        assert_int_equal(rt_cmd_int(&rt_main, "EXISTS ck"), 1);
        assert_rl(REDIS_LOCK_OK, redis_lock_cache_delete(e->c, "ck"));
    }
    assert_int_equal(rt_cmd_int(&rt_main, "EXISTS ck"), 0);
}

static void oom_cache_delete(void **state)
{
    (void)state;
    static const walk_spec spec = {"cache_delete", cache_hit_setup, cache_delete_call,
                                   cache_delete_after, base_teardown};
    walk(&spec, NULL);
}

/* ---- the hook itself ---- */

static void hook_counts_and_fails(void **state)
{
    (void)state;
    rl_alloc_fail_at(0);
    void *p = rl_malloc(10);
    assert_non_null(p);
    free(p);
    assert_int_equal(rl_alloc_fail_at(2), 1);
    p = rl_malloc(1);
    assert_non_null(p);
    free(p);
    assert_null(rl_malloc(1));
    p = rl_malloc(1);
    assert_non_null(p);
    free(p);
    assert_int_equal(rl_alloc_fail_at(0), 3);
}

/* ---- memory running out while reading an answer ----
 * The try was sent and ran; its answer is lost. A failed acquire must not leave the key
 * set: whatever that try may have taken is given back. */

static void walk_replies(const walk_spec *spec)
{
    fail_at = rl_reply_fail_at;
    walk(spec, NULL);
    fail_at = rl_alloc_fail_at;
}

static void reply_oom_acquire_try(void **state)
{
    (void)state;
    static const walk_spec spec = {"acquire, answer lost", acq_setup, acq_try_call,
                                   acq_after, base_teardown};
    walk_replies(&spec);
}

static void reply_oom_acquire_fencing(void **state)
{
    (void)state;
    static const walk_spec spec = {"acquire (fencing), answer lost", acq_fence_setup,
                                   acq_try_call, acq_after, base_teardown};
    walk_replies(&spec);
}

static void reply_oom_acquire_wait(void **state)
{
    (void)state;
    static const walk_spec spec = {"acquire (waiting), answer lost", acq_wait_setup,
                                   acq_wait_call, acq_wait_after, base_teardown};
    walk_replies(&spec);
}

static void reply_oom_acquire_fair_wait(void **state)
{
    (void)state;
    static const walk_spec spec = {"acquire (fair, waiting), answer lost", acq_fair_wait_setup,
                                   acq_wait_call, acq_fair_wait_after, base_teardown};
    walk_replies(&spec);
}

static atomic_int lost_calls;

static void count_lost(redis_lock *l, void *payload)
{
    (void)l;
    (void)payload;
    atomic_fetch_add(&lost_calls, 1);
}

/* The renewal thread reads a renewal's answer out of memory: hiredis keeps a reader that
 * failed failed, so that connection must not be used again; the next renewal goes on a
 * new one and the lock is kept. */
static void reply_oom_renewal_goes_on(void **state)
{
    (void)state;
    rt_flush(NULL);
    atomic_store(&lost_calls, 0);
    redis_lock_client *c = rt_client(&rt_main);
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = 1000; /* renewed every 666 ms */
    o.auto_renewal = true;
    o.on_lost = count_lost;
    redis_lock *l = mk_lock(c, "renewed", &o);
    assert_rl(REDIS_LOCK_OK, redis_lock_acquire(l, 0));
    rt_sleep_ms(900); /* the first renewal (at 666 ms) opened the renewal connection */
    assert_lock_owner("renewed", redis_lock_id(l), "after the first renewal");
    assert_true(rt_cmd_int(&rt_main, "PTTL lock:renewed") > 700);
    /* nothing else of the library runs meanwhile: the next reply object made is the one
     * of the second renewal's answer, on that connection */
    rl_reply_fail_at(1);
    rt_sleep_ms(3000); /* three expiries */
    long counted = rl_reply_fail_at(0);
    print_message("renewal answers read over 3 s: %ld reply objects (the first failed); "
                  "on_lost called %d times\n", counted, atomic_load(&lost_calls));
    assert_true(counted >= 2); /* the failure happened, and renewals went on after it */
    assert_int_equal(atomic_load(&lost_calls), 0);
    assert_lock_owner("renewed", redis_lock_id(l), "after a renewal answer lost to ENOMEM");
    assert_rl(REDIS_LOCK_OK, redis_lock_release(l));
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
    return rt_teardown_group(state);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hook_counts_and_fails),
        cmocka_unit_test(oom_client_open),
        cmocka_unit_test(oom_client_open_auth_db),
        cmocka_unit_test(oom_lock_new),
        cmocka_unit_test(oom_lock_new_id),
        cmocka_unit_test(oom_acquire_try),
        cmocka_unit_test(oom_acquire_fencing),
        cmocka_unit_test(oom_acquire_renewal),
        cmocka_unit_test(oom_acquire_wait),
        cmocka_unit_test(oom_acquire_fair_wait),
        cmocka_unit_test(oom_acquire_shared),
        cmocka_unit_test(oom_acquire_semaphore),
        cmocka_unit_test(oom_release),
        cmocka_unit_test(oom_release_renewal),
        cmocka_unit_test(oom_extend),
        cmocka_unit_test(oom_reset),
        cmocka_unit_test(oom_locked),
        cmocka_unit_test(oom_get_owner_id),
        cmocka_unit_test(oom_ttl),
        cmocka_unit_test(oom_reset_all),
        cmocka_unit_test(oom_with),
        cmocka_unit_test(oom_long_names),
        cmocka_unit_test(oom_cache_miss),
        cmocka_unit_test(oom_cache_miss_renewal),
        cmocka_unit_test(oom_cache_hit),
        cmocka_unit_test(oom_cache_delete),
        cmocka_unit_test(reply_oom_acquire_try),
        cmocka_unit_test(reply_oom_acquire_fencing),
        cmocka_unit_test(reply_oom_acquire_wait),
        cmocka_unit_test(reply_oom_acquire_fair_wait),
        cmocka_unit_test(reply_oom_renewal_goes_on),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    signal(SIGPIPE, SIG_DFL);
    return cmocka_run_group_tests_name("test_oom", tests, setup_group, teardown_group);
}
