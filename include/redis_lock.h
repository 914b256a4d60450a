/* redis_lock.h - distributed locks over Redis, wire-compatible with python-redis-lock 4.x.
 *
 * Threading: a redis_lock_client may be shared by all threads of a process; a redis_lock
 * handle is used by one thread at a time (the library's own renewal thread aside).
 * redis_lock_cancel() and redis_lock_cancel_token_cancel() may be called from any thread or
 * from a signal handler.
 *
 * Errors: every function that can fail returns int: REDIS_LOCK_OK (0) on success,
 * REDIS_LOCK_BUSY (1) where a lock was not acquired, or a negative REDIS_LOCK_E* code.
 * redis_lock_strerror() names a code; redis_lock_last_error() gives this thread's detail.
 * Times are milliseconds on the monotonic clock.
 *
 * Options structs begin with `unsigned version`; fill one with its _init macro, then set
 * fields. A struct gains fields only at its end, under a new version. The _init macro
 * passes the header's version, and the library writes and reads only the fields of the
 * version a caller's struct carries (newer fields keep their defaults), so a program built
 * against an older header keeps working with a newer library. A version newer than the
 * library's is REDIS_LOCK_EINVAL. */
#ifndef REDIS_LOCK_H
#define REDIS_LOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REDIS_LOCK_VERSION_MAJOR 1
#define REDIS_LOCK_VERSION_MINOR 1
#define REDIS_LOCK_VERSION_PATCH 0

#if defined(REDIS_LOCK_BUILDING) && defined(__GNUC__)
#define REDIS_LOCK_EXTERN __attribute__((visibility("default")))
#else
#define REDIS_LOCK_EXTERN
#endif

/* The error table: name, value, message. Numeric values are the implementation's;
 * the names are the contract. */
#define REDIS_LOCK_ERRNO_MAP(X)                                                       \
    X(OK, 0, "success")                                                               \
    X(BUSY, 1, "lock is held by another owner")                                       \
    X(EINVAL, -1, "invalid argument")                                                 \
    X(ETOOLONG, -2, "timeout is longer than the lock's expiry")                       \
    X(ENOEXPIRE, -3, "lock has no expiry to extend")                                  \
    X(ENOTHELD, -4, "lock is not held by this owner")                                 \
    X(EALREADY, -5, "lock is already held by this owner")                             \
    X(ECONN, -6, "connection to Redis failed")                                        \
    X(ESERVER, -7, "Redis replied with an error")                                     \
    X(ENOMEM, -8, "out of memory")                                                    \
    X(EUSER, -9, "a callback reported failure")                                       \
    X(ECANCELED, -10, "wait canceled")                                                \
    X(EAUTH, -11, "authentication or permission refused")                             \
    X(EREPLICA, -12, "too few replicas acknowledged")

typedef enum {
#define REDIS_LOCK_ENUM_(name, value, msg) REDIS_LOCK_##name = (value),
    REDIS_LOCK_ERRNO_MAP(REDIS_LOCK_ENUM_)
#undef REDIS_LOCK_ENUM_
} redis_lock_code;

/* ---- client: a thread-safe connection pool to one Redis ---- */

typedef struct redis_lock_client redis_lock_client;

#define REDIS_LOCK_CLIENT_OPTIONS_VERSION 3
typedef struct {
    unsigned version;       /* REDIS_LOCK_CLIENT_OPTIONS_VERSION */
    const char *url;        /* redis://[[user]:pass@]host[:port][/db],
                               redis+sentinel://[[user]:pass@]host[:port][,host[:port]...]
                               /MASTER[/db] (the sentinels to ask for MASTER, default port
                               26379; rediss+sentinel:// over TLS; parameters
                               sentinel_user, sentinel_password, min_replicas,
                               replica_timeout_ms, on any scheme but the first two),
                               rediss://... (the same over TLS; query parameters cacert,
                               cacertdir, cert, key, sni, insecure as below) or
                               unix://[[user]:pass@]/path[?db=N];
                               NULL: $REDIS_URL, else redis://127.0.0.1:6379/0 */
    int connect_timeout_ms; /* default 2000 */
    int command_timeout_ms; /* default 2000: how long Redis may stay silent on a command
                               (a large reply may take longer in all); never cuts a lock
                               wait short */
    /* NULL: silent. Gets syslog priorities (LOG_ERR ... LOG_DEBUG); may run on the
     * renewal thread; must not call back into the library. */
    void (*log)(int level, const char *message, void *payload);
    void *log_payload;
    /* Version 2: TLS, used only when the URL is rediss:// (so that a program may set them
     * and leave the choice to $REDIS_URL). A query parameter of the URL with the same name
     * (without "tls_") overrides the field. The paths are read when the client opens. */
    const char *tls_cacert;    /* PEM file of trusted CAs; NULL (and no tls_cacertdir):
                                  the system trust store */
    const char *tls_cacertdir; /* directory of trusted CAs (c_rehash layout) */
    const char *tls_cert;      /* client certificate (PEM chain), with tls_key */
    const char *tls_key;       /* its private key (PEM) */
    const char *tls_sni;       /* server name sent and verified; NULL: the URL's host */
    int tls_insecure;          /* nonzero: no verification at all (logged as a warning) */
    /* Version 3: Sentinel and replica acknowledgement (URL parameters of the same names
     * override them). */
    const char *sentinel_user;     /* the sentinels' own credentials (redis+sentinel://
                                      URLs only; the URL's user:pass are the data nodes') */
    const char *sentinel_password;
    int min_replicas;       /* > 0: every acquire, extend and renewal is followed by
                               WAIT min_replicas replica_timeout_ms on its connection;
                               fewer acknowledgements: REDIS_LOCK_EREPLICA (default 0) */
    int replica_timeout_ms; /* 0: the default, 1000 */
} redis_lock_client_options;

/* Fill opts with the defaults: the fields of `version` (the macro passes the header's). */
REDIS_LOCK_EXTERN void redis_lock_client_options_init_version(redis_lock_client_options *opts,
                                                              unsigned version);
#define redis_lock_client_options_init(opts) \
    redis_lock_client_options_init_version((opts), REDIS_LOCK_CLIENT_OPTIONS_VERSION)

/* Create a client; opts NULL: defaults. The first connection is made here, so a bad
 * address or password is reported now (REDIS_LOCK_ECONN, REDIS_LOCK_ESERVER,
 * REDIS_LOCK_EAUTH for a refused password or certificate, REDIS_LOCK_EINVAL for a bad URL
 * or a TLS file that cannot be loaded). A caller built against an older options version
 * keeps working: only the fields of opts->version are read. *out is owned by the caller: redis_lock_client_close(). */
REDIS_LOCK_EXTERN int redis_lock_client_open(redis_lock_client **out,
                                             const redis_lock_client_options *opts);

/* Close every connection and stop the renewal thread. All lock handles of the client
 * must have been freed first. NULL is a no-op. */
REDIS_LOCK_EXTERN void redis_lock_client_close(redis_lock_client *client);

/* The data node that answered the client's last command, as "host:port" (or the unix
 * socket's path), into buf (NUL-terminated). Under Sentinel it names the master that was
 * used. REDIS_LOCK_EINVAL when buf is NULL or too small. */
REDIS_LOCK_EXTERN int redis_lock_client_node(redis_lock_client *client, char *buf, size_t size);

/* ---- lock ---- */

typedef struct redis_lock redis_lock;
typedef void (*redis_lock_lost_fn)(redis_lock *lock, void *payload);

/* Version 2 added fair and queue_lease_ms; a caller built against version 1 keeps working
 * (the library reads only the fields of the caller's version). */
#define REDIS_LOCK_OPTIONS_VERSION 2
typedef struct {
    unsigned version;            /* REDIS_LOCK_OPTIONS_VERSION */
    int64_t expire_ms;           /* 0: never expires (default) */
    const char *id; /* NULL: 18 random bytes, base64 (24 chars); copied; not "(shared)" */
    bool auto_renewal;           /* needs expire_ms > 0 */
    int64_t renewal_interval_ms; /* 0: expire_ms * 2 / 3 */
    int64_t signal_expire_ms;    /* default 1000 */
    int64_t max_hold_ms;         /* auto_renewal stops after the lock was held this long; 0: no cap */
    bool fencing;                /* hand out a fencing token on each acquire */
    redis_lock_lost_fn on_lost;  /* called once, from the renewal thread, when renewal
                                    finds the lock gone; must not free the handle */
    void *on_lost_payload;
    /* version 2 */
    bool fair;              /* waiters queue in arrival order; a release hands the lock
                               to the first live waiter (docs/design.md, fair lock) */
    int64_t queue_lease_ms; /* fair: a waiter that stops renewing its place (it died) is
                               dropped from the queue this long after; default 2000,
                               >= 30; also how long a plain waiter on a shared lock
                               stays counted as a waiting writer without renewing */
    bool shared;            /* a shared hold: many shared holders at once, or one exclusive
                               holder (a plain handle of the same name, or
                               python-redis-lock); a waiting exclusive holder stops new
                               shared holders (docs/design.md, shared lock) */
} redis_lock_options;

/* Fill opts with the defaults: the fields of `version` (the macro passes the header's). */
REDIS_LOCK_EXTERN void redis_lock_options_init_version(redis_lock_options *opts, unsigned version);
#define redis_lock_options_init(opts) \
    redis_lock_options_init_version((opts), REDIS_LOCK_OPTIONS_VERSION)

/* Create a handle for the lock NAME (any bytes but NUL, not empty); opts NULL: defaults.
 * Nothing is sent to Redis. *out is owned by the caller: redis_lock_free(). */
REDIS_LOCK_EXTERN int redis_lock_new(redis_lock **out, redis_lock_client *client,
                                     const char *name, const redis_lock_options *opts);

/* Stop renewing and free the handle; does not release the lock. NULL is a no-op. */
REDIS_LOCK_EXTERN void redis_lock_free(redis_lock *lock);

/* Acquire the lock, waiting at most timeout_ms (-1: forever, 0: try once).
 * Returns REDIS_LOCK_OK, REDIS_LOCK_BUSY when not acquired in time, REDIS_LOCK_EALREADY
 * when this id owns it already, REDIS_LOCK_ETOOLONG (timeout > expire without renewal),
 * REDIS_LOCK_ECANCELED (redis_lock_cancel), or another negative code. A waiting acquire
 * survives dropped connections until its deadline (reconnecting after a back-off of at
 * least 100 ms). On failure nothing is left held by this id: a try whose answer was lost
 * is released (if the server cannot be reached for that either, the key expires). */
REDIS_LOCK_EXTERN int redis_lock_acquire(redis_lock *lock, int64_t timeout_ms);

/* Release a lock this handle owns and wake one waiter. REDIS_LOCK_ENOTHELD when it is
 * not owned by this id (expired, reset, or lost). */
REDIS_LOCK_EXTERN int redis_lock_release(redis_lock *lock);

/* Set the owned lock's expiry to expire_ms (0: the handle's own expire_ms, EINVAL when it
 * has none). REDIS_LOCK_ENOTHELD when not owned, REDIS_LOCK_ENOEXPIRE when the key has
 * no expiry. */
REDIS_LOCK_EXTERN int redis_lock_extend(redis_lock *lock, int64_t expire_ms);

/* *out = whether anyone holds the lock. */
REDIS_LOCK_EXTERN int redis_lock_locked(redis_lock *lock, bool *out);

/* *out = the owner id, malloc'd (free() it), or NULL when the lock is free. */
REDIS_LOCK_EXTERN int redis_lock_get_owner_id(redis_lock *lock, char **out);

/* *out_ms = remaining time to live; -1: held with no expiry; -2: free. */
REDIS_LOCK_EXTERN int redis_lock_ttl(redis_lock *lock, int64_t *out_ms);

/* Async-signal-safe. A waiting acquire (now or the next one on this handle) returns
 * REDIS_LOCK_ECANCELED holding nothing. */
REDIS_LOCK_EXTERN int redis_lock_cancel(redis_lock *lock);

/* Delete the lock whoever owns it, and wake a waiter. */
REDIS_LOCK_EXTERN int redis_lock_reset(redis_lock *lock);

/* Reset every lock:* key (SCAN, not KEYS). out_count may be NULL. */
REDIS_LOCK_EXTERN int redis_lock_reset_all(redis_lock_client *client, size_t *out_count);

/* The handle's id and name; owned by the handle. */
REDIS_LOCK_EXTERN const char *redis_lock_id(const redis_lock *lock);
REDIS_LOCK_EXTERN const char *redis_lock_name(const redis_lock *lock);

/* The fencing token of the last successful acquire (with fencing on); 0 otherwise. */
REDIS_LOCK_EXTERN int64_t redis_lock_fencing_token(const redis_lock *lock);

/* Acquire, run fn, release. Acquire's BUSY or error comes back without calling fn;
 * otherwise the lock is released whatever fn returned, and the result is
 * REDIS_LOCK_EUSER if fn returned non-zero, else the release's result. */
REDIS_LOCK_EXTERN int redis_lock_with(redis_lock *lock, int64_t timeout_ms,
                                      int (*fn)(void *payload), void *payload);

/* ---- semaphore: at most `limit` holders of NAME at once ---- */

/* Create a handle for one permit of the semaphore NAME (at most limit holders at once;
 * 1 <= limit <= 1000000). It is a redis_lock handle: redis_lock_acquire takes a permit
 * (waiting for a release, or for the earliest permit's expiry, without polling),
 * redis_lock_release gives it back, and extend, auto_renewal, on_lost, fencing (a token per
 * permit), cancel, redis_lock_with and redis_lock_free work as for a lock; its id is the
 * permit's id. An acquire while holders with another limit hold permits is
 * REDIS_LOCK_EINVAL naming both limits. redis_lock_get_owner_id is EINVAL on it (a
 * semaphore has many holders); redis_lock_locked says whether any permit is held,
 * redis_lock_ttl gives the latest permit's remaining time. opts must not be fair or shared.
 * Its keys are semaphore:NAME and semaphore-*:NAME, apart from the lock NAME's. */
REDIS_LOCK_EXTERN int redis_lock_semaphore_new(redis_lock **out, redis_lock_client *client,
                                               const char *name, int limit,
                                               const redis_lock_options *opts);
/* The handle's limit; 0 for a lock. */
REDIS_LOCK_EXTERN int redis_lock_semaphore_limit(const redis_lock *lock);

/* Who holds it now: *out is a malloc'd array of *n holders (free it with
 * redis_lock_holders_free): the owner of a lock (0 or 1), the shared holders of a lock held
 * shared (or its exclusive owner), the permits of a semaphore. ttl_ms -1: no expiry.
 * A snapshot, read with plain commands. */
typedef struct {
    char *id;
    int64_t ttl_ms;
} redis_lock_holder;
REDIS_LOCK_EXTERN int redis_lock_holders(redis_lock *lock, redis_lock_holder **out, size_t *n);
REDIS_LOCK_EXTERN void redis_lock_holders_free(redis_lock_holder *holders, size_t n);

/* ---- dogpile-safe cache ---- */

/* Return 0 with *value malloc'd (ownership passes to the library) and *len set, or
 * non-zero to fail (nothing is stored; the caller gets REDIS_LOCK_EUSER). */
typedef int (*redis_lock_value_fn)(void *payload, char **value, size_t *len);

/* It embeds redis_lock_options: when that struct gains a version, this one does too
 * (version 2 embeds lock options version 2). */
#define REDIS_LOCK_CACHE_OPTIONS_VERSION 2
typedef struct {
    unsigned version;        /* REDIS_LOCK_CACHE_OPTIONS_VERSION */
    int64_t ttl_ms;          /* > 0: how long the value lives; no default */
    int64_t timeout_ms;      /* wait for another client's computation; -1 forever (default) */
    bool refresh;            /* compute now (under the lock) even if a value is cached */
    redis_lock_options lock; /* for the lock "get_or_set:KEY"; default: 30 s expiry with
                                auto-renewal, so a crashed computer frees it */
} redis_lock_cache_options;

/* Fill opts with the defaults: the fields of `version` (the macro passes the header's). */
REDIS_LOCK_EXTERN void redis_lock_cache_options_init_version(redis_lock_cache_options *opts,
                                                             unsigned version);
#define redis_lock_cache_options_init(opts) \
    redis_lock_cache_options_init_version((opts), REDIS_LOCK_CACHE_OPTIONS_VERSION)

/* Get KEY, or compute it once under the lock "get_or_set:KEY" and store it for ttl_ms.
 * *out_value is malloc'd, NUL-terminated one byte past *out_len; free() it.
 * REDIS_LOCK_BUSY when timeout_ms passed while another client computed;
 * REDIS_LOCK_EUSER when make failed. To be able to stop it from a signal handler, see
 * redis_lock_cache_get_or_set_cancelable below. */
REDIS_LOCK_EXTERN int redis_lock_cache_get_or_set(redis_lock_client *client, const char *key,
                                                  const redis_lock_cache_options *opts,
                                                  redis_lock_value_fn make, void *payload,
                                                  char **out_value, size_t *out_len);

/* Cancel tokens: how a signal handler (or another thread) stops a cache call that is
 * running, the way redis_lock_cancel() stops a lock's acquire. A token is created once,
 * handed to redis_lock_cache_get_or_set_cancelable(), and canceled with
 * redis_lock_cancel_token_cancel(); it stays canceled (a call made with a canceled token
 * returns REDIS_LOCK_ECANCELED at once), so use a new token to start over. One call at a
 * time may use a token. (A separate object, not a field of redis_lock_cache_options, so
 * that programs built against 1.0 and their structs keep working unchanged.) */
typedef struct redis_lock_cancel_token redis_lock_cancel_token;

/* *out is owned by the caller: redis_lock_cancel_token_free(). */
REDIS_LOCK_EXTERN int redis_lock_cancel_token_new(redis_lock_cancel_token **out);

/* Async-signal-safe; any thread. Cancels the call using the token now, if any, and every
 * later one. REDIS_LOCK_EINVAL for NULL. */
REDIS_LOCK_EXTERN int redis_lock_cancel_token_cancel(redis_lock_cancel_token *token);

/* Whether the token was canceled (async-signal-safe): a make callback that runs long may
 * look, and stop early. */
REDIS_LOCK_EXTERN bool redis_lock_cancel_token_canceled(const redis_lock_cancel_token *token);

/* No call may be using it, nor a cancel be running on it. NULL is a no-op. */
REDIS_LOCK_EXTERN void redis_lock_cancel_token_free(redis_lock_cancel_token *token);

/* redis_lock_cache_get_or_set, cancelable (cancel NULL: it is the same call). A cancel
 * makes it return REDIS_LOCK_ECANCELED holding nothing and storing nothing:
 *  - waiting for another client's computation: the wait ends at once;
 *  - just after the lock "get_or_set:KEY" was taken: it is released;
 *  - while make runs: make is not interrupted (a long one may poll
 *    redis_lock_cancel_token_canceled); what it returns is discarded, not stored, and
 *    the lock is released.
 * A command already sent to Redis (GET, SET, the release) is answered first, within the
 * client's command timeout; a value a GET brought back then is not returned. A cancel that
 * comes after the SET was sent changes nothing: the call returns the value. */
REDIS_LOCK_EXTERN int redis_lock_cache_get_or_set_cancelable(
    redis_lock_client *client, const char *key, const redis_lock_cache_options *opts,
    redis_lock_value_fn make, void *payload, redis_lock_cancel_token *cancel, char **out_value,
    size_t *out_len);

/* Delete the cached KEY; an absent key is success. */
REDIS_LOCK_EXTERN int redis_lock_cache_delete(redis_lock_client *client, const char *key);

/* ---- errors, version ---- */

/* A static string naming code ("lock is held by another owner", ...). */
REDIS_LOCK_EXTERN const char *redis_lock_strerror(int code);
/* The symbolic name of code ("REDIS_LOCK_BUSY"), static. */
REDIS_LOCK_EXTERN const char *redis_lock_code_name(int code);
/* This thread's last failure, in detail; valid until this thread's next library call. */
REDIS_LOCK_EXTERN const char *redis_lock_last_error(void);
/* "MAJOR.MINOR.PATCH" */
REDIS_LOCK_EXTERN const char *redis_lock_version(void);

#ifdef __cplusplus
}
#endif
#endif /* REDIS_LOCK_H */
