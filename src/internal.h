/* Internal declarations shared by the library's source files. Not installed. */
#ifndef REDIS_LOCK_INTERNAL_H
#define REDIS_LOCK_INTERNAL_H

#define REDIS_LOCK_BUILDING 1
#include "redis_lock.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

#define RL_FORMAT(a, b) __attribute__((format(printf, a, b)))
#define RL_INFINITE INT64_MAX
/* The longest time we accept (about 317 years): expiries above it are EINVAL, waits above
 * it are forever. It keeps every deadline's arithmetic (in microseconds) from overflowing. */
#define RL_MAX_MS INT64_C(10000000000000)

/* ---- options.c: the library writes and reads only the fields of the caller's version ----
 * A public options struct begins with `unsigned version` and grows only by appending
 * fields under a new version. A caller built against version v has a struct that ends
 * where version v's last field ends, so the library must never write or read sizeof of
 * today's struct there. Each struct has a table ends[v] = RL_FIELD_END(type, last field of
 * version v) for 1 <= v <= the current version: when a version is added, add its entry and
 * never change an old one.
 * rl_options_init() fills a caller's struct of `version` from full current defaults.
 * rl_options_copy() checks the caller's version and copies its fields over *dst, which
 * holds the current defaults, so newer fields keep them. */
#define RL_FIELD_END(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
void rl_options_init(void *dst, const void *defaults, const size_t *ends, unsigned current,
                     unsigned version);
int rl_options_copy(void *dst, const void *src, const size_t *ends, unsigned current,
                    const char *type);
/* The 1.0 entry points, called by programs built against the 1.0 header (where _init was
 * a function, not a macro): they fill version 1. */
REDIS_LOCK_EXTERN void(redis_lock_client_options_init)(redis_lock_client_options *opts);
REDIS_LOCK_EXTERN void(redis_lock_options_init)(redis_lock_options *opts);
REDIS_LOCK_EXTERN void(redis_lock_cache_options_init)(redis_lock_cache_options *opts);

/* ---- alloc.c: every allocation of ours goes through these (tests can fail the Nth) ---- */
void *rl_malloc(size_t n);
void *rl_calloc(size_t count, size_t n);
void *rl_realloc(void *p, size_t n);
char *rl_strdup(const char *s);
char *rl_memdup(const void *p, size_t n); /* adds a NUL byte past n */
/* Test hook: fail the nth allocation from now on (1 = the next one); 0 turns it off.
 * Returns the number of allocations counted since the last call. */
long rl_alloc_fail_at(long nth);
/* A hiredis reader whose reply objects are made by hiredis's own functions through a hook
 * that a test can make fail (the reader then reports out of memory, as when malloc fails). */
redisReader *rl_reader_create(void);
/* Test hook: fail the nth reply object made from now on (1 = the next one, in any thread);
 * 0 turns it off. Returns the number of reply objects counted since the last call. */
long rl_reply_fail_at(long nth);

/* ---- error.c ---- */
int rl_error(int code, const char *fmt, ...) RL_FORMAT(2, 3);
void rl_error_clear(void);

/* ---- time.c: the monotonic clock, and the back-off between attempts at a failing server ---- */
int64_t rl_now_ms(void);
int64_t rl_now_us(void);
int rl_fmt_ms(char *buf, size_t n, int64_t ms);
/* Every retry at a server that failed waits first: at least RL_BACKOFF_MIN_MS, doubling
 * on each failure up to a cap, plus a random part of up to half of that (jitter), so that
 * clients that failed together do not come back together. */
#define RL_BACKOFF_MIN_MS 100
typedef struct {
    int64_t step_ms; /* 0: no failure since the last reset */
} rl_backoff;
/* The wait before the next attempt (>= RL_BACKOFF_MIN_MS); grows the step up to cap_ms. */
int64_t rl_backoff_next(rl_backoff *b, int64_t cap_ms);
static inline void rl_backoff_reset(rl_backoff *b)
{
    b->step_ms = 0;
}

/* ---- url.c ---- */
typedef struct {
    char *host;
    int port;
} rl_sentinel_addr;
typedef struct {
    bool unix_socket;
    char *host; /* or socket path; with sentinel, the first sentinel's until resolved */
    int port;
    char *user; /* NULL: none */
    char *password;
    int db;
    char *masked; /* the URL with the password replaced by "***" */
    bool tls;     /* rediss:// */
    /* TLS query parameters (NULL / -1: not given) */
    char *cacert, *cacertdir, *cert, *key, *sni;
    int insecure;
    /* redis+sentinel:// and rediss+sentinel:// */
    bool sentinel;
    char *master_name;
    int nsentinels;
    rl_sentinel_addr *sentinels;
    char *sentinel_user, *sentinel_password; /* NULL: none */
    /* any scheme (-1: not given) */
    int min_replicas, replica_timeout_ms;
} rl_url;
int rl_url_parse(rl_url *out, const char *url);
void rl_url_free(rl_url *u);

/* ---- conn.c: one Redis connection; hiredis formats commands and parses replies,
 * the socket is ours (close-on-exec, non-blocking, MSG_NOSIGNAL, poll-driven deadlines). */
typedef struct rl_conn rl_conn;

/* How a connection moves bytes: the plain socket (conn.c) or TLS (tls.c). */
typedef struct {
    /* Like recv()/send(): > 0 bytes moved, 0 EOF (read only), or -1 with errno set;
     * EAGAIN with *wait set to the poll() events to wait for before calling again. */
    ssize_t (*read)(rl_conn *conn, void *buf, size_t n, short *wait);
    ssize_t (*write)(rl_conn *conn, const void *buf, size_t n, short *wait);
    /* Nonzero when bytes were received and buffered but not read yet. */
    size_t (*pending)(const rl_conn *conn);
    /* Free the transport's state without a word on the socket (after fork() the socket
     * is shared with the parent). conn.c closes the socket itself. */
    void (*close)(rl_conn *conn);
    /* Why the last read or write failed with errno err, and its code (ECONN, EAUTH). */
    const char *(*error)(const rl_conn *conn, int err, int *code);
} rl_transport;

struct rl_conn {
    int fd;
    const rl_transport *tr;
    void *tls; /* tls.c's state, NULL over plain TCP or a unix socket */
    redisReader *reader;
    long long client_id;
    unsigned long fork_gen;
    unsigned long epoch; /* Sentinel: the master resolution it was opened under */
    bool demoted;        /* Sentinel: a reply said this node is no longer the master */
    char host[256];      /* the node it is connected to (or the socket path), and port */
    int port;
    struct rl_conn *next;
};

/* A command buffer: one or more commands formatted back to back (a pipeline). Small
 * ones live inline, so that the commonest calls (and a release after an allocation
 * failure) allocate nothing of ours. Initialise with {0}. */
typedef struct {
    char *data;
    size_t len, cap;
    int count;
    bool borrowed; /* data is the caller's memory (rl_buf_borrow): never freed */
    char small[1024];
} rl_buf;
/* Format into mem (cap bytes) first; only what does not fit there is allocated. */
void rl_buf_borrow(rl_buf *b, char *mem, size_t cap);
int rl_buf_add(rl_buf *b, int argc, const char **argv, const size_t *argvlen);
void rl_buf_free(rl_buf *b);

typedef struct redis_lock_client redis_lock_client;
int rl_conn_open(redis_lock_client *c, rl_conn **out);
void rl_conn_close(rl_conn *conn);
/* May an idle pooled connection be used? False when it belongs to a parent process, or
 * the server sent something (EOF, CLIENT KILL, ...) while it was idle. No round trip. */
bool rl_conn_idle_ok(rl_conn *conn);
/* poll() fd for events until deadline_ms or until wake_fd (if >= 0) is readable:
 * 1 ready, 2 woken, 0 deadline passed, -1 error (errno). */
int rl_wait_fd(int fd, short events, int64_t deadline_ms, int wake_fd);
int rl_conn_send(redis_lock_client *c, rl_conn *conn, const char *data, size_t len);
/* Read one reply, waiting until deadline_ms (RL_INFINITE: forever) or until
 * wake_fd (if >= 0) is readable, in which case it returns 1 with *out NULL.
 * Returns 0 with *out set, ECONN (EOF, protocol error, or the deadline passed when
 * there is no wake_fd) or ENOMEM (the reader ran out of memory); with a wake_fd a passed
 * deadline returns 2 (a wait's end). After an error the connection is not reusable. */
int rl_conn_read(redis_lock_client *c, rl_conn *conn, redisReply **out, int64_t deadline_ms,
                 int wake_fd);
/* Send argv and read its reply within the command timeout. An error reply is
 * returned as REDIS_LOCK_ESERVER with *out still set (caller frees). */
int rl_conn_command(redis_lock_client *c, rl_conn *conn, redisReply **out, int argc,
                    const char **argv, const size_t *argvlen);
/* Send a pipeline and read all its replies into out[0..b->count). */
int rl_conn_pipeline(redis_lock_client *c, rl_conn *conn, const rl_buf *b, redisReply **out);
/* For an error reply: EAUTH (NOAUTH, WRONGPASS, NOPERM) or ESERVER, with the reply's text;
 * else 0. */
int rl_reply_error(const redisReply *r, const char *what);
/* May a connection go back to the pool after a call on it returned rc? Only when the call
 * ended on a whole reply: success, or an error reply (ESERVER, EAUTH). Any other failure
 * (ECONN, ENOMEM, ...) leaves the reader or the stream in an unknown state. */
static inline bool rl_conn_reusable(int rc)
{
    return rc == 0 || rc == REDIS_LOCK_BUSY || rc == REDIS_LOCK_ESERVER || rc == REDIS_LOCK_EAUTH;
}

/* ---- client.c ---- */
struct rl_renewer;
struct redis_lock_client {
    redis_lock_client_options opts;
    rl_url url;
    pthread_mutex_t mu; /* guards pool */
    rl_conn *pool;
    unsigned long fork_gen;
    struct rl_renewer *renewer;
    struct ssl_ctx_st *tls_ctx; /* rediss://: one OpenSSL context for all connections */
    /* Sentinel (sentinel.c), guarded by mu: the master's address as last resolved, its
     * epoch (bumped whenever the resolution changes or the node is found demoted: pooled
     * connections of an older epoch are closed, never reused) and the subscribed
     * connection to one sentinel that hears +switch-master. */
    char master_host[256];
    int master_port;
    unsigned long epoch;
    bool resolved;
    rl_conn *sub;
    int64_t sub_retry_ms;
    pthread_mutex_t resolve_mu; /* one resolution at a time */
    char last_node[300]; /* guarded by mu: the node of the last connection given back */
};
/* Take a healthy connection from the pool, or open one. */
int rl_client_get(redis_lock_client *c, rl_conn **out);
/* Run one command on a pooled connection. *out is set on success; on any error it is
 * NULL (an error reply becomes ESERVER with its text). */
int rl_client_command(redis_lock_client *c, redisReply **out, int argc, const char **argv,
                      const size_t *argvlen);
/* Make sure an idle connection waits in the pool (best effort): a wait that must end
 * itself sends CLIENT UNBLOCK from it, without paying a connect at its deadline. */
void rl_client_ensure_spare(redis_lock_client *c);
/* May a connection kept outside the pool (the renewal thread's) still be used? Under
 * Sentinel: not when the master moved since it was opened. */
bool rl_client_conn_current(redis_lock_client *c, rl_conn *conn);
/* Give it back (ok) or close it (!ok: its state is unknown). */
void rl_client_put(redis_lock_client *c, rl_conn *conn, bool ok);
void rl_log(redis_lock_client *c, int level, const char *fmt, ...) RL_FORMAT(3, 4);
unsigned long rl_fork_gen(void);
/* Called at the top of every public call: after fork(), drop the parent's connections. */
void rl_client_check_fork(redis_lock_client *c);
/* The fork guard: while a library thread (the renewal thread) is in it, fork() waits, so
 * that no lock of the allocator, hiredis or OpenSSL is copied held into the child. Enter
 * and leave nest; suspend/resume let go of it for a wait (every poll in rl_wait_fd, name
 * resolution, the sentinel back-off, the application's log callback) and take it back.
 * An application thread is in it only while it starts or stops a renewal thread
 * (covering that thread's birth and end). */
void rl_fork_guard_enter(void);
void rl_fork_guard_leave(void);
unsigned rl_fork_guard_suspend(void);
void rl_fork_guard_resume(unsigned depth);

/* ---- sentinel.c ---- */
/* The master's address for a new data connection (asking the sentinels when it is not
 * known), and the epoch it belongs to. ECONN when no sentinel answers by deadline_ms. */
int rl_sentinel_master(redis_lock_client *c, int64_t deadline_ms, char *host, size_t hsize,
                       int *port, unsigned long *epoch);
/* The node of epoch `epoch` is not (or may no longer be) the master: ask the sentinels
 * again before the next connection; demoted: also close every pooled connection to it. */
void rl_sentinel_invalidate(redis_lock_client *c, unsigned long epoch, bool demoted);
/* Read what the +switch-master subscription has received, without waiting (mu held). */
void rl_sentinel_poll_locked(redis_lock_client *c);
/* No +switch-master subscription: ask a sentinel for the master and subscribe (errors are
 * logged, not returned: the pool's connections may still serve). */
void rl_sentinel_resubscribe(redis_lock_client *c);
/* Close the subscription (client close; after fork, without a word). */
void rl_sentinel_free(redis_lock_client *c);
/* Connect to host:port (TLS when the URL says so) and make a connection of it. */
int rl_conn_connect(redis_lock_client *c, const char *host, int port, int64_t deadline_ms,
                    rl_conn **out);

/* ---- tls.c ---- */
/* Build c->tls_ctx from the URL's TLS parameters and the options' tls_* fields (copied
 * into c->url). EINVAL when a file cannot be loaded. */
int rl_tls_client_init(redis_lock_client *c);
void rl_tls_client_free(redis_lock_client *c);
/* Make conn (connected, non-blocking) a TLS connection: handshake by deadline_ms. On
 * failure conn->tls may be set; rl_conn_close() frees it. */
int rl_tls_connect(redis_lock_client *c, rl_conn *conn, int64_t deadline_ms);

/* ---- scripts.c ---- */
enum {
    RL_SCRIPT_ACQUIRE,
    RL_SCRIPT_RELEASE,
    RL_SCRIPT_EXTEND,
    RL_SCRIPT_RESET,
    RL_SCRIPT_FAIR_TRY,   /* the fair lock's try (docs/design.md 7.1) */
    RL_SCRIPT_FAIR_LEAVE, /* its release, leave and give back */
    RL_SCRIPT_SHARED_TRY, /* the shared lock's (docs/design.md 7.2) */
    RL_SCRIPT_SHARED_RELEASE,
    RL_SCRIPT_SHARED_EXTEND,
    RL_SCRIPT_SEM_TRY, /* the semaphore's (docs/design.md 7.3) */
    RL_SCRIPT_SEM_RELEASE,
    RL_SCRIPT_SEM_EXTEND,
    RL_SCRIPT_COUNT
};
#define RL_SCRIPT_MAXARGS 6
/* One call of a script: its keys (with lengths) and its arguments (NUL-terminated). */
typedef struct {
    int nkeys, nargs;
    const char *keys[RL_SCRIPT_MAXARGS];
    size_t keylens[RL_SCRIPT_MAXARGS];
    const char *args[RL_SCRIPT_MAXARGS];
    char num[24], num2[24]; /* room for number arguments: args[i] may point here */
} rl_script_call;
/* Run calls[0..n) of one script, pipelined, with a reply (possibly an error reply) for each
 * in out[0..n). EVALSHA first; the calls the server refuses with NOSCRIPT (its script cache
 * is cold: a restart, SCRIPT FLUSH) are sent again at once as EVAL. This is the library's
 * one way of handling NOSCRIPT. Commands are formatted into scratch (see
 * rl_buf_borrow) when it is not NULL. Returns 0, or the connection's error (out all NULL). */
int rl_script_run(redis_lock_client *c, rl_conn *conn, int script, const rl_script_call *calls,
                  int n, redisReply **out, char *scratch, size_t scratch_cap);
/* One call; an error reply is returned as ESERVER/EAUTH (with *out NULL). */
int rl_script(redis_lock_client *c, rl_conn *conn, int script, const rl_script_call *call,
              redisReply **out, char *scratch, size_t scratch_cap);
/* The same, followed in the same pipeline by "WAIT min_replicas replica_timeout_ms" when
 * the client has min_replicas > 0 (acked: NULL never): *acked is the number of replicas
 * that acknowledged (INT_MAX when not asked; -1 when WAIT answered with an error). */
int rl_script_run_acked(redis_lock_client *c, rl_conn *conn, int script,
                        const rl_script_call *calls, int n, redisReply **out, char *scratch,
                        size_t scratch_cap, long long *acked);
int rl_script_acked(redis_lock_client *c, rl_conn *conn, int script, const rl_script_call *call,
                    redisReply **out, char *scratch, size_t scratch_cap, long long *acked);
/* WAIT alone (after a try that rode behind a BLPOP); *acked as above. */
int rl_replica_wait(redis_lock_client *c, rl_conn *conn, long long *acked);
/* EREPLICA for `what` with the counts. */
int rl_replica_error(redis_lock_client *c, long long acked, const char *what);
/* Append one EVALSHA to a pipeline (a try queued behind a wait). */
int rl_script_append(rl_buf *b, int script, const rl_script_call *call);
const char *rl_script_source(int script);
const char *rl_script_sha(int script);
bool rl_is_noscript(const redisReply *r);

/* ---- lock.c / acquire.c / renewer.c ---- */
struct redis_lock {
    redis_lock_client *client;
    char *name;
    char *key, *signal_key, *fence_key;
    size_t key_len, signal_len, fence_len;
    /* the fair lock's keys (docs/design.md 7.1); NULL unless opts.fair */
    char *queue_key, *lease_key, *wake_key, *wake_prefix;
    size_t queue_len, lease_len, wake_len;
    /* the shared lock's holders (NULL unless opts.shared) and its waiting writers (every
     * handle: a plain waiter on a shared lock counts as one) (docs/design.md 7.2) */
    char *shared_key, *writers_key;
    size_t shared_len, writers_len;
    /* a semaphore (docs/design.md 7.3): limit > 0; then key is the permits' sorted set,
     * signal_key and fence_key the semaphore's own, and limit_key holds the limit */
    int limit;
    char *limit_key;
    size_t limit_len;
    char *id;
    /* room to format this lock's commands: release, extend and reset allocate nothing,
     * so that they work even when memory has run out (no lock is left behind) */
    char *scratch;
    size_t scratch_cap;
    redis_lock_options opts;
    atomic_int cancel;
    int wake_fd; /* eventfd: redis_lock_cancel writes to it */
    unsigned long fork_gen;
    atomic_bool lost;
    int64_t token;
    int64_t acquired_at_ms;
    int64_t renewed_ms; /* when the last successful acquire/renewal was sent */
    /* renewal state, guarded by the renewer's mutex */
    bool renew_registered;
    bool renew_busy;
    bool renew_retry; /* the last renewal failed: renewed when due, never early */
    int64_t renew_due_ms;
    struct redis_lock *renew_next;
};

/* What one try of the acquire script found. */
typedef struct {
    bool acquired; /* we set the key */
    bool mine;     /* the key holds our id already */
    int64_t token;
    int64_t pttl; /* holder's remaining TTL: -1 none, -2 gone */
    int64_t next; /* fair lock: ms until the earliest queue lease lapses; -1 none */
    int64_t limit_conflict; /* semaphore: the holders' limit differs (this is it); 0 none */
} try_result;
/* Check the acquire script's reply strictly; ESERVER for any other shape. */
int rl_parse_acquire_reply(const redisReply *r, const char *id, try_result *out);

/* lock.c, for acquire.c */
int rl_lock_enter(redis_lock *l); /* every public call's preamble: clear the error, fork */
bool rl_lock_take_cancel(redis_lock *l); /* consume a pending cancel */
int rl_lock_release_now(redis_lock *l);  /* the release script; ENOTHELD if not ours */

/* The value of lock:NAME while shared holders hold it (docs/design.md 7.2). */
#define RL_SHARED_MARKER "(shared)"
/* shared.c: the shared lock's calls */
void rl_shared_try_call(const redis_lock *l, rl_script_call *k);
int rl_shared_release(redis_lock *l); /* ENOTHELD if not a holder */
void rl_shared_extend_call(const redis_lock *l, rl_script_call *k, int64_t expire_ms);
/* A plain waiter that was counted as a waiting writer leaves that set (best effort). */
void rl_writer_leave(redis_lock *l);

/* semaphore.c */
void rl_sem_try_call(const redis_lock *l, rl_script_call *k);
void rl_sem_extend_call(const redis_lock *l, rl_script_call *k, int64_t expire_ms);
int rl_sem_release(redis_lock *l); /* ENOTHELD if the permit is not held */
/* lock.c: create a handle; limit > 0 makes a semaphore */
int rl_lock_create(redis_lock **out, redis_lock_client *client, const char *name,
                   const redis_lock_options *opts, int limit);

/* fair.c: the fair lock's calls (docs/design.md 7.1) */
enum { RL_FAIR_RELEASE, RL_FAIR_LEAVE, RL_FAIR_GIVE_BACK };
int rl_fair_keys(redis_lock *l);  /* make the fair lock's key names */
void rl_fair_try_call(const redis_lock *l, rl_script_call *k, bool enqueue);
/* The fair release/leave/give-back script; release: ENOTHELD if not ours. */
int rl_fair_leave(redis_lock *l, int mode);
/* The end of a fair waiter's wait: the deadline, the holder's expiry, the earliest queue
 * lease, or a slice of its own lease (to renew it), whichever comes first. */
int64_t rl_fair_wait_until(const redis_lock *l, const try_result *res, int64_t now,
                           int64_t deadline);

int rl_renewer_add(redis_lock *lock);
void rl_renewer_remove(redis_lock *lock);
void rl_renewer_stop(redis_lock_client *c);
void rl_renewer_forget(redis_lock_client *c); /* after fork: the thread is not ours */
void rl_renewer_atfork_child(void);

#endif
