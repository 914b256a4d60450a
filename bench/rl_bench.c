/* rl_bench: the C side of the benchmarks (bench/run drives it).
 *
 *   rl_bench SUBCOMMAND --url URL [options]     prints one JSON object on stdout
 *
 * floor        hiredis PING and SET loops, one connection: the round-trip floor
 * uncontended  interleaved windows: hiredis SET loop, the bare protocol pair over hiredis
 *              (SET NX + the release script), and redis_lock acquire+release pairs
 * pairs        COUNT acquire+release pairs on one new client, library only (any URL, TLS
 *              too); --info-url URL (unix:// or redis://) counts the connections the
 *              server accepted meanwhile
 * contend      N processes looping on one lock (hold H ms) for D ms; the longest wait;
 *              hand-offs (another process's release start -> an acquire's return)
 * (--fair: every lock of the run is a fair lock; --sem L: a semaphore permit of limit L;
 *  --queue-lease-ms Q: the fair queue lease)
 * handoff      W waiters + 1 holder: release-call start -> next owner's acquire return
 * crash-hold   acquire K locks (expiry E) at scheduled instants, print each, never release
 * crash-wait   K children, each waits for one of those locks from a scheduled instant
 * crash-prim   K trials: a holder (of a lock, or with --sem L of one permit) is kill -9'd;
 *              how long after its expiry a waiter got it
 * fair-dead    K trials (--fair): a dead waiter in the queue; release -> the next one's hold
 * timeouts     acquire(t) on a held lock: lateness against the deadline
 * scale-renew  one client auto-renewing K locks for D ms: lost locks, commands, CPU,
 *              the library's send()/recv()/poll() calls (counted by interposition)
 * scale-threads 200 threads of one process waiting on one lock: connections, RSS
 *
 * Every loop is bounded by a deadline or a count. Times: CLOCK_MONOTONIC (comparable
 * with Python's time.monotonic_ns() in other processes). The lock code below uses only
 * <redis_lock.h>; hiredis is used for the reference loops and INFO snapshots. */
#include <redis_lock.h>

#include <hiredis/hiredis.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- utilities */

static const char *g_url;
static const char *g_info_url;
static bool g_fair; /* --fair: every lock of the run is a fair lock */
static int g_sem;   /* --sem LIMIT: every lock of the run is a semaphore permit */
static int64_t g_queue_lease_ms; /* --queue-lease-ms (fair); 0: the library's default */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static void sleep_until_ns(int64_t t)
{
    sleep_ns(t - now_ns());
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rl_bench: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

static double cpu_seconds(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double user_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
}

static double rusage_cpu(const struct rusage *ru)
{
    return (double)ru->ru_utime.tv_sec + (double)ru->ru_utime.tv_usec / 1e6 +
           (double)ru->ru_stime.tv_sec + (double)ru->ru_stime.tv_usec / 1e6;
}

static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

static redis_lock_client *open_client(void)
{
    redis_lock_client_options o;
    redis_lock_client_options_init(&o);
    o.url = g_url;
    o.command_timeout_ms = 10000;
    redis_lock_client *c = NULL;
    int rc = redis_lock_client_open(&c, &o);
    if (rc)
        die("client_open %s: %s (%s)", g_url, redis_lock_strerror(rc), redis_lock_last_error());
    return c;
}

static redis_lock *new_lock(redis_lock_client *c, const char *name, int64_t expire_ms,
                            bool renew, redis_lock_lost_fn on_lost, void *payload)
{
    redis_lock_options o;
    redis_lock_options_init(&o);
    o.expire_ms = expire_ms;
    o.auto_renewal = renew;
    o.on_lost = on_lost;
    o.on_lost_payload = payload;
    o.fair = g_fair;
    if (g_queue_lease_ms)
        o.queue_lease_ms = g_queue_lease_ms;
    redis_lock *l = NULL;
    int rc = g_sem ? redis_lock_semaphore_new(&l, c, name, g_sem, &o)
                   : redis_lock_new(&l, c, name, &o);
    if (rc)
        die("lock_new %s: %s (%s)", name, redis_lock_strerror(rc), redis_lock_last_error());
    return l;
}

/* hiredis connection from the same URL (redis://host:port or unix:///path). */
static redisContext *hiredis_connect(void)
{
    redisContext *ctx = NULL;
    if (strncmp(g_url, "unix://", 7) == 0) {
        ctx = redisConnectUnix(g_url + 7);
    } else if (strncmp(g_url, "redis://", 8) == 0) {
        char host[256];
        int port = 6379;
        const char *h = g_url + 8, *colon = strrchr(h, ':');
        size_t hl = colon ? (size_t)(colon - h) : strcspn(h, "/");
        if (hl >= sizeof host)
            die("bad url %s", g_url);
        memcpy(host, h, hl);
        host[hl] = '\0';
        if (colon)
            port = atoi(colon + 1);
        ctx = redisConnect(host, port);
    } else {
        die("url must be redis://host:port or unix:///path: %s", g_url);
    }
    if (!ctx || ctx->err)
        die("hiredis connect %s: %s", g_url, ctx ? ctx->errstr : "out of memory");
    return ctx;
}

static redisReply *cmd(redisContext *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    if (!r)
        die("hiredis: %s", ctx->errstr);
    return r;
}

/* INFO field (integer) from a section text; -1 when absent. */
static long long info_field(const char *text, const char *field)
{
    size_t n = strlen(field);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, field, n) == 0 && p[n] == ':')
            return strtoll(p + n + 1, NULL, 10);
    return -1;
}

static char *info(redisContext *ctx, const char *section)
{
    redisReply *r = cmd(ctx, "INFO %s", section);
    char *s = strdup(r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return s;
}

/* Print "cmdstat_X:calls=N" pairs of an INFO commandstats text as a JSON object body. */
static void print_cmdstats(const char *text)
{
    int first = 1;
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, "cmdstat_", 8) != 0)
            continue;
        const char *colon = strchr(p, ':');
        const char *calls = colon ? strstr(colon, "calls=") : NULL;
        if (!calls)
            continue;
        printf("%s\"%.*s\":%lld", first ? "" : ",", (int)(colon - p - 8), p + 8,
               strtoll(calls + 6, NULL, 10));
        first = 0;
    }
}

static void print_i64_array(const char *key, const int64_t *v, size_t n)
{
    printf("\"%s\":[", key);
    for (size_t i = 0; i < n; i++)
        printf("%s%" PRId64, i ? "," : "", v[i]);
    printf("]");
}

/* Shared memory that survives fork(). */
static void *shared(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    memset(p, 0, n);
    return p;
}

/* Wait for all children, at most until deadline (then SIGKILL the rest). Sums rusage. */
static double reap(pid_t *pids, int n, int64_t deadline)
{
    double cpu = 0;
    int left = n;
    while (left > 0) {
        struct rusage ru;
        int st;
        pid_t p = wait4(-1, &st, WNOHANG, &ru);
        if (p > 0) {
            cpu += rusage_cpu(&ru);
            for (int i = 0; i < n; i++)
                if (pids[i] == p)
                    pids[i] = 0;
            left--;
            continue;
        }
        if (p < 0 && errno == ECHILD)
            break;
        if (now_ns() > deadline) {
            for (int i = 0; i < n; i++)
                if (pids[i] > 0)
                    kill(pids[i], SIGKILL);
            deadline = INT64_MAX;
        }
        sleep_ns(2000000);
    }
    return cpu;
}

/* ------------------------------------------------ send/recv/poll interposition */

/* The library writes with send(), reads with recv() and waits with poll()/ppoll(). Defining them
 * here makes the shared library call ours first (hiredis's own context uses
 * read()/write(), so only library traffic is counted). */
static atomic_long g_sends, g_recvs, g_polls;
static atomic_int g_trace_on;
#define TRACE_MAX 200000
static int64_t *g_trace_t;   /* time of each send while tracing */
static atomic_long g_trace_n;

typedef ssize_t (*send_fn)(int, const void *, size_t, int);
typedef ssize_t (*recv_fn)(int, void *, size_t, int);
typedef int (*poll_fn)(struct pollfd *, nfds_t, int);

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
    static send_fn real;
    if (!real)
        real = (send_fn)dlsym(RTLD_NEXT, "send");
    atomic_fetch_add(&g_sends, 1);
    if (atomic_load(&g_trace_on) && g_trace_t) {
        long i = atomic_fetch_add(&g_trace_n, 1);
        if (i < TRACE_MAX)
            g_trace_t[i] = now_ns();
    }
    return real(fd, buf, len, flags);
}

ssize_t recv(int fd, void *buf, size_t len, int flags)
{
    static recv_fn real;
    if (!real)
        real = (recv_fn)dlsym(RTLD_NEXT, "recv");
    atomic_fetch_add(&g_recvs, 1);
    return real(fd, buf, len, flags);
}

int poll(struct pollfd *fds, nfds_t n, int timeout)
{
    static poll_fn real;
    if (!real)
        real = (poll_fn)dlsym(RTLD_NEXT, "poll");
    atomic_fetch_add(&g_polls, 1);
    return real(fds, n, timeout);
}

typedef int (*ppoll_fn)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *mask)
{
    static ppoll_fn real;
    if (!real)
        real = (ppoll_fn)dlsym(RTLD_NEXT, "ppoll");
    atomic_fetch_add(&g_polls, 1);
    return real(fds, n, ts, mask);
}

/* ---------------------------------------------------------------- options */

typedef struct {
    int seconds_ms, rounds, window_ms, procs, hold_ms, duration_ms, waiters, count, step_ms,
        expire_ms, threads;
    int64_t t0_ns;
    const char *name, *go_list, *timeouts, *counts;
} opts_t;

static void parse(int argc, char **argv, opts_t *o)
{
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT_INT(flag, field)                                                                   \
    if (strcmp(a, flag) == 0 && v) {                                                           \
        o->field = atoi(v);                                                                    \
        i++;                                                                                   \
        continue;                                                                              \
    }
#define OPT_STR(flag, field)                                                                   \
    if (strcmp(a, flag) == 0 && v) {                                                           \
        o->field = v;                                                                          \
        i++;                                                                                   \
        continue;                                                                              \
    }
        OPT_INT("--ms", seconds_ms)
        OPT_INT("--rounds", rounds)
        OPT_INT("--window-ms", window_ms)
        OPT_INT("--procs", procs)
        OPT_INT("--hold-ms", hold_ms)
        OPT_INT("--duration-ms", duration_ms)
        OPT_INT("--waiters", waiters)
        OPT_INT("--count", count)
        OPT_INT("--step-ms", step_ms)
        OPT_INT("--expire-ms", expire_ms)
        OPT_INT("--threads", threads)
        OPT_STR("--name", name)
        OPT_STR("--go-list", go_list)
        OPT_STR("--timeouts", timeouts)
        OPT_STR("--counts", counts)
        if (strcmp(a, "--fair") == 0) {
            g_fair = true;
            continue;
        }
        if (strcmp(a, "--sem") == 0 && v) {
            g_sem = atoi(v);
            i++;
            continue;
        }
        if (strcmp(a, "--queue-lease-ms") == 0 && v) {
            g_queue_lease_ms = atoll(v);
            i++;
            continue;
        }
        if (strcmp(a, "--url") == 0 && v) {
            g_url = v;
            i++;
            continue;
        }
        if (strcmp(a, "--info-url") == 0 && v) {
            g_info_url = v;
            i++;
            continue;
        }
        if (strcmp(a, "--t0-ns") == 0 && v) {
            o->t0_ns = strtoll(v, NULL, 10);
            i++;
            continue;
        }
        die("unknown option %s", a);
    }
    if (!g_url)
        die("--url is required");
}

/* ---------------------------------------------------------------- floor */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* One command in a loop for ms: rate; median latency. */
static double g_last_p99_us, g_last_p999_us;

static double loop_rate(redisContext *ctx, const char *what, int ms, double *p50_us)
{
    enum { SAMPLES = 1 << 16 };
    static int64_t lat[SAMPLES];
    size_t ns = 0;
    long n = 0;
    int64_t start = now_ns(), end = start + (int64_t)ms * 1000000, t = start;
    while (t < end && n < 100000000L) {
        int64_t t1 = t;
        redisReply *r = strcmp(what, "PING") == 0 ? cmd(ctx, "PING")
                                                   : cmd(ctx, "SET bench:floor v");
        freeReplyObject(r);
        t = now_ns();
        if (ns < SAMPLES)
            lat[ns++] = t - t1;
        n++;
    }
    qsort(lat, ns, sizeof lat[0], cmp_i64);
    if (p50_us)
        *p50_us = ns ? (double)lat[ns / 2] / 1000.0 : 0;
    g_last_p99_us = ns ? (double)lat[ns * 99 / 100] / 1000.0 : 0;
    g_last_p999_us = ns ? (double)lat[ns * 999 / 1000] / 1000.0 : 0;
    return (double)n / ((double)(t - start) / 1e9);
}

static int cmd_floor(opts_t *o)
{
    int ms = o->seconds_ms ? o->seconds_ms : 2000;
    redisContext *ctx = hiredis_connect();
    double ping_p50, set_p50;
    loop_rate(ctx, "PING", 200, NULL); /* warm up */
    double ping = loop_rate(ctx, "PING", ms / 2, &ping_p50);
    double set = loop_rate(ctx, "SET", ms / 2, &set_p50);
    printf("{\"ping_rate\":%.1f,\"set_rate\":%.1f,\"ping_p50_us\":%.2f,\"set_p50_us\":%.2f,"
           "\"set_p99_us\":%.2f,\"set_p999_us\":%.2f}\n",
           ping, set, ping_p50, set_p50, g_last_p99_us, g_last_p999_us);
    redisFree(ctx);
    return 0;
}

/* ---------------------------------------------------------------- uncontended */

static const char *RELEASE_SCRIPT =
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then return 1 else "
    "redis.call('del', KEYS[2]) redis.call('lpush', KEYS[2], 1) "
    "redis.call('pexpire', KEYS[2], ARGV[2]) redis.call('del', KEYS[1]) return 0 end";

/* The shape of the library's acquire script on its non-fencing path (a copy for the
 * protocol-level reference; the library's own text is not part of the public API). */
static const char *ACQUIRE_SCRIPT =
    "local ok if ARGV[2] ~= '0' then ok = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) "
    "else ok = redis.call('set', KEYS[1], ARGV[1], 'NX') end "
    "if ok then return {1, 0} end "
    "return {0, redis.call('get', KEYS[1]), redis.call('pttl', KEYS[1])}";

static int cmd_uncontended(opts_t *o)
{
    int rounds = o->rounds ? o->rounds : 5, win = o->window_ms ? o->window_ms : 500;
    redisContext *ctx = hiredis_connect();
    redis_lock_client *c = open_client();
    redis_lock *l = new_lock(c, o->name ? o->name : "bench:uncontended", 0, false, NULL, NULL);
    redisReply *r = cmd(ctx, "SCRIPT LOAD %s", RELEASE_SCRIPT);
    char sha[64];
    snprintf(sha, sizeof sha, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    r = cmd(ctx, "SCRIPT LOAD %s", ACQUIRE_SCRIPT);
    char asha[64];
    snprintf(asha, sizeof asha, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    const char *bare_key = "lock:bench:bare", *bare_sig = "lock-signal:bench:bare";

    double set_rates[64], bare_rates[64], lock_rates[64], script_rates[64];
    double lock_time = 0, lock_cpu = 0, set_time = 0;
    long lock_pairs = 0, set_n = 0, errors = 0, bare_pairs = 0;
    double bare_cpu = 0, lock_user = 0;
    if (rounds > 64)
        rounds = 64;
    /* warm up: connections, script cache, code paths */
    for (int i = 0; i < 200; i++) {
        if (redis_lock_acquire(l, -1) == 0)
            redis_lock_release(l);
    }
    for (int k = 0; k < rounds; k++) {
        /* 1. hiredis SET */
        double p50;
        int64_t t0 = now_ns();
        set_rates[k] = loop_rate(ctx, "SET", win, &p50);
        int64_t t1 = now_ns();
        set_time += (double)(t1 - t0) / 1e9;
        set_n += (long)(set_rates[k] * (double)(t1 - t0) / 1e9);
        /* 2. the bare protocol pair: SET NX, then the release script (hiredis) */
        long n = 0;
        int64_t end = now_ns() + (int64_t)win * 1000000;
        double b0 = cpu_seconds(RUSAGE_SELF);
        t0 = now_ns();
        while (now_ns() < end && n < 10000000L) {
            r = cmd(ctx, "SET %s bareid NX", bare_key);
            freeReplyObject(r);
            r = cmd(ctx, "EVALSHA %s 2 %s %s bareid 1000", sha, bare_key, bare_sig);
            freeReplyObject(r);
            n++;
        }
        bare_rates[k] = (double)n / ((double)(now_ns() - t0) / 1e9);
        bare_cpu += cpu_seconds(RUSAGE_SELF) - b0;
        bare_pairs += n;
        /* 2b. the same with the acquire done by a script of the library's shape */
        n = 0;
        end = now_ns() + (int64_t)win * 1000000;
        t0 = now_ns();
        while (now_ns() < end && n < 10000000L) {
            r = cmd(ctx, "EVALSHA %s 2 %s lock-fence:bench:bare bareid 0 0", asha, bare_key);
            freeReplyObject(r);
            r = cmd(ctx, "EVALSHA %s 2 %s %s bareid 1000", sha, bare_key, bare_sig);
            freeReplyObject(r);
            n++;
        }
        script_rates[k] = (double)n / ((double)(now_ns() - t0) / 1e9);
        /* 3. redis_lock pairs */
        n = 0;
        double c0 = cpu_seconds(RUSAGE_SELF), u0 = user_seconds();
        t0 = now_ns();
        end = t0 + (int64_t)win * 1000000;
        while (now_ns() < end && n < 10000000L) {
            int rc = redis_lock_acquire(l, -1);
            if (rc == 0)
                rc = redis_lock_release(l);
            if (rc)
                errors++;
            n++;
        }
        t1 = now_ns();
        double c1 = cpu_seconds(RUSAGE_SELF);
        lock_user += user_seconds() - u0;
        lock_rates[k] = (double)n / ((double)(t1 - t0) / 1e9);
        lock_time += (double)(t1 - t0) / 1e9;
        lock_cpu += c1 - c0;
        lock_pairs += n;
    }
    printf("{\"rounds\":%d,\"window_ms\":%d,\"pairs_per_s\":%.1f,\"cpu_us_per_pair\":%.3f,"
           "\"set_rate\":%.1f,\"errors\":%ld,\"bare_cpu_us_per_pair\":%.3f,\"user_us_per_pair\":%.3f,"
           "\"pairs\":%ld,\"cpu_s\":%.6f,\"user_s\":%.6f,\"time_s\":%.6f,\"bare_pairs\":%ld,\"bare_cpu_s\":%.6f,",
           rounds, win, (double)lock_pairs / lock_time, lock_cpu / (double)lock_pairs * 1e6,
           (double)set_n / set_time, errors, bare_cpu / (double)(bare_pairs ? bare_pairs : 1) * 1e6,
           lock_user / (double)lock_pairs * 1e6, lock_pairs, lock_cpu, lock_user, lock_time,
           bare_pairs, bare_cpu);
    printf("\"set_rates\":[");
    for (int k = 0; k < rounds; k++)
        printf("%s%.1f", k ? "," : "", set_rates[k]);
    printf("],\"bare_pair_rates\":[");
    for (int k = 0; k < rounds; k++)
        printf("%s%.1f", k ? "," : "", bare_rates[k]);
    printf("],\"bare_script_pair_rates\":[");
    for (int k = 0; k < rounds; k++)
        printf("%s%.1f", k ? "," : "", script_rates[k]);
    printf("],\"pair_rates\":[");
    for (int k = 0; k < rounds; k++)
        printf("%s%.1f", k ? "," : "", lock_rates[k]);
    printf("]}\n");
    redis_lock_free(l);
    redis_lock_client_close(c);
    redisFree(ctx);
    return 0;
}

/* ---------------------------------------------------------------- pairs */

static int cmd_pairs(opts_t *o)
{
    int count = o->count ? o->count : 10000;
    redisContext *ictx = NULL;
    if (g_info_url) {
        const char *save = g_url;
        g_url = g_info_url;
        ictx = hiredis_connect();
        g_url = save;
    }
    char *s0 = ictx ? info(ictx, "stats") : NULL;
    int64_t t0 = now_ns();
    redis_lock_client *c = open_client();
    redis_lock *l = new_lock(c, o->name ? o->name : "bench:pairs", 0, false, NULL, NULL);
    int64_t t1 = now_ns();
    double c0 = cpu_seconds(RUSAGE_SELF);
    long errors = 0;
    for (int i = 0; i < count; i++) {
        int rc = redis_lock_acquire(l, -1);
        if (rc == 0)
            rc = redis_lock_release(l);
        if (rc)
            errors++;
    }
    int64_t t2 = now_ns();
    double cpu = cpu_seconds(RUSAGE_SELF) - c0;
    char *s1 = ictx ? info(ictx, "stats") : NULL;
    long long conns = ictx ? info_field(s1, "total_connections_received") -
                                 info_field(s0, "total_connections_received")
                           : -1;
    printf("{\"pairs\":%d,\"pairs_per_s\":%.1f,\"open_ms\":%.3f,\"cpu_us_per_pair\":%.3f,"
           "\"connections_opened\":%lld,\"errors\":%ld}\n",
           count, (double)count / ((double)(t2 - t1) / 1e9), (double)(t1 - t0) / 1e6,
           cpu / count * 1e6, conns, errors);
    redis_lock_free(l);
    redis_lock_client_close(c);
    free(s0);
    free(s1);
    if (ictx)
        redisFree(ictx);
    return 0;
}

/* ---------------------------------------------------------------- contend */

#define CONTEND_HO_MAX 200000
typedef struct {
    _Atomic int64_t t_rel; /* the latest release call's start */
    atomic_int last;       /* who made it */
    atomic_long n, nw;
    int64_t lat[CONTEND_HO_MAX];
    int64_t wait[CONTEND_HO_MAX]; /* every successful acquire call's duration */
} contend_shm;

static int cmd_contend(opts_t *o)
{
    int n = o->procs ? o->procs : 2, hold = o->hold_ms, dur = o->duration_ms ? o->duration_ms : 2000;
    const char *name = o->name ? o->name : "bench:contend";
    long *counts = shared(sizeof(long) * (size_t)(3 * n + 1));
    long *errs = counts + n, *worst_us = counts + 2 * n; /* the longest acquire call */
    /* hand-off: an acquire that returns after another process's release call started
     * (and after this acquire call started): acquire return - that release's start */
    contend_shm *ho = shared(sizeof *ho);
    atomic_store(&ho->last, -1);
    int64_t start = now_ns() + 150000000LL + (int64_t)n * 4000000LL;
    int64_t end = start + (int64_t)dur * 1000000;
    pid_t pids[256];
    if (n > 256)
        die("too many processes");
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        pid_t p = fork();
        if (p < 0)
            die("fork: %s", strerror(errno));
        if (p == 0) {
            redis_lock_client *c = open_client();
            redis_lock *l = new_lock(c, name, 0, false, NULL, NULL);
            sleep_until_ns(start);
            long got = 0, bad = 0;
            for (int64_t t = now_ns(); t < end; t = now_ns()) {
                int64_t left_ms = (end - t) / 1000000;
                int rc = redis_lock_acquire(l, left_ms > 0 ? left_ms : 0);
                if (rc == REDIS_LOCK_BUSY)
                    break;
                if (rc) {
                    bad++;
                    sleep_ns(1000000);
                    continue;
                }
                int64_t t_acq = now_ns();
                if (t_acq < end) {
                    got++;
                    if ((t_acq - t) / 1000 > worst_us[i])
                        worst_us[i] = (t_acq - t) / 1000;
                    long kw = atomic_fetch_add(&ho->nw, 1);
                    if (kw < CONTEND_HO_MAX)
                        ho->wait[kw] = t_acq - t;
                    int64_t tr = atomic_load(&ho->t_rel);
                    if (atomic_load(&ho->last) != i && tr > t) {
                        long k = atomic_fetch_add(&ho->n, 1);
                        if (k < CONTEND_HO_MAX)
                            ho->lat[k] = t_acq - tr;
                    }
                }
                if (hold)
                    sleep_ns((int64_t)hold * 1000000);
                atomic_store(&ho->last, i);
                atomic_store(&ho->t_rel, now_ns());
                if (redis_lock_release(l))
                    bad++;
            }
            counts[i] = got;
            errs[i] = bad;
            redis_lock_free(l);
            redis_lock_client_close(c);
            _exit(0);
        }
        pids[i] = p;
    }
    double cpu = reap(pids, n, end + 30000000000LL);
    long total = 0, bad = 0;
    long worst = 0;
    printf("{\"procs\":%d,\"hold_ms\":%d,\"duration_ms\":%d,\"fair\":%s,\"sem\":%d,"
           "\"cpu_s\":%.3f,\"counts\":[", n, hold, dur, g_fair ? "true" : "false", g_sem, cpu);
    for (int i = 0; i < n; i++) {
        printf("%s%ld", i ? "," : "", counts[i]);
        total += counts[i];
        bad += errs[i];
        if (worst_us[i] > worst)
            worst = worst_us[i];
    }
    long k = atomic_load(&ho->n);
    if (k > CONTEND_HO_MAX)
        k = CONTEND_HO_MAX;
    for (long j = 0; j < k; j++)
        ho->lat[j] /= 100; /* 0.1 us units */
    long kw = atomic_load(&ho->nw);
    if (kw > CONTEND_HO_MAX)
        kw = CONTEND_HO_MAX;
    qsort(ho->wait, (size_t)kw, sizeof ho->wait[0], cmp_i64);
    printf("],\"total\":%ld,\"errors\":%ld,\"worst_wait_ms\":%.1f,", total, bad,
           (double)worst / 1000.0);
    printf("\"wait_p50_ms\":%.3f,\"wait_p99_ms\":%.3f,\"wait_p999_ms\":%.3f,\"unit\":\"0.1us\",",
           kw ? (double)ho->wait[kw / 2] / 1e6 : 0.0, kw ? (double)ho->wait[kw * 99 / 100] / 1e6 : 0.0,
           kw ? (double)ho->wait[kw * 999 / 1000] / 1e6 : 0.0);
    print_i64_array("handoff", ho->lat, (size_t)k);
    printf("}\n");
    return 0;
}

/* ---------------------------------------------------------------- primitives' failures */

/* crash-prim: K trials on fresh names. A child takes a lock (or, with --sem L, one permit
 * while this process holds the other L - 1 without expiry) with expiry E, reports the
 * moment its acquire returned, and is kill -9'd; this process then waits (acquire -1) and
 * prints how long after that moment + E it got the lock/permit. */
static int cmd_crash_prim(opts_t *o)
{
    int k = o->count ? o->count : 5, exp = o->expire_ms ? o->expire_ms : 300;
    const char *prefix = o->name ? o->name : "bench:crashprim";
    int64_t *t_holder = shared(sizeof(int64_t));
    redis_lock_client *c = open_client();
    printf("{\"expire_ms\":%d,\"sem\":%d,\"fair\":%s,\"late_us\":[", exp, g_sem,
           g_fair ? "true" : "false");
    for (int i = 0; i < k; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s:%d:%d", prefix, (int)getpid(), i);
        redis_lock *others[64];
        int no = g_sem > 1 ? g_sem - 1 : 0;
        if (no > 64)
            die("--sem too large for crash-prim");
        for (int j = 0; j < no; j++) {
            others[j] = new_lock(c, name, 0, false, NULL, NULL);
            if (redis_lock_acquire(others[j], 0))
                die("crash-prim: cannot take permit %d", j);
        }
        *t_holder = 0;
        fflush(stdout);
        pid_t p = fork();
        if (p < 0)
            die("fork: %s", strerror(errno));
        if (p == 0) {
            redis_lock_client *hc = open_client();
            redis_lock *hl = new_lock(hc, name, exp, false, NULL, NULL);
            if (redis_lock_acquire(hl, 0))
                _exit(3);
            *t_holder = now_ns();
            sleep_ns(60000000000LL); /* killed long before */
            _exit(0);
        }
        int64_t give_up = now_ns() + 5000000000LL;
        while (*t_holder == 0 && now_ns() < give_up)
            sleep_ns(200000);
        kill(p, SIGKILL);
        waitpid(p, NULL, 0);
        if (*t_holder == 0)
            die("crash-prim: the holder did not acquire");
        redis_lock *w = new_lock(c, name, 0, false, NULL, NULL);
        int rc = redis_lock_acquire(w, (int64_t)exp * 4 + 2000);
        int64_t t_acq = now_ns();
        if (rc)
            die("crash-prim: waiter: %s", redis_lock_strerror(rc));
        printf("%s%" PRId64, i ? "," : "", (t_acq - (*t_holder + (int64_t)exp * 1000000)) / 1000);
        redis_lock_release(w);
        redis_lock_free(w);
        for (int j = 0; j < no; j++) {
            redis_lock_release(others[j]);
            redis_lock_free(others[j]);
        }
    }
    printf("]}\n");
    redis_lock_client_close(c);
    return 0;
}

/* fair-dead: K trials (fair locks, --queue-lease-ms Q). This process holds the lock; a child
 * B queues (acquire -1), then a child C queues behind it; B is kill -9'd, this process
 * releases at once (the grant goes to B's place), and C reports when it got the lock.
 * Prints release start -> C's acquire return, and kill -> C's acquire return. */
static int cmd_fair_dead(opts_t *o)
{
    int k = o->count ? o->count : 5;
    const char *prefix = o->name ? o->name : "bench:fairdead";
    int64_t *t_c = shared(sizeof(int64_t));
    if (!g_fair)
        die("fair-dead needs --fair");
    redis_lock_client *c = open_client();
    int64_t rel_us[64], kill_us[64];
    if (k > 64)
        k = 64;
    for (int i = 0; i < k; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s:%d:%d", prefix, (int)getpid(), i);
        redis_lock *a = new_lock(c, name, 0, false, NULL, NULL);
        if (redis_lock_acquire(a, 0))
            die("fair-dead: cannot take the lock");
        *t_c = 0;
        pid_t kids[2];
        for (int j = 0; j < 2; j++) {
            fflush(stdout);
            pid_t p = fork();
            if (p < 0)
                die("fork: %s", strerror(errno));
            if (p == 0) {
                redis_lock_client *wc = open_client();
                redis_lock *wl = new_lock(wc, name, 0, false, NULL, NULL);
                int rc = redis_lock_acquire(wl, 30000);
                if (j == 1 && rc == 0) {
                    *t_c = now_ns();
                    redis_lock_release(wl);
                }
                _exit(rc ? 3 : 0);
            }
            kids[j] = p;
            sleep_ns(150000000); /* connected and queued */
        }
        int64_t t_kill = now_ns();
        kill(kids[0], SIGKILL);
        waitpid(kids[0], NULL, 0);
        int64_t t_rel = now_ns();
        if (redis_lock_release(a))
            die("fair-dead: release failed");
        reap(&kids[1], 1, now_ns() + 30000000000LL);
        if (*t_c == 0)
            die("fair-dead: the waiter behind the dead one never got the lock");
        rel_us[i] = (*t_c - t_rel) / 1000;
        kill_us[i] = (*t_c - t_kill) / 1000;
        redis_lock_free(a);
    }
    printf("{\"queue_lease_ms\":%" PRId64 ",", g_queue_lease_ms);
    print_i64_array("release_to_next_us", rel_us, (size_t)k);
    printf(",");
    print_i64_array("kill_to_next_us", kill_us, (size_t)k);
    printf("}\n");
    redis_lock_client_close(c);
    return 0;
}

/* ---------------------------------------------------------------- handoff */

#define HANDOFF_MAX 400000
typedef struct {
    _Atomic int64_t t_rel;
    atomic_int last;
    atomic_long n, self_reacquire, errors, acquisitions;
    int64_t lat[HANDOFF_MAX];
} handoff_shm;

static int cmd_handoff(opts_t *o)
{
    int w = o->waiters ? o->waiters : 1, n = w + 1, hold = o->hold_ms ? o->hold_ms : 2;
    int dur = o->duration_ms ? o->duration_ms : 2000;
    const char *name = o->name ? o->name : "bench:handoff";
    handoff_shm *sh = shared(sizeof *sh);
    atomic_store(&sh->last, -1);
    int (*pipes)[2] = calloc((size_t)n, sizeof *pipes);
    for (int i = 0; i < n; i++) {
        if (pipe2(pipes[i], O_NONBLOCK) < 0)
            die("pipe: %s", strerror(errno));
    }
    int64_t start = now_ns() + 150000000LL + (int64_t)n * 4000000LL;
    int64_t end = start + (int64_t)dur * 1000000;
    pid_t pids[256];
    if (n > 256)
        die("too many processes");
    fflush(stdout);
    for (int me = 0; me < n; me++) {
        pid_t p = fork();
        if (p < 0)
            die("fork: %s", strerror(errno));
        if (p == 0) {
            redis_lock_client *c = open_client();
            redis_lock *l = new_lock(c, name, 0, false, NULL, NULL);
            /* stagger the first tries a little so that one process wins cleanly */
            sleep_until_ns(start + (int64_t)me * 200000);
            for (int64_t t = now_ns(); t < end; t = now_ns()) {
                int64_t left_ms = (end - t) / 1000000;
                int rc = redis_lock_acquire(l, left_ms > 0 ? left_ms : 0);
                int64_t t_acq = now_ns();
                if (rc == REDIS_LOCK_BUSY)
                    break;
                if (rc) {
                    atomic_fetch_add(&sh->errors, 1);
                    sleep_ns(1000000);
                    continue;
                }
                atomic_fetch_add(&sh->acquisitions, 1);
                int prev = atomic_load(&sh->last);
                if (prev >= 0 && prev != me) {
                    long k = atomic_fetch_add(&sh->n, 1);
                    if (k < HANDOFF_MAX && t_acq < end)
                        sh->lat[k] = t_acq - atomic_load(&sh->t_rel);
                    ssize_t wr = write(pipes[prev][1], "x", 1);
                    (void)wr;
                } else if (prev == me) {
                    atomic_fetch_add(&sh->self_reacquire, 1);
                }
                sleep_ns((int64_t)hold * 1000000);
                atomic_store(&sh->last, me);
                atomic_store(&sh->t_rel, now_ns());
                if (redis_lock_release(l))
                    atomic_fetch_add(&sh->errors, 1);
                /* stay out until another process owns the lock */
                int64_t left = (end - now_ns()) / 1000000;
                if (left > 0) {
                    struct pollfd pf = {pipes[me][0], POLLIN, 0};
                    poll(&pf, 1, (int)left + 1);
                }
                char buf[64];
                while (read(pipes[me][0], buf, sizeof buf) > 0) {
                }
            }
            redis_lock_free(l);
            redis_lock_client_close(c);
            _exit(0);
        }
        pids[me] = p;
    }
    double cpu = reap(pids, n, end + 30000000000LL);
    long k = atomic_load(&sh->n);
    if (k > HANDOFF_MAX)
        k = HANDOFF_MAX;
    /* samples taken after `end` were left 0: drop them */
    long m = 0;
    for (long i = 0; i < k; i++)
        if (sh->lat[i] > 0)
            sh->lat[m++] = sh->lat[i] / 100; /* 0.1 us units */
    printf("{\"waiters\":%d,\"hold_ms\":%d,\"duration_ms\":%d,\"cpu_s\":%.3f,"
           "\"acquisitions\":%ld,\"self_reacquire\":%ld,\"errors\":%ld,\"unit\":\"0.1us\",",
           w, hold, dur, cpu, atomic_load(&sh->acquisitions), atomic_load(&sh->self_reacquire),
           atomic_load(&sh->errors));
    print_i64_array("lat", sh->lat, (size_t)m);
    printf("}\n");
    return 0;
}

/* ---------------------------------------------------------------- crashed holder */

static int cmd_crash_hold(opts_t *o)
{
    int k = o->count ? o->count : 1, step = o->step_ms, exp = o->expire_ms ? o->expire_ms : 2000;
    const char *prefix = o->name ? o->name : "bench:crash";
    redis_lock_client *c = open_client();
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 0; i < k; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s:%d", prefix, i);
        redis_lock *l = new_lock(c, name, exp, false, NULL, NULL);
        sleep_until_ns(o->t0_ns + (int64_t)i * step * 1000000);
        int64_t t0 = now_ns();
        int rc = redis_lock_acquire(l, 0);
        int64_t t1 = now_ns();
        printf("{\"i\":%d,\"rc\":%d,\"t_start_ns\":%" PRId64 ",\"t_end_ns\":%" PRId64 "}\n", i,
               rc, t0, t1);
        /* the handle is never freed or released: this process is killed holding it */
    }
    printf("{\"done\":true}\n");
    sleep_ns(60000000000LL); /* bounded: the coordinator kills us long before */
    return 0;
}

static int cmd_crash_wait(opts_t *o)
{
    int k = o->count ? o->count : 1, exp = o->expire_ms ? o->expire_ms : 2000;
    int maxms = o->duration_ms ? o->duration_ms : 20000;
    const char *prefix = o->name ? o->name : "bench:crash";
    int64_t go[1024];
    const char *s = o->go_list ? o->go_list : "";
    for (int i = 0; i < k && i < 1024; i++) {
        go[i] = strtoll(s, (char **)&s, 10);
        if (*s == ',')
            s++;
    }
    pid_t pids[1024];
    setvbuf(stdout, NULL, _IOLBF, 0);
    fflush(stdout);
    for (int i = 0; i < k && i < 1024; i++) {
        pid_t p = fork();
        if (p < 0)
            die("fork: %s", strerror(errno));
        if (p == 0) {
            char name[256];
            snprintf(name, sizeof name, "%s:%d", prefix, i);
            redis_lock_client *c = open_client();
            redis_lock *l = new_lock(c, name, exp, false, NULL, NULL);
            sleep_until_ns(go[i]);
            int64_t t0 = now_ns();
            int rc = redis_lock_acquire(l, -1); /* ends when the key expires */
            int64_t t1 = now_ns();
            printf("{\"i\":%d,\"rc\":%d,\"t_go_ns\":%" PRId64 ",\"t_acq_ns\":%" PRId64 "}\n", i,
                   rc, t0, t1);
            fflush(stdout);
            if (rc == 0)
                redis_lock_release(l);
            redis_lock_free(l);
            redis_lock_client_close(c);
            _exit(0);
        }
        pids[i] = p;
    }
    reap(pids, k, now_ns() + (int64_t)maxms * 1000000);
    return 0;
}

/* ---------------------------------------------------------------- timeouts */

static int cmd_timeouts(opts_t *o)
{
    const char *name = o->name ? o->name : "bench:timeouts";
    int ts[16], cs[16], nt = 0;
    const char *a = o->timeouts ? o->timeouts : "50,300,1000";
    const char *b = o->counts ? o->counts : "10,5,3";
    while (*a && nt < 16) {
        ts[nt] = (int)strtol(a, (char **)&a, 10);
        cs[nt] = (int)strtol(b, (char **)&b, 10);
        nt++;
        if (*a == ',')
            a++;
        if (*b == ',')
            b++;
    }
    redis_lock_client *c = open_client();
    redis_lock *holder = new_lock(c, name, 0, false, NULL, NULL);
    redis_lock *waiter = new_lock(c, name, 0, false, NULL, NULL);
    int rc = redis_lock_acquire(holder, 0);
    if (rc)
        die("cannot hold %s: %s", name, redis_lock_strerror(rc));
    unsigned seed = 12345;
    printf("{");
    for (int i = 0; i < nt; i++) {
        int64_t late[1024], ctrl[1024];
        int other = 0, n = cs[i] > 1024 ? 1024 : cs[i], nc = 0;
        for (int k = 0; k < n; k++) {
            sleep_ns((int64_t)(rand_r(&seed) % 100) * 1000000); /* vary the phase */
            int64_t t0 = now_ns();
            rc = redis_lock_acquire(waiter, ts[i]);
            int64_t t1 = now_ns();
            if (rc != REDIS_LOCK_BUSY)
                other++;
            late[k] = (t1 - t0) - (int64_t)ts[i] * 1000000; /* ns */
            if (ts[i] <= 300) {
                /* control: a bare sleep of the same length, same process, same moment:
                 * what the machine's scheduler adds by itself */
                struct pollfd none;
                t0 = now_ns();
                poll(&none, 0, ts[i]);
                ctrl[nc++] = now_ns() - t0 - (int64_t)ts[i] * 1000000;
            }
        }
        printf("%s\"%d\":{\"unexpected_rc\":%d,", i ? "," : "", ts[i], other);
        print_i64_array("late_ns", late, (size_t)n);
        printf(",");
        print_i64_array("control_sleep_late_ns", ctrl, (size_t)nc);
        printf("}");
    }
    printf("}\n");
    redis_lock_release(holder);
    redis_lock_free(holder);
    redis_lock_free(waiter);
    redis_lock_client_close(c);
    return 0;
}

/* ---------------------------------------------------------------- scale: renewal */

static atomic_long g_lost;
static void on_lost(redis_lock *l, void *payload)
{
    (void)l;
    (void)payload;
    atomic_fetch_add(&g_lost, 1);
}

static int cmd_scale_renew(opts_t *o)
{
    int k = o->count ? o->count : 10000, exp = o->expire_ms ? o->expire_ms : 3000;
    int dur = o->duration_ms ? o->duration_ms : 30000;
    const char *prefix = o->name ? o->name : "bench:scale";
    redisContext *ctx = hiredis_connect();
    redis_lock_client *c = open_client();
    redis_lock **locks = calloc((size_t)k, sizeof *locks);
    g_trace_t = calloc(TRACE_MAX, sizeof *g_trace_t);
    int64_t t0 = now_ns();
    long acq_fail = 0;
    for (int i = 0; i < k; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s:%d", prefix, i);
        locks[i] = new_lock(c, name, exp, true, on_lost, NULL);
        if (redis_lock_acquire(locks[i], 0))
            acq_fail++;
    }
    int64_t t1 = now_ns();
    char *cs0 = info(ctx, "commandstats"), *st0 = info(ctx, "stats");
    long s0 = atomic_load(&g_sends), r0 = atomic_load(&g_recvs), p0 = atomic_load(&g_polls);
    double c0 = cpu_seconds(RUSAGE_SELF);
    int64_t w0 = now_ns();
    atomic_store(&g_trace_on, 1);
    sleep_ns((int64_t)dur * 1000000);
    atomic_store(&g_trace_on, 0);
    int64_t w1 = now_ns();
    double c1 = cpu_seconds(RUSAGE_SELF);
    long s1 = atomic_load(&g_sends), r1 = atomic_load(&g_recvs), p1 = atomic_load(&g_polls);
    char *cs1 = info(ctx, "commandstats"), *st1 = info(ctx, "stats");
    /* verify: every lock still ours */
    long mismatch = 0;
    for (int i = 0; i < k; i++) {
        char *owner = NULL;
        if (redis_lock_get_owner_id(locks[i], &owner) || !owner ||
            strcmp(owner, redis_lock_id(locks[i])) != 0)
            mismatch++;
        free(owner);
    }
    long rel_fail = 0;
    for (int i = 0; i < k; i++) {
        if (redis_lock_release(locks[i]))
            rel_fail++;
        redis_lock_free(locks[i]);
    }
    /* renewal rounds: bursts of sends separated by > 200 ms */
    long nt = atomic_load(&g_trace_n);
    if (nt > TRACE_MAX)
        nt = TRACE_MAX;
    int bursts = 0;
    int64_t burst_ms_max = 0, burst_start = 0, last = 0;
    for (long i = 0; i < nt; i++) {
        if (i == 0 || g_trace_t[i] - last > 200000000LL) {
            if (i > 0 && (last - burst_start) / 1000000 > burst_ms_max)
                burst_ms_max = (last - burst_start) / 1000000;
            bursts++;
            burst_start = g_trace_t[i];
        }
        last = g_trace_t[i];
    }
    if (nt > 0 && (last - burst_start) / 1000000 > burst_ms_max)
        burst_ms_max = (last - burst_start) / 1000000;
    printf("{\"locks\":%d,\"expire_ms\":%d,\"duration_s\":%.3f,\"acquire_all_s\":%.3f,"
           "\"acquire_failures\":%ld,\"lost_callbacks\":%ld,\"verify_mismatch\":%ld,"
           "\"release_failures\":%ld,\"cpu_s\":%.3f,\"rss_kb\":%ld,\"threads\":%ld,"
           "\"client_send_calls\":%ld,\"client_recv_calls\":%ld,\"client_poll_calls\":%ld,"
           "\"send_bursts\":%d,\"burst_ms_max\":%" PRId64 ",\"total_commands\":%lld,",
           k, exp, (double)(w1 - w0) / 1e9, (double)(t1 - t0) / 1e9, acq_fail,
           atomic_load(&g_lost), mismatch, rel_fail, c1 - c0, status_kb("VmRSS"),
           status_kb("Threads"), s1 - s0, r1 - r0, p1 - p0, bursts, burst_ms_max,
           info_field(st1, "total_commands_processed") -
               info_field(st0, "total_commands_processed"));
    printf("\"commandstats_before\":{");
    print_cmdstats(cs0);
    printf("},\"commandstats_after\":{");
    print_cmdstats(cs1);
    printf("}}\n");
    free(cs0);
    free(cs1);
    free(st0);
    free(st1);
    free(locks);
    redis_lock_client_close(c);
    redisFree(ctx);
    return 0;
}

/* ---------------------------------------------------------------- scale: threads */

typedef struct {
    redis_lock_client *c;
    const char *name;
    atomic_int *got;
    atomic_int *waiting;
    int rc;
    int64_t t_acq;
} thr_arg;

static void *thread_waiter(void *p)
{
    thr_arg *a = p;
    redis_lock *l = new_lock(a->c, a->name, 0, false, NULL, NULL);
    atomic_fetch_add(a->waiting, 1);
    a->rc = redis_lock_acquire(l, 60000);
    a->t_acq = now_ns();
    if (a->rc == 0) {
        atomic_fetch_add(a->got, 1);
        redis_lock_release(l);
    }
    redis_lock_free(l);
    return NULL;
}

static int cmd_scale_threads(opts_t *o)
{
    int n = o->threads ? o->threads : 200;
    const char *name = o->name ? o->name : "bench:threads";
    redisContext *ctx = hiredis_connect();
    char *i0 = info(ctx, "clients"), *s0 = info(ctx, "stats");
    long rss0 = status_kb("VmRSS");
    redis_lock_client *c = open_client();
    redis_lock *holder = new_lock(c, name, 0, false, NULL, NULL);
    if (redis_lock_acquire(holder, 0))
        die("cannot hold %s", name);
    atomic_int got = 0, waiting = 0;
    thr_arg *args = calloc((size_t)n, sizeof *args);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    int started = 0;
    for (int i = 0; i < n; i++) {
        args[i] = (thr_arg){c, name, &got, &waiting, -100, 0};
        if (pthread_create(&th[i], NULL, thread_waiter, &args[i]) == 0)
            started++;
        else
            break;
    }
    /* wait until the server sees every waiter blocked (bounded) */
    long long blocked = 0;
    int64_t until = now_ns() + 10000000000LL;
    while (now_ns() < until) {
        char *ic = info(ctx, "clients");
        blocked = info_field(ic, "blocked_clients");
        free(ic);
        if (blocked >= started)
            break;
        sleep_ns(20000000);
    }
    sleep_ns(200000000);
    char *i1 = info(ctx, "clients"), *s1 = info(ctx, "stats");
    long rss1 = status_kb("VmRSS");
    int64_t t_rel = now_ns();
    redis_lock_release(holder);
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    int64_t t_last = t_rel;
    for (int i = 0; i < started; i++)
        if (args[i].rc == 0 && args[i].t_acq > t_last)
            t_last = args[i].t_acq;
    char *s2 = info(ctx, "stats");
    printf("{\"threads\":%d,\"acquired\":%d,\"blocked_clients\":%lld,"
           "\"connected_clients_delta\":%lld,\"connections_opened_waiting\":%lld,"
           "\"connections_opened_total\":%lld,\"rss_kb_before\":%ld,\"rss_kb_waiting\":%ld,"
           "\"drain_ms\":%.3f}\n",
           started, atomic_load(&got), blocked,
           info_field(i1, "connected_clients") - info_field(i0, "connected_clients"),
           info_field(s1, "total_connections_received") -
               info_field(s0, "total_connections_received"),
           info_field(s2, "total_connections_received") -
               info_field(s0, "total_connections_received"),
           rss0, rss1, (double)(t_last - t_rel) / 1e6);
    free(i0);
    free(i1);
    free(s0);
    free(s1);
    free(s2);
    free(args);
    free(th);
    redis_lock_free(holder);
    redis_lock_client_close(c);
    redisFree(ctx);
    return 0;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage: rl_bench SUBCOMMAND --url URL [options]");
    signal(SIGPIPE, SIG_IGN);
    opts_t o;
    memset(&o, 0, sizeof o);
    parse(argc, argv, &o);
    const char *s = argv[1];
    if (strcmp(s, "floor") == 0)
        return cmd_floor(&o);
    if (strcmp(s, "uncontended") == 0)
        return cmd_uncontended(&o);
    if (strcmp(s, "pairs") == 0)
        return cmd_pairs(&o);
    if (strcmp(s, "contend") == 0)
        return cmd_contend(&o);
    if (strcmp(s, "handoff") == 0)
        return cmd_handoff(&o);
    if (strcmp(s, "crash-prim") == 0)
        return cmd_crash_prim(&o);
    if (strcmp(s, "fair-dead") == 0)
        return cmd_fair_dead(&o);
    if (strcmp(s, "crash-hold") == 0)
        return cmd_crash_hold(&o);
    if (strcmp(s, "crash-wait") == 0)
        return cmd_crash_wait(&o);
    if (strcmp(s, "timeouts") == 0)
        return cmd_timeouts(&o);
    if (strcmp(s, "scale-renew") == 0)
        return cmd_scale_renew(&o);
    if (strcmp(s, "scale-threads") == 0)
        return cmd_scale_threads(&o);
    die("unknown subcommand %s", s);
}
