/* rl_chaos: N processes loop on one lock while faults are injected.
 *
 *   rl_chaos [--mode faults|restarts] [--workers N] [--duration SEC] [--seed S]
 *            [--expire MS] [--report FILE] [--dir DIR] [--quiet]
 *
 * The program starts everything itself, in a fresh temp dir (or --dir):
 *   - a private redis-server on a unix socket (no persistence, `enable-debug-command
 *     local`, nothing on TCP);
 *   - a "storage" process (a unix datagram socket) holding one fenced register: READ(t)
 *     and WRITE(t, v) are refused when t is lower than the highest token it has seen
 *     (reads count: a holder's read registers its token, so a write from an older holder
 *     that lands after a newer holder's read is refused);
 *   - N workers, each its own process with its own client, looping on the lock "chaos"
 *     (expire_ms 1000 by default, auto_renewal, fencing). Inside the critical section a
 *     worker does READ(token) at the storage, a deliberately non-atomic GET counter /
 *     SET counter+1 on Redis, and WRITE(token, read+1) at the storage; then releases.
 *   - a fault injector (this process), at random intervals:
 *       faults mode:   kill -9 of a holder (respawned), SIGSTOP of a holder for longer than
 *                      the expiry then SIGCONT, CLIENT KILL of every client connection,
 *                      DEBUG SLEEP longer than the command timeout;
 *       restarts mode: kill -9 of redis-server and a restart without persistence (locks,
 *                      fencing counters and the counter vanish); every other restart,
 *                      the first one included, happens while a holder is SIGSTOPped
 *                      (one whose storage READ was accepted and whose WRITE is to come),
 *                      woken once a holder of the restarted server has reached the
 *                      storage: the woken holder's WRITE is then stale.
 *
 * Per-process statistics live in shared memory, so a killed worker's counts survive it.
 * The report: acquisitions, waits, every return code each worker saw, renewals lost
 * (on_lost), stale operations the storage refused, Redis's counter against the SETs that
 * were made (the unfenced resource), the storage's register against its accepted writes
 * (the fenced resource). See docs/reliability.md for what exactly is claimed.
 *
 * Exit status 0 only if: the storage lost no update; every holder that the storage found
 * stale (faults) or whose lock vanished in a restart learned it (ENOTHELD at release or
 * on_lost); no acquire overran its deadline by more than the slack; no worker crashed or
 * hung; and there were acquisitions at all. */
#include <redis_lock.h>

#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 128
#define NCODES 12 /* REDIS_LOCK_ECANCELED (-10) .. REDIS_LOCK_BUSY (1) */
#define ACQUIRE_TIMEOUT_MS 3000
#define COMMAND_TIMEOUT_MS 300
#define STORAGE_TIMEOUT_MS 2000
#define MAX_ITERATIONS 1000000L /* per worker process: a bound besides the clock */

/* ---------------- shared state ---------------- */

typedef struct {
    atomic_int pid;
    atomic_int in_cs; /* in the critical section: 1 reading, 2 read accepted (before the
                         WRITE), 3 written or refused */
    atomic_long spawns;
    atomic_long acquire_rc[NCODES];   /* by return code */
    atomic_long release_rc[NCODES];
    atomic_long release_retries;      /* ECONN at release, retried */
    atomic_long on_lost;
    atomic_long stale_read, stale_write; /* the storage refused our token */
    atomic_long storage_errors;          /* no answer from the storage */
    atomic_long redis_errors;            /* the raw GET/SET connection */
    atomic_long sets_sent, sets_ok;      /* SET counter sent / answered OK */
    atomic_long writes_ok;               /* storage WRITE accepted */
    atomic_long overlong;                /* acquire returned past deadline + slack */
    atomic_long max_overrun_ms;
    atomic_long stale_unnoticed;  /* stale at the storage, yet release OK and no on_lost */
    atomic_long vanished;         /* holds that spanned a server restart */
    atomic_long vanished_unnoticed;
    atomic_long lost_in_cs;       /* on_lost fired while in the critical section */
} worker_stats;

typedef struct {
    atomic_int stop;
    atomic_long restart_epoch;
    atomic_long faults_kill, faults_stop, faults_clientkill, faults_debugsleep,
        faults_restart;
    atomic_long crashes; /* a worker died of a signal we did not send */
    atomic_int crash_signal;
    atomic_long hung;    /* still running at the end: killed */
    /* storage */
    atomic_long st_reads_ok, st_reads_stale, st_writes_ok, st_writes_stale, st_lost;
    atomic_long st_value, st_max_token, st_token_resets;
    atomic_long st_stale_after_restart;
    atomic_long st_stale_accepted; /* writes of a holder older than one already seen */
    atomic_long st_newest_epoch;   /* the newest epoch a holder has shown up from */
    worker_stats w[MAX_WORKERS];
} shared_state;

static shared_state *sh;

/* ---------------- options ---------------- */

static struct {
    const char *mode;
    int workers;
    int duration_s;
    unsigned seed;
    int expire_ms;
    const char *report;
    char dir[80];
    bool quiet;
} opt = {"faults", 20, 60, 0, 1000, NULL, "", false};

static char sock_path[100], storage_path[100], conf_path[300], log_path[300];

/* the storage's address (paths are checked to fit sun_path at start) */
static void storage_addr(struct sockaddr_un *a)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    memcpy(a->sun_path, storage_path, strlen(storage_path) + 1);
}
static pid_t server_pid, storage_pid;
static int64_t end_ms;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "rl_chaos: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static int code_index(int rc)
{
    int i = rc + 10;
    return i < 0 ? 0 : i >= NCODES ? NCODES - 1 : i;
}

static void atomic_max(atomic_long *a, long v)
{
    long cur = atomic_load(a);
    while (v > cur && !atomic_compare_exchange_weak(a, &cur, v)) {
    }
}

/* a small per-process PRNG (xorshift) */
static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
static int64_t rnd_between(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

/* ---------------- redis-server ---------------- */

static void server_spawn(void)
{
    pid_t parent = getpid();
    unlink(sock_path);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(devnull, 1);
        execlp("redis-server", "redis-server", conf_path, (char *)NULL);
        _exit(127);
    }
    server_pid = pid;
    int64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline) {
        redisContext *c = redisConnectUnix(sock_path);
        if (c && !c->err) {
            redisReply *r = redisCommand(c, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS;
            if (r)
                freeReplyObject(r);
            redisFree(c);
            if (ok)
                return;
        } else if (c) {
            redisFree(c);
        }
        if (waitpid(pid, NULL, WNOHANG) == pid)
            die("redis-server exited at start; see %s", log_path);
        sleep_ms(10);
    }
    die("redis-server did not answer on %s within 10 s", sock_path);
}

static void server_start(void)
{
    FILE *f = fopen(conf_path, "w");
    if (!f)
        die("cannot write %s: %s", conf_path, strerror(errno));
    fprintf(f, "port 0\nunixsocket %s\nunixsocketperm 700\nsave \"\"\nappendonly no\n"
               "daemonize no\ndir %s\nlogfile %s\nenable-debug-command local\n"
               "maxclients 1000\n",
            sock_path, opt.dir, log_path);
    fclose(f);
    server_spawn();
}

static void server_kill(void)
{
    if (server_pid > 0) {
        kill(server_pid, SIGKILL);
        waitpid(server_pid, NULL, 0);
        server_pid = 0;
    }
}

static redisReply *admin_cmd(const char *fmt, ...)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectUnixWithTimeout(sock_path, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* ---------------- storage ---------------- */

enum { ST_READ = 1, ST_WRITE = 2, ST_RESTART_NOTE = 3 };
typedef struct {
    int type;
    int worker;
    int64_t token;
    int64_t value;
    uint64_t seq;
    int64_t epoch; /* ground truth for the report only: the server restarts the holder's
                      acquire saw; the storage decides by the token alone */
} st_msg;
typedef struct {
    uint64_t seq;
    int accepted;
    int64_t value;
} st_reply;

static void storage_main(void)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a;
    storage_addr(&a);
    unlink(storage_path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0)
        _exit(3);
    int64_t value = 0, max_token = 0;
    int64_t max_epoch = 0, max_epoch_token = 0; /* the newest acquisition seen, really */
    bool after_restart = false;
    for (;;) {
        st_msg m;
        struct sockaddr_un from;
        socklen_t flen = sizeof from;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0) {
            if (atomic_load(&sh->stop) == 2)
                break;
            continue;
        }
        ssize_t n = recvfrom(fd, &m, sizeof m, 0, (struct sockaddr *)&from, &flen);
        if (n != (ssize_t)sizeof m)
            continue;
        st_reply r = {m.seq, 0, 0};
        if (m.type == ST_RESTART_NOTE) {
            after_restart = true;
            continue;
        }
        /* stale in truth: an acquisition newer than this one (later epoch, or same epoch
         * and higher token) has already shown up here */
        bool truly_stale = m.epoch < max_epoch ||
                           (m.epoch == max_epoch && m.token < max_epoch_token);
        if (!truly_stale) {
            max_epoch = m.epoch;
            max_epoch_token = m.token;
            atomic_store(&sh->st_newest_epoch, max_epoch);
        }
        if (getenv("RL_CHAOS_DEBUG") && (truly_stale || m.epoch > 0))
            fprintf(stderr, "storage: %s w%d epoch %lld token %lld (max token %lld, newest "
                            "epoch %lld token %lld)%s\n",
                    m.type == ST_READ ? "READ" : "WRITE", m.worker, (long long)m.epoch,
                    (long long)m.token, (long long)max_token, (long long)max_epoch,
                    (long long)max_epoch_token, truly_stale ? " STALE" : "");
        if (m.token < max_token) {
            /* a token lower than the highest seen: a holder whose lock was taken over */
            if (m.type == ST_READ)
                atomic_fetch_add(&sh->st_reads_stale, 1);
            else
                atomic_fetch_add(&sh->st_writes_stale, 1);
            if (after_restart)
                atomic_fetch_add(&sh->st_stale_after_restart, 1);
        } else {
            max_token = m.token;
            r.accepted = 1;
            if (m.type == ST_READ) {
                atomic_fetch_add(&sh->st_reads_ok, 1);
                r.value = value;
            } else {
                /* read v with this token, nobody newer read since: v is still current */
                if (m.value != value + 1)
                    atomic_fetch_add(&sh->st_lost, 1);
                if (truly_stale)
                    atomic_fetch_add(&sh->st_stale_accepted, 1);
                value = m.value;
                atomic_fetch_add(&sh->st_writes_ok, 1);
            }
        }
        atomic_store(&sh->st_value, value);
        atomic_store(&sh->st_max_token, max_token);
        sendto(fd, &r, sizeof r, MSG_DONTWAIT, (struct sockaddr *)&from, flen);
    }
    close(fd);
    _exit(0);
}

/* one request, one answer (or -1 after STORAGE_TIMEOUT_MS) */
static int storage_call(int fd, uint64_t *seq, int type, int worker, int64_t token,
                        int64_t epoch, int64_t value, st_reply *out)
{
    struct sockaddr_un a;
    storage_addr(&a);
    st_msg m = {type, worker, token, value, ++*seq, epoch};
    if (sendto(fd, &m, sizeof m, 0, (struct sockaddr *)&a, sizeof a) != (ssize_t)sizeof m)
        return -1;
    int64_t deadline = now_ms() + STORAGE_TIMEOUT_MS;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t n = recv(fd, out, sizeof *out, 0);
        if (n == (ssize_t)sizeof *out && out->seq == m.seq)
            return 0; /* else: the answer to an older request we gave up on */
    }
}

/* ---------------- worker ---------------- */

static _Atomic long lost_events;

static void on_lost(redis_lock *l, void *payload)
{
    (void)l;
    worker_stats *ws = payload;
    atomic_fetch_add(&ws->on_lost, 1);
    atomic_fetch_add(&lost_events, 1);
    if (atomic_load(&ws->in_cs))
        atomic_fetch_add(&ws->lost_in_cs, 1);
}

static redisContext *raw_connect(void)
{
    struct timeval tv = {0, COMMAND_TIMEOUT_MS * 1000};
    redisContext *c = redisConnectUnixWithTimeout(sock_path, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* GET counter (out) or SET counter v: 0 ok; the connection is dropped on error */
static int raw_get(redisContext **cp, long long *out)
{
    if (!*cp && !(*cp = raw_connect()))
        return -1;
    redisReply *r = redisCommand(*cp, "GET counter");
    if (!r || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        if (r)
            freeReplyObject(r);
        redisFree(*cp);
        *cp = NULL;
        return -1;
    }
    *out = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
    freeReplyObject(r);
    return 0;
}

static int raw_set(redisContext **cp, long long v)
{
    if (!*cp && !(*cp = raw_connect()))
        return -1;
    redisReply *r = redisCommand(*cp, "SET counter %lld", v);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (r)
        freeReplyObject(r);
    if (!ok) {
        redisFree(*cp);
        *cp = NULL;
    }
    return ok ? 0 : -1;
}

static void worker_main(int idx)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    worker_stats *ws = &sh->w[idx];
    rng_state = (uint64_t)opt.seed * 7919 + (uint64_t)getpid() * 104729 + (uint64_t)now_ms();
    if (!rng_state)
        rng_state = 1;

    int sfd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un me = {0};
    me.sun_family = AF_UNIX;
    /* abstract address: nothing to clean up after a kill -9 */
    snprintf(me.sun_path + 1, sizeof me.sun_path - 1, "rl-chaos-%d-%d", (int)getppid(), idx);
    if (sfd < 0 || bind(sfd, (struct sockaddr *)&me, sizeof me) < 0)
        _exit(4);
    uint64_t seq = 0;

    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    char url[400];
    snprintf(url, sizeof url, "unix://%s", sock_path);
    co.url = url;
    co.connect_timeout_ms = COMMAND_TIMEOUT_MS;
    co.command_timeout_ms = COMMAND_TIMEOUT_MS;
    redis_lock_client *c = NULL;
    while (!atomic_load(&sh->stop) && now_ms() < end_ms) {
        if (redis_lock_client_open(&c, &co) == 0)
            break;
        sleep_ms(50); /* the server may be restarting */
    }
    if (!c)
        _exit(0);
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.expire_ms = opt.expire_ms;
    lo.auto_renewal = true;
    lo.fencing = true;
    lo.on_lost = on_lost;
    lo.on_lost_payload = ws;
    redis_lock *l = NULL;
    if (redis_lock_new(&l, c, "chaos", &lo) != 0)
        _exit(5);
    redisContext *raw = NULL;

    for (long it = 0; it < MAX_ITERATIONS && !atomic_load(&sh->stop) && now_ms() < end_ms;
         it++) {
        int64_t t0 = now_ms();
        int rc = redis_lock_acquire(l, ACQUIRE_TIMEOUT_MS);
        int64_t took = now_ms() - t0;
        atomic_fetch_add(&ws->acquire_rc[code_index(rc)], 1);
        long overrun = (long)(took - ACQUIRE_TIMEOUT_MS);
        atomic_max(&ws->max_overrun_ms, overrun);
        /* slack: a try in flight at the deadline may take a command timeout, a reconnect
         * another; more than that is a wait that does not keep its deadline */
        if (overrun > 2 * COMMAND_TIMEOUT_MS + 2000)
            atomic_fetch_add(&ws->overlong, 1);
        if (rc != REDIS_LOCK_OK) {
            if (rc != REDIS_LOCK_BUSY)
                sleep_ms(rnd_between(10, 50));
            continue;
        }
        long epoch0 = atomic_load(&sh->restart_epoch);
        long lost0 = atomic_load(&lost_events);
        atomic_store(&ws->in_cs, 1);
        int64_t token = redis_lock_fencing_token(l);
        bool stale = false;
        st_reply sr;
        if (storage_call(sfd, &seq, ST_READ, idx, token, epoch0, 0, &sr) < 0) {
            atomic_fetch_add(&ws->storage_errors, 1);
        } else if (!sr.accepted) {
            atomic_fetch_add(&ws->stale_read, 1);
            stale = true;
        } else {
            atomic_store(&ws->in_cs, 2);
            int64_t stored = sr.value;
            long long counter = 0;
            if (raw_get(&raw, &counter) < 0) {
                atomic_fetch_add(&ws->redis_errors, 1);
            } else {
                if (rnd() % 4 == 0)
                    sleep_ms(rnd_between(1, 20)); /* widen the window */
                atomic_fetch_add(&ws->sets_sent, 1);
                if (raw_set(&raw, counter + 1) < 0)
                    atomic_fetch_add(&ws->redis_errors, 1);
                else
                    atomic_fetch_add(&ws->sets_ok, 1);
            }
            if (storage_call(sfd, &seq, ST_WRITE, idx, token, epoch0, stored + 1, &sr) < 0) {
                atomic_store(&ws->in_cs, 3);
                atomic_fetch_add(&ws->storage_errors, 1);
            } else if (!sr.accepted) {
                atomic_store(&ws->in_cs, 3);
                atomic_fetch_add(&ws->stale_write, 1);
                stale = true;
            } else {
                atomic_store(&ws->in_cs, 3);
                atomic_fetch_add(&ws->writes_ok, 1);
            }
        }
        atomic_store(&ws->in_cs, 0);
        /* release; a dropped connection or a server still restarting is retried: the
         * holder must end up knowing whether it held the lock to the end */
        int rrc = REDIS_LOCK_ECONN;
        for (int tries = 0; tries < 10; tries++) {
            rrc = redis_lock_release(l);
            if (rrc != REDIS_LOCK_ECONN)
                break;
            atomic_fetch_add(&ws->release_retries, 1);
            sleep_ms(100);
        }
        atomic_fetch_add(&ws->release_rc[code_index(rrc)], 1);
        bool learned = rrc == REDIS_LOCK_ENOTHELD || atomic_load(&lost_events) != lost0;
        /* (in the restarts mode tokens start again at 1 after a restart, so the storage
         * refuses holders that did hold their lock: only vanished holds are judged) */
        if (stale && !learned && strcmp(opt.mode, "restarts") != 0)
            atomic_fetch_add(&ws->stale_unnoticed, 1);
        if (atomic_load(&sh->restart_epoch) != epoch0) {
            atomic_fetch_add(&ws->vanished, 1);
            if (!learned)
                atomic_fetch_add(&ws->vanished_unnoticed, 1);
        }
    }
    if (raw)
        redisFree(raw);
    redis_lock_free(l);
    redis_lock_client_close(c);
    close(sfd);
    _exit(0);
}

static pid_t spawn_worker(int idx)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0)
        worker_main(idx);
    atomic_store(&sh->w[idx].pid, (int)pid);
    atomic_fetch_add(&sh->w[idx].spawns, 1);
    return pid;
}

/* ---------------- the fault injector ---------------- */

static int find_worker(pid_t pid)
{
    for (int i = 0; i < opt.workers; i++)
        if (atomic_load(&sh->w[i].pid) == (int)pid)
            return i;
    return -1;
}

/* reap exited workers; respawn them while the run goes on */
static void reap(bool respawn, pid_t expected_kill)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == storage_pid || pid == server_pid)
            continue;
        int idx = find_worker(pid);
        if (idx < 0)
            continue;
        if (WIFSIGNALED(status) && !(pid == expected_kill && WTERMSIG(status) == SIGKILL)) {
            atomic_fetch_add(&sh->crashes, 1);
            atomic_store(&sh->crash_signal, WTERMSIG(status));
            fprintf(stderr, "rl_chaos: worker %d (pid %d) died of signal %d (%s)\n", idx,
                    (int)pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
        } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
            atomic_fetch_add(&sh->crashes, 1);
            fprintf(stderr, "rl_chaos: worker %d exited with status %d\n", idx,
                    WEXITSTATUS(status));
        }
        atomic_store(&sh->w[idx].pid, 0);
        atomic_store(&sh->w[idx].in_cs, 0);
        if (respawn && now_ms() < end_ms - 500)
            spawn_worker(idx);
    }
}

/* a worker inside the critical section, preferably one whose storage READ was accepted
 * and whose WRITE is still to come */
static int pick_holder_now(void)
{
    int any = -1;
    for (int i = 0; i < opt.workers; i++) {
        int st = atomic_load(&sh->w[i].in_cs);
        if (st && atomic_load(&sh->w[i].pid) > 0) {
            if (st == 2)
                return i;
            any = i;
        }
    }
    return any;
}

static int pick_holder(void)
{
    /* critical sections are short: poll a moment for one to be inside */
    for (int tries = 0; tries < 500; tries++) {
        int i = pick_holder_now();
        if (i >= 0)
            return i;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    int holders[MAX_WORKERS], n = 0;
    for (int i = 0; i < opt.workers; i++)
        if (atomic_load(&sh->w[i].in_cs) && atomic_load(&sh->w[i].pid) > 0)
            holders[n++] = i;
    if (n)
        return holders[rnd() % (uint64_t)n];
    /* nobody inside right now: any worker (it may hold, wait or be about to) */
    return (int)(rnd() % (uint64_t)opt.workers);
}

static void say(const char *fmt, ...)
{
    if (opt.quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("[%6.1f s] ", (double)(now_ms() - (end_ms - opt.duration_s * 1000)) / 1000.0);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
}

static void storage_note_restart(void)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a;
    storage_addr(&a);
    st_msg m = {ST_RESTART_NOTE, -1, 0, 0, 0, 0};
    if (fd >= 0) {
        sendto(fd, &m, sizeof m, 0, (struct sockaddr *)&a, sizeof a);
        close(fd);
    }
}

static void inject(void)
{
    bool restarts = strcmp(opt.mode, "restarts") == 0;
    while (now_ms() < end_ms - 1500) {
        sleep_ms(rnd_between(restarts ? 2500 : 300, restarts ? 5000 : 1500));
        reap(true, 0);
        if (now_ms() >= end_ms - 1500)
            break;
        if (restarts) {
            /* every other restart happens while a holder is stopped; it is woken once the
             * new server has handed out new tokens: its writes are then stale */
            bool pause = atomic_load(&sh->faults_restart) % 2 == 0;
            pid_t paused = 0;
            if (pause) {
                int i = pick_holder();
                paused = atomic_load(&sh->w[i].pid);
                if (paused > 0) {
                    kill(paused, SIGSTOP);
                    if (getenv("RL_CHAOS_DEBUG"))
                        fprintf(stderr, "stopped w%d in phase %d\n", i,
                                atomic_load(&sh->w[i].in_cs));
                    atomic_fetch_add(&sh->faults_stop, 1);
                }
            }
            /* the epoch moves after the kill, before the restart: a hold that saw the old
             * epoch may have lost its lock; one that saw the new epoch acquired after the
             * restart (or, in a tiny window, just before the kill: never counted wrong the
             * other way) */
            server_kill();
            atomic_fetch_add(&sh->restart_epoch, 1);
            storage_note_restart();
            sleep_ms(rnd_between(50, 500));
            server_spawn();
            atomic_fetch_add(&sh->faults_restart, 1);
            if (paused > 0) {
                /* wake it once a holder of the new server has reached the storage */
                long epoch = atomic_load(&sh->restart_epoch);
                int64_t until = now_ms() + 3000;
                while (atomic_load(&sh->st_newest_epoch) < epoch && now_ms() < until)
                    sleep_ms(5);
                sleep_ms(rnd_between(10, 100));
                kill(paused, SIGCONT);
                say("restarted redis-server (no persistence) while pid %d was stopped",
                    (int)paused);
            } else {
                say("restarted redis-server (no persistence)");
            }
            continue;
        }
        int kind = (int)(rnd() % 4);
        if (kind == 0) {
            int i = pick_holder();
            pid_t pid = atomic_load(&sh->w[i].pid);
            if (pid <= 0)
                continue;
            kill(pid, SIGKILL);
            int status;
            waitpid(pid, &status, 0);
            atomic_store(&sh->w[i].pid, 0);
            atomic_store(&sh->w[i].in_cs, 0);
            atomic_fetch_add(&sh->faults_kill, 1);
            spawn_worker(i);
            say("kill -9 worker %d (pid %d), respawned", i, (int)pid);
        } else if (kind == 1) {
            int i = pick_holder();
            pid_t pid = atomic_load(&sh->w[i].pid);
            if (pid <= 0)
                continue;
            int64_t pause = opt.expire_ms * 2 + rnd_between(0, 500);
            kill(pid, SIGSTOP);
            atomic_fetch_add(&sh->faults_stop, 1);
            say("SIGSTOP worker %d (pid %d, %s) for %lld ms", i, (int)pid,
                atomic_load(&sh->w[i].in_cs) ? "holding" : "not holding", (long long)pause);
            sleep_ms(pause);
            kill(pid, SIGCONT);
        } else if (kind == 2) {
            redisReply *r = admin_cmd("CLIENT KILL TYPE normal SKIPME yes");
            say("CLIENT KILL TYPE normal: %lld connections",
                r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1LL);
            if (r)
                freeReplyObject(r);
            atomic_fetch_add(&sh->faults_clientkill, 1);
        } else {
            double secs = (COMMAND_TIMEOUT_MS + (double)rnd_between(100, 500)) / 1000.0;
            redisReply *r = admin_cmd("DEBUG SLEEP %.3f", secs);
            say("DEBUG SLEEP %.3f s (%s)", secs,
                r && r->type == REDIS_REPLY_STATUS ? "done"
                : r && r->str                      ? r->str
                                                   : "no reply");
            if (r)
                freeReplyObject(r);
            atomic_fetch_add(&sh->faults_debugsleep, 1);
        }
    }
}

/* ---------------- report ---------------- */

static const char *short_code(int i)
{
    static const char *names[NCODES] = {"ECANCELED", "EUSER", "ENOMEM", "ESERVER", "ECONN",
                                        "EALREADY", "ENOTHELD", "ENOEXPIRE", "ETOOLONG",
                                        "EINVAL", "OK", "BUSY"};
    return names[i];
}

static long sum(size_t off)
{
    long s = 0;
    for (int i = 0; i < opt.workers; i++)
        s += atomic_load((atomic_long *)((char *)&sh->w[i] + off));
    return s;
}
#define SUM(field) sum(offsetof(worker_stats, field))

static void codes(FILE *f, atomic_long *arr)
{
    bool any = false;
    for (int c = 0; c < NCODES; c++) {
        long v = atomic_load(&arr[c]);
        if (v) {
            fprintf(f, "%s%s=%ld", any ? " " : "", short_code(c), v);
            any = true;
        }
    }
    if (!any)
        fputs("-", f);
}

static int report(FILE *f, long long counter, bool counter_known)
{
    bool restarts = strcmp(opt.mode, "restarts") == 0;
    long acq_ok = 0, acq_total = 0;
    atomic_long acq_codes[NCODES], rel_codes[NCODES];
    for (int c = 0; c < NCODES; c++) {
        long a = 0, r = 0;
        for (int i = 0; i < opt.workers; i++) {
            a += atomic_load(&sh->w[i].acquire_rc[c]);
            r += atomic_load(&sh->w[i].release_rc[c]);
        }
        atomic_store(&acq_codes[c], a);
        atomic_store(&rel_codes[c], r);
        acq_total += a;
    }
    acq_ok = atomic_load(&acq_codes[code_index(REDIS_LOCK_OK)]);
    long max_overrun = LONG_MIN;
    for (int i = 0; i < opt.workers; i++)
        if (atomic_load(&sh->w[i].max_overrun_ms) > max_overrun)
            max_overrun = atomic_load(&sh->w[i].max_overrun_ms);

    fprintf(f, "## rl_chaos, mode %s: %d workers, %d s, expire %d ms, seed %u\n\n", opt.mode,
            opt.workers, opt.duration_s, opt.expire_ms, opt.seed);
    fprintf(f, "faults: kill -9 %ld, SIGSTOP %ld, CLIENT KILL %ld, DEBUG SLEEP %ld, server "
               "restarts %ld\n\n",
            atomic_load(&sh->faults_kill), atomic_load(&sh->faults_stop),
            atomic_load(&sh->faults_clientkill), atomic_load(&sh->faults_debugsleep),
            atomic_load(&sh->faults_restart));
    fprintf(f, "| worker | spawns | acquire results | release results | on_lost | stale "
               "(storage refused) | storage/redis errors |\n|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < opt.workers; i++) {
        worker_stats *w = &sh->w[i];
        fprintf(f, "| %d | %ld | ", i, atomic_load(&w->spawns));
        codes(f, w->acquire_rc);
        fputs(" | ", f);
        codes(f, w->release_rc);
        fprintf(f, " | %ld | %ld | %ld/%ld |\n", atomic_load(&w->on_lost),
                atomic_load(&w->stale_read) + atomic_load(&w->stale_write),
                atomic_load(&w->storage_errors), atomic_load(&w->redis_errors));
    }
    fprintf(f, "\ntotals: acquisitions %ld of %ld acquire calls; acquire results: ", acq_ok,
            acq_total);
    codes(f, acq_codes);
    fputs("; release results: ", f);
    codes(f, rel_codes);
    fprintf(f, "; release retried after ECONN %ld; on_lost %ld (%ld inside the critical "
               "section)\n",
            SUM(release_retries), SUM(on_lost), SUM(lost_in_cs));
    long st_w = atomic_load(&sh->st_writes_ok), st_v = atomic_load(&sh->st_value);
    fprintf(f, "storage (fenced): writes accepted %ld, register value %ld, lost updates %ld "
               "(value checks failed %ld); stale refused: reads %ld, writes %ld%s; highest "
               "token %ld\n",
            st_w, st_v, st_w - st_v, atomic_load(&sh->st_lost),
            atomic_load(&sh->st_reads_stale), atomic_load(&sh->st_writes_stale),
            restarts ? "" : "", atomic_load(&sh->st_max_token));
    if (restarts)
        fprintf(f, "storage refusals after the first restart (stale holders; and every new "
                   "holder, were tokens to start again at 1): %ld\n",
                atomic_load(&sh->st_stale_after_restart));
    fprintf(f, "stale writes the storage accepted (the writer's acquisition was older than "
               "one the storage had already seen): %ld\n",
            atomic_load(&sh->st_stale_accepted));
    long sets_ok = SUM(sets_ok), sets_sent = SUM(sets_sent);
    if (counter_known && !restarts) {
        /* a SET whose answer was lost (CLIENT KILL, timeout, kill -9) may or may not have
         * been applied: the losses lie between these two bounds */
        long lo = sets_ok - (long)counter, hi = sets_sent - (long)counter;
        fprintf(f, "redis counter (unfenced GET/SET): %lld; SETs answered OK %ld, sent %ld: "
                   "increments lost: at least %ld, at most %ld\n",
                counter, sets_ok, sets_sent, lo > 0 ? lo : 0, hi > 0 ? hi : 0);
    }
    else
        fprintf(f, "redis counter (unfenced GET/SET): %lld after %ld SETs answered OK; not "
                   "comparable across restarts (the counter vanishes with the server)\n",
                counter, sets_ok);
    if (!restarts)
        fprintf(f, "holders the storage found stale: %ld, of which learned it (ENOTHELD or "
                   "on_lost): %ld\n",
                SUM(stale_read) + SUM(stale_write),
                SUM(stale_read) + SUM(stale_write) - SUM(stale_unnoticed));
    if (restarts)
        fprintf(f, "holds spanning a server restart: %ld, of which learned it: %ld\n",
                SUM(vanished), SUM(vanished) - SUM(vanished_unnoticed));
    fprintf(f, "acquire deadline (%d ms): longest overrun %ld ms, overruns beyond the slack "
               "(%d ms) %ld\n",
            ACQUIRE_TIMEOUT_MS, max_overrun, 2 * COMMAND_TIMEOUT_MS + 2000, SUM(overlong));
    fprintf(f, "workers crashed %ld, hung at the end %ld\n\n", atomic_load(&sh->crashes),
            atomic_load(&sh->hung));

    int failures = 0;
#define REQUIRE(cond, ...)                            \
    do {                                              \
        if (!(cond)) {                                \
            fprintf(f, "FAIL: " __VA_ARGS__);         \
            fputc('\n', f);                           \
            failures++;                               \
        }                                             \
    } while (0)
    REQUIRE(acq_ok > 0, "no acquisitions at all");
    REQUIRE(st_w == st_v && atomic_load(&sh->st_lost) == 0,
            "the fenced storage lost %ld updates", st_w - st_v);
    REQUIRE(atomic_load(&sh->st_stale_accepted) == 0,
            "fencing let %ld stale writes through (are tokens increasing across the "
            "restarts of a server without persistence?)",
            atomic_load(&sh->st_stale_accepted));
    REQUIRE(SUM(stale_unnoticed) == 0, "%ld stale holders released OK without on_lost",
            SUM(stale_unnoticed));
    REQUIRE(SUM(vanished_unnoticed) == 0,
            "%ld holders whose lock vanished in a restart never learned it",
            SUM(vanished_unnoticed));
    REQUIRE(SUM(overlong) == 0, "%ld acquires overran their deadline", SUM(overlong));
    REQUIRE(atomic_load(&sh->crashes) == 0, "%ld workers crashed",
            atomic_load(&sh->crashes));
    REQUIRE(atomic_load(&sh->hung) == 0, "%ld workers hung", atomic_load(&sh->hung));
    REQUIRE(SUM(storage_errors) == 0, "%ld storage requests unanswered",
            SUM(storage_errors));
    fprintf(f, "%s\n", failures ? "RESULT: FAIL" : "RESULT: PASS");
    return failures;
}

/* ---------------- main ---------------- */

static void usage(void)
{
    fprintf(stderr, "usage: rl_chaos [--mode faults|restarts] [--workers N] [--duration SEC] "
                    "[--seed S] [--expire MS] [--report FILE] [--dir DIR] [--quiet]\n");
    exit(64);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quiet")) {
            opt.quiet = true;
            continue;
        }
        if (!v)
            usage();
        if (!strcmp(a, "--mode"))
            opt.mode = v;
        else if (!strcmp(a, "--workers"))
            opt.workers = atoi(v);
        else if (!strcmp(a, "--duration"))
            opt.duration_s = atoi(v);
        else if (!strcmp(a, "--seed"))
            opt.seed = (unsigned)strtoul(v, NULL, 10);
        else if (!strcmp(a, "--expire"))
            opt.expire_ms = atoi(v);
        else if (!strcmp(a, "--report"))
            opt.report = v;
        else if (!strcmp(a, "--dir"))
            snprintf(opt.dir, sizeof opt.dir, "%s", v);
        else
            usage();
        i++;
    }
    if (strcmp(opt.mode, "faults") != 0 && strcmp(opt.mode, "restarts") != 0)
        usage();
    if (opt.workers < 1 || opt.workers > MAX_WORKERS || opt.duration_s < 5 ||
        opt.duration_s > 24 * 3600 || opt.expire_ms < 100)
        usage();
    if (!opt.seed)
        opt.seed = (unsigned)time(NULL);
    rng_state = (uint64_t)opt.seed * 2654435761u + 1;
    signal(SIGPIPE, SIG_IGN); /* the injector's own hiredis connections (the library never
                                 raises it; workers keep the default disposition) */
    bool own_dir = !opt.dir[0];
    if (own_dir) {
        snprintf(opt.dir, sizeof opt.dir, "/tmp/rl-chaos-XXXXXX");
        if (!mkdtemp(opt.dir))
            die("mkdtemp: %s", strerror(errno));
    }
    if (strlen(opt.dir) > 60)
        die("--dir %s: too long for a unix socket path", opt.dir);
    snprintf(sock_path, sizeof sock_path, "%s/redis.sock", opt.dir);
    snprintf(storage_path, sizeof storage_path, "%s/storage.sock", opt.dir);
    snprintf(conf_path, sizeof conf_path, "%s/redis.conf", opt.dir);
    snprintf(log_path, sizeof log_path, "%s/redis.log", opt.dir);

    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    memset(sh, 0, sizeof *sh);

    server_start();
    end_ms = now_ms() + (int64_t)opt.duration_s * 1000;
    storage_pid = fork();
    if (storage_pid < 0)
        die("fork: %s", strerror(errno));
    if (storage_pid == 0)
        storage_main();
    sleep_ms(50);
    for (int i = 0; i < opt.workers; i++)
        spawn_worker(i);
    say("mode %s: %d workers, redis at %s", opt.mode, opt.workers, sock_path);

    inject();
    while (now_ms() < end_ms) {
        reap(false, 0);
        sleep_ms(100);
    }
    atomic_store(&sh->stop, 1);
    /* workers finish their acquire (<= 3 s) and critical section; then they are hung */
    int64_t grace = now_ms() + ACQUIRE_TIMEOUT_MS + 7000;
    for (;;) {
        reap(false, 0);
        bool alive = false;
        for (int i = 0; i < opt.workers; i++)
            if (atomic_load(&sh->w[i].pid) > 0)
                alive = true;
        if (!alive || now_ms() > grace)
            break;
        sleep_ms(50);
    }
    for (int i = 0; i < opt.workers; i++) {
        pid_t pid = atomic_load(&sh->w[i].pid);
        if (pid > 0) {
            fprintf(stderr, "rl_chaos: worker %d (pid %d) still running: killed\n", i,
                    (int)pid);
            atomic_fetch_add(&sh->hung, 1);
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
        }
    }
    long long counter = -1;
    bool known = false;
    redisReply *r = admin_cmd("GET counter");
    if (r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_NIL)) {
        counter = r->type == REDIS_REPLY_STRING ? atoll(r->str) : 0;
        known = true;
    }
    if (r)
        freeReplyObject(r);
    atomic_store(&sh->stop, 2);
    waitpid(storage_pid, NULL, 0);
    server_kill();

    int failures = report(stdout, counter, known);
    if (opt.report) {
        FILE *f = fopen(opt.report, "a");
        if (f) {
            report(f, counter, known);
            fclose(f);
        }
    }
    if (own_dir) {
        unlink(sock_path);
        unlink(storage_path);
        unlink(conf_path);
        unlink(log_path);
        rmdir(opt.dir);
    }
    return failures ? 1 : 0;
}
