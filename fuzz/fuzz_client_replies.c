/* Fuzz target: the whole client against a server whose replies are the fuzzer's bytes.
 *
 * This is not a mock standing in for Redis in a test: it is the hostile server the
 * library must survive. A thread in this process listens on a private unix socket and
 * parses each command the library sends (with hiredis's reader); for the k-th command it
 * writes the k-th segment of the input (segments are separated by "##\n"), whatever it
 * holds: a reply, two replies, half a reply, garbage. A segment that does not end on a
 * reply boundary is followed by a close, so the client sees EOF at once instead of
 * waiting for its command timeout; when the segments run out every connection is closed.
 *
 * The library then runs one fixed sequence of public calls (open, acquire, extend,
 * queries, release, a short waiting acquire, reset, reset_all, the cache). The first
 * input byte picks options: bit 0 fencing, bit 1 a password in the URL (AUTH in the
 * handshake), bit 2 db 3 (SELECT), bit 3 expiry 0 (a lock that never expires).
 * Every call must return a known code (with a message when it fails) and must not
 * crash, leak or hit undefined behaviour. No renewal thread is used: the order of
 * commands, and so the replay of a corpus file, is deterministic.
 *
 * Recording seeds from a real server: RL_FUZZ_RECORD=/path/to/redis.sock and
 * RL_FUZZ_RECORD_OUT=FILE make the server forward every command to that Redis and write
 * the replies it got, as segments, to FILE (run the replay binary on a 1-byte input that
 * holds the option byte). */
#include "fuzz.h"
#include "internal.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define SEP "##\n"
#define SEP_LEN 3
#define MAX_SEGS 256
#define MAX_CONNS 32

static char sock_path[108];
static char sock_dir[64];
static int listen_fd = -1;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const uint8_t *segs[MAX_SEGS];
static size_t seg_len[MAX_SEGS];
static size_t nsegs, next_seg;
static unsigned generation; /* bumped per input: stale connections are dropped */

/* record mode: each client connection gets its own upstream connection */
static const char *upstream_path;
static FILE *record_out;
static int recorded;

static void resp_write(FILE *f, const redisReply *r)
{
    switch (r->type) {
    case REDIS_REPLY_STATUS: fprintf(f, "+%.*s\r\n", (int)r->len, r->str); break;
    case REDIS_REPLY_ERROR: fprintf(f, "-%.*s\r\n", (int)r->len, r->str); break;
    case REDIS_REPLY_INTEGER: fprintf(f, ":%lld\r\n", r->integer); break;
    case REDIS_REPLY_NIL: fputs("$-1\r\n", f); break;
    case REDIS_REPLY_STRING:
        fprintf(f, "$%zu\r\n", r->len);
        fwrite(r->str, 1, r->len, f);
        fputs("\r\n", f);
        break;
    case REDIS_REPLY_ARRAY:
        fprintf(f, "*%zu\r\n", r->elements);
        for (size_t i = 0; i < r->elements; i++)
            resp_write(f, r->element[i]);
        break;
    default: break;
    }
}

/* Does this segment end exactly on a reply boundary? */
static bool complete_replies(const uint8_t *p, size_t n)
{
    if (n == 0)
        return false;
    redisReader *rd = redisReaderCreate();
    if (!rd)
        return false;
    bool ok = redisReaderFeed(rd, (const char *)p, n) == REDIS_OK;
    void *reply;
    while (ok) {
        reply = NULL;
        if (redisReaderGetReply(rd, &reply) != REDIS_OK) {
            ok = false;
            break;
        }
        if (!reply)
            break;
        freeReplyObject(reply);
    }
    /* unparsed bytes stay in rd->buf from rd->pos; a reply begun but not finished shows
     * as a read task in progress (ridx >= 0) */
    if (ok && (rd->ridx >= 0 || rd->pos < sdslen(rd->buf)))
        ok = false;
    redisReaderFree(rd);
    return ok;
}

static void write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

/* Answer one parsed command; returns false when the connection must be closed. */
static bool answer(int fd, redisContext *upstream, const redisReply *cmd)
{
    if (upstream_path) {
        if (!upstream)
            return false;
        if (cmd->type != REDIS_REPLY_ARRAY || cmd->elements == 0 || cmd->elements > 64)
            return false;
        const char *argv[64];
        size_t lens[64];
        for (size_t i = 0; i < cmd->elements; i++) {
            argv[i] = cmd->element[i]->str;
            lens[i] = cmd->element[i]->len;
        }
        /* a blocking BLPOP would stall this one-thread proxy: record a quick timeout */
        if (cmd->elements == 3 && strcasecmp(argv[0], "BLPOP") == 0) {
            argv[2] = "0.01";
            lens[2] = 4;
        }
        redisReply *r = redisCommandArgv(upstream, (int)cmd->elements, argv, lens);
        if (!r)
            return false;
        char *buf = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&buf, &len);
        resp_write(m, r);
        fclose(m);
        freeReplyObject(r);
        pthread_mutex_lock(&mu);
        if (record_out) {
            if (recorded++)
                fwrite(SEP, 1, SEP_LEN, record_out);
            fwrite(buf, 1, len, record_out);
        }
        pthread_mutex_unlock(&mu);
        write_all(fd, (const uint8_t *)buf, len);
        free(buf);
        return true;
    }
    /* under the mutex: the input's bytes stay valid until the fuzzer's call returns,
     * which takes this mutex first */
    pthread_mutex_lock(&mu);
    bool keep = false;
    if (next_seg < nsegs) {
        const uint8_t *p = segs[next_seg];
        size_t n = seg_len[next_seg];
        next_seg++;
        if (n) {
            write_all(fd, p, n);
            keep = complete_replies(p, n);
        }
    }
    pthread_mutex_unlock(&mu);
    return keep;
}

typedef struct {
    int fd;
    unsigned gen;
    redisReader *req;
    redisContext *up;
} srv_conn;

static void *server_main(void *arg)
{
    (void)arg;
    srv_conn conns[MAX_CONNS];
    int nconns = 0;
    for (;;) {
        struct pollfd p[MAX_CONNS + 1];
        p[0].fd = listen_fd;
        p[0].events = POLLIN;
        for (int i = 0; i < nconns; i++) {
            p[i + 1].fd = conns[i].fd;
            p[i + 1].events = POLLIN;
        }
        if (poll(p, (nfds_t)nconns + 1, 100) < 0)
            continue;
        pthread_mutex_lock(&mu);
        unsigned gen = generation;
        pthread_mutex_unlock(&mu);
        for (int i = nconns - 1; i >= 0; i--) {
            bool drop = conns[i].gen != gen;
            if (!drop && (p[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) {
                char buf[65536];
                ssize_t n = recv(conns[i].fd, buf, sizeof buf, 0);
                if (n <= 0 || redisReaderFeed(conns[i].req, buf, (size_t)n) != REDIS_OK)
                    drop = true;
                while (!drop) {
                    void *cmd = NULL;
                    if (redisReaderGetReply(conns[i].req, &cmd) != REDIS_OK) {
                        drop = true;
                        break;
                    }
                    if (!cmd)
                        break;
                    drop = !answer(conns[i].fd, conns[i].up, cmd);
                    freeReplyObject(cmd);
                }
            }
            if (drop) {
                close(conns[i].fd);
                redisReaderFree(conns[i].req);
                if (conns[i].up)
                    redisFree(conns[i].up);
                conns[i] = conns[--nconns];
            }
        }
        if (p[0].revents & POLLIN) {
            int fd = accept(listen_fd, NULL, NULL);
            if (fd >= 0 && nconns < MAX_CONNS) {
                conns[nconns].fd = fd;
                conns[nconns].gen = gen;
                conns[nconns].req = redisReaderCreate();
                conns[nconns].up = upstream_path ? redisConnectUnix(upstream_path) : NULL;
                if (conns[nconns].req)
                    nconns++;
                else
                    close(fd);
            } else if (fd >= 0) {
                close(fd);
            }
        }
    }
    return NULL;
}

static void cleanup(void)
{
    if (sock_path[0])
        unlink(sock_path);
    if (sock_dir[0])
        rmdir(sock_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(sock_dir, sizeof sock_dir, "/tmp/rl-fuzz-XXXXXX");
    if (!mkdtemp(sock_dir)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(sock_path, sizeof sock_path, "%s/s.sock", sock_dir);
    atexit(cleanup);
    listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {0};
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, sock_path, strlen(sock_path) + 1);
    if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        listen(listen_fd, 64) < 0) {
        perror("fake server socket");
        abort();
    }
    const char *rec = getenv("RL_FUZZ_RECORD");
    if (rec && *rec) {
        upstream_path = rec;
        const char *out = getenv("RL_FUZZ_RECORD_OUT");
        record_out = fopen(out && *out ? out : "recorded.seed", "wb");
        if (!record_out)
            abort();
    }
    pthread_t t;
    if (pthread_create(&t, NULL, server_main, NULL) != 0)
        abort();
    pthread_detach(t);
    return 0;
}

static int make_value(void *payload, char **value, size_t *len)
{
    (void)payload;
    *value = malloc(5);
    if (!*value)
        return 1;
    memcpy(*value, "hello", 5);
    *len = 5;
    return 0;
}

static void check_rc(const char *what, int rc)
{
    FUZZ_CHECK(rc <= 1 && rc >= REDIS_LOCK_EAUTH, "%s returned unknown code %d", what, rc);
    FUZZ_CHECK(strcmp(redis_lock_code_name(rc), "REDIS_LOCK_UNKNOWN") != 0, "%s: code %d", what,
               rc);
    /* RL_FUZZ_SKIP_EMPTY_MESSAGE=1 lets a fuzzing session look past a known report of an
     * empty message (see docs/reliability.md, "Findings") */
    if (rc < 0 && !getenv("RL_FUZZ_SKIP_EMPTY_MESSAGE"))
        FUZZ_CHECK(redis_lock_last_error()[0] != '\0', "%s failed (%s) without a message", what,
                   redis_lock_code_name(rc));
    if (getenv("RL_FUZZ_VERBOSE")) {
        static int64_t last;
        int64_t now = rl_now_ms();
        fprintf(stderr, "  %4lld ms  %s: %s: %s\n", last ? (long long)(now - last) : 0LL, what,
                redis_lock_code_name(rc), rc < 0 ? redis_lock_last_error() : "");
        last = now;
    }
}

static void run_calls(unsigned flags)
{
    char url[256];
    snprintf(url, sizeof url, "unix://%s%s%s", flags & 2 ? ":pw@" : "", sock_path,
             flags & 4 ? "?db=3" : "");
    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    co.url = url;
    co.connect_timeout_ms = 500;
    co.command_timeout_ms = 500;
    redis_lock_client *c = NULL;
    int rc = redis_lock_client_open(&c, &co);
    check_rc("client_open", rc);
    if (rc)
        return;

    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.expire_ms = flags & 8 ? 0 : 1000;
    lo.fencing = flags & 1;
    redis_lock *l = NULL;
    rc = redis_lock_new(&l, c, "fz", &lo);
    FUZZ_CHECK(rc == 0, "lock_new failed: %s", redis_lock_last_error());
    check_rc("acquire(0)", redis_lock_acquire(l, 0));
    check_rc("extend", redis_lock_extend(l, 0));
    bool locked = false;
    check_rc("locked", redis_lock_locked(l, &locked));
    char *owner = (char *)"unset";
    rc = redis_lock_get_owner_id(l, &owner);
    check_rc("get_owner_id", rc);
    FUZZ_CHECK(rc == 0 || owner == NULL, "owner set on failure");
    free(owner);
    int64_t ttl = 0;
    check_rc("ttl", redis_lock_ttl(l, &ttl));
    check_rc("release", redis_lock_release(l));
    check_rc("acquire(5)", redis_lock_acquire(l, 5));
    check_rc("release", redis_lock_release(l));
    check_rc("reset", redis_lock_reset(l));
    size_t count = 0;
    check_rc("reset_all", redis_lock_reset_all(c, &count));
    redis_lock_free(l);

    redis_lock_cache_options cache;
    redis_lock_cache_options_init(&cache);
    cache.ttl_ms = 1000;
    cache.timeout_ms = 5;
    cache.lock.auto_renewal = false; /* no renewal thread: deterministic order */
    cache.lock.expire_ms = 1000;
    char *value = NULL;
    size_t vlen = 0;
    rc = redis_lock_cache_get_or_set(c, "ck", &cache, make_value, NULL, &value, &vlen);
    check_rc("cache_get_or_set", rc);
    FUZZ_CHECK(rc == 0 ? value != NULL && value[vlen] == '\0' : value == NULL,
               "cache value %p with rc %d", (void *)value, rc);
    free(value);
    check_rc("cache_delete", redis_lock_cache_delete(c, "ck"));
    redis_lock_client_close(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 1 << 16 || fuzz_has_huge_array(data, size))
        return 0;
    unsigned flags = data[0];
    const uint8_t *p = data + 1, *end = data + size;
    pthread_mutex_lock(&mu);
    generation++;
    nsegs = next_seg = 0;
    while (p <= end && nsegs < MAX_SEGS) {
        const uint8_t *s = p;
        const uint8_t *hit = NULL;
        for (const uint8_t *q = p; q + SEP_LEN <= end; q++)
            if (memcmp(q, SEP, SEP_LEN) == 0) {
                hit = q;
                break;
            }
        segs[nsegs] = s;
        seg_len[nsegs] = (size_t)((hit ? hit : end) - s);
        nsegs++;
        if (!hit)
            break;
        p = hit + SEP_LEN;
    }
    pthread_mutex_unlock(&mu);

    run_calls(flags);

    pthread_mutex_lock(&mu);
    nsegs = next_seg = 0; /* the input's memory is not ours after we return */
    generation++;
    pthread_mutex_unlock(&mu);
    return 0;
}
