/* redis-lock: the command-line tool, a thin user of the public API (<redis_lock.h>).
 *
 *   run                        hold a lock while a command runs (flock(1) across machines)
 *   acquire, release, extend   a lock that spans several steps of a shell script
 *   status, reset, reset-all   look at and clear locks
 *   cache                      print a command's cached stdout, or compute it once
 *
 * Signals, the command's exit and the library's on_lost callback (renewal thread) all
 * end up as a byte in one self-pipe, so the parent's loop is a poll() on that pipe and
 * none of them can slip between a check and a wait. The manual is docs/redis-lock.1. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <redis_lock.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define DEFAULT_URL "redis://127.0.0.1:6379/0"
#define PRINTF(a, b) __attribute__((format(printf, a, b)))
#define MAX_SECONDS 1000000000LL /* ~31 years: keeps every ms value far from overflow */

/* ---- state shared with signal handlers and the library's renewal thread ---- */

enum {
    PHASE_IDLE,       /* record signals; the code checks g_signal at the next step */
    PHASE_WAIT,       /* waiting for a lock: a signal cancels the wait */
    PHASE_CHILD,      /* the command runs: signals are passed on to it */
    PHASE_CACHE_WAIT, /* inside the cache call, before the command: nothing of ours to undo */
};
static atomic_int g_phase;
static _Atomic(redis_lock *) g_lock;  /* what a signal cancels in PHASE_WAIT */
static atomic_int g_signal;           /* the last SIGINT/SIGTERM/SIGHUP received */
static atomic_int g_pending[NSIG];    /* 1: pass on to the command; 2: it got it already */
static atomic_int g_lost;             /* on_lost was called */
static int g_pipe[2] = {-1, -1};      /* the self-pipe */

static const int FORWARDED[] = {SIGINT, SIGTERM, SIGHUP};
static const int SAVED[] = {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE};
static struct sigaction g_orig_act[NSIG]; /* as we found them: the command gets these back */
static sigset_t g_orig_mask;

static bool g_verbose;
static const char *g_sub = ""; /* the subcommand, for messages */

/* ---- messages: every one a single line on stderr, written with one write() ---- */

static void emit_line(const char *prefix, const char *fmt, va_list ap) PRINTF(2, 0);
static void emit_line(const char *prefix, const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "redis-lock: %s", prefix);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    for (size_t i = 0; i < len; i++) /* names and server texts must not break the line */
        if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

static void err(const char *fmt, ...) PRINTF(1, 2);
static void err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit_line("", fmt, ap);
    va_end(ap);
}

static int usage_error(const char *fmt, ...) PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (*g_sub)
        err("%s: %s (try 'redis-lock %s --help')", g_sub, what, g_sub);
    else
        err("%s (try 'redis-lock --help')", what);
    return EX_USAGE;
}

static const char *level_name(int level)
{
    static const char *const names[] = {"emerg", "alert", "crit",  "error",
                                        "warning", "notice", "info", "debug"};
    return names[level & 7];
}

/* The library's log callback (also used for our own steps): timestamped, one line. */
static void log_line(int level, const char *message, void *payload)
{
    (void)payload;
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.%03ld [%d] ", stamp, ts.tv_nsec / 1000000L,
             (int)getpid());
    char line[900];
    snprintf(line, sizeof line, "%s: %s", level_name(level), message);
    err("%s%s", prefix, line);
}

static void vlog(const char *fmt, ...) PRINTF(1, 2);
static void vlog(const char *fmt, ...)
{
    if (!g_verbose)
        return;
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    log_line(6 /* LOG_INFO */, msg, NULL);
}

/* The exit status for a library failure (DESIGN section 4). */
static int exit_status_for(int rc)
{
    switch (rc) {
    case REDIS_LOCK_ECONN:
        return EX_UNAVAILABLE;
    case REDIS_LOCK_EAUTH:
        return EX_NOPERM;
    case REDIS_LOCK_ESERVER:
        return EX_UNAVAILABLE; /* Redis refused the service: READONLY, OOM, LOADING, ... */
    default:
        return EX_SOFTWARE;
    }
}

/* Report a library failure as one line; returns its exit status. */
static int report(int rc, const char *fmt, ...) PRINTF(2, 3);
static int report(int rc, const char *fmt, ...)
{
    char ctx[512];
    const char *detail = redis_lock_last_error();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    err("%s: %s", ctx, detail && *detail ? detail : redis_lock_strerror(rc));
    return exit_status_for(rc);
}

/* ---- small helpers ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Write everything to fd; false (errno set) on failure. */
static bool write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static int write_stdout(const char *p, size_t n)
{
    if (write_all(STDOUT_FILENO, p, n))
        return 0;
    err("writing to standard output: %s", strerror(errno));
    return EX_IOERR;
}

/* A growable byte string. */
typedef struct {
    char *data;
    size_t len, cap;
    bool oom;
} strbuf;

static bool sb_reserve(strbuf *b, size_t more)
{
    if (b->oom)
        return false;
    if (b->cap - b->len >= more)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2) {
            b->oom = true;
            return false;
        }
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d) {
        b->oom = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

static void sb_add(strbuf *b, const char *p, size_t n)
{
    if (sb_reserve(b, n + 1)) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
    }
}

static void sb_addf(strbuf *b, const char *fmt, ...) PRINTF(2, 3);
static void sb_addf(strbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n > 0)
        sb_add(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    unsigned min, cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0)
        len = 2, min = 0x80, cp = p[0] & 0x1fu;
    else if ((p[0] & 0xf0) == 0xe0)
        len = 3, min = 0x800, cp = p[0] & 0x0fu;
    else if ((p[0] & 0xf8) == 0xf0)
        len = 4, min = 0x10000, cp = p[0] & 0x07u;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string: quotes, escapes; bytes that are not UTF-8 become U+FFFD. */
static void sb_json_string(strbuf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    sb_add(b, "\"", 1);
    for (size_t i = 0; i < n;) {
        unsigned char ch = p[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            sb_add(b, e, 2);
            i++;
        } else if (ch < 0x20 || ch == 0x7f) {
            const char *e = ch == '\n' ? "\\n" : ch == '\t' ? "\\t" : ch == '\r' ? "\\r" : NULL;
            if (e)
                sb_add(b, e, 2);
            else
                sb_addf(b, "\\u%04x", ch);
            i++;
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                sb_add(b, "\\ufffd", 6);
                i++;
            } else {
                sb_add(b, s + i, l);
                i += l;
            }
        }
    }
    sb_add(b, "\"", 1);
}

/* Text for a terminal: control bytes shown as \xNN so the output stays one line. */
static void sb_text(strbuf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            sb_addf(b, "\\x%02x", *p);
        else
            sb_add(b, (const char *)p, 1);
    }
}

/* "0.3", "5", "0.25": milliseconds as seconds, for messages. */
static const char *fmt_secs(char *buf, size_t n, int64_t ms)
{
    if (ms % 1000 == 0)
        snprintf(buf, n, "%lld", (long long)(ms / 1000));
    else {
        snprintf(buf, n, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
        for (size_t l = strlen(buf); buf[l - 1] == '0'; l--)
            buf[l - 1] = '\0';
    }
    return buf;
}

/* ---- signals ---- */

static void wake(void)
{
    char c = 0;
    ssize_t n = write(g_pipe[1], &c, 1); /* full pipe: it is readable anyway */
    (void)n;
}

static void drain(void)
{
    char buf[256];
    while (read(g_pipe[0], buf, sizeof buf) > 0)
        ;
}

static void on_signal(int sig, siginfo_t *si, void *ctx)
{
    (void)ctx;
    int saved = errno;
    /* A SIGINT typed at the terminal (SI_KERNEL) went to the whole foreground process
     * group, the command included: passing it on would deliver it twice. */
    atomic_store(&g_pending[sig], sig == SIGINT && si && si->si_code == SI_KERNEL ? 2 : 1);
    atomic_store(&g_signal, sig);
    int phase = atomic_load(&g_phase);
    if (phase == PHASE_WAIT) {
        redis_lock *l = atomic_load(&g_lock);
        if (l)
            redis_lock_cancel(l); /* async-signal-safe */
    } else if (phase == PHASE_CACHE_WAIT) {
        _exit(128 + sig); /* waiting inside the cache call: we hold nothing */
    }
    wake();
    errno = saved;
}

static void on_sigchld(int sig)
{
    (void)sig;
    int saved = errno;
    wake();
    errno = saved;
}

/* on_lost: runs on the library's renewal thread; must not call the library. */
static void on_lost(redis_lock *lock, void *payload)
{
    (void)lock;
    (void)payload;
    atomic_store(&g_lost, 1);
    wake();
}

static int setup_signals(void)
{
    if (pipe2(g_pipe, O_CLOEXEC | O_NONBLOCK)) {
        err("cannot create a pipe: %s", strerror(errno));
        return EX_SOFTWARE;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof FORWARDED / sizeof *FORWARDED; i++)
        sigaddset(&sa.sa_mask, FORWARDED[i]);
    for (size_t i = 0; i < sizeof FORWARDED / sizeof *FORWARDED; i++) {
        int sig = FORWARDED[i];
        /* ignored when we started (nohup, a background job): leave it so, as shells do */
        if (g_orig_act[sig].sa_handler != SIG_IGN)
            sigaction(sig, &sa, NULL);
    }
    struct sigaction sc;
    memset(&sc, 0, sizeof sc);
    sc.sa_handler = on_sigchld;
    sc.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sc.sa_mask);
    sigaction(SIGCHLD, &sc, NULL);
    return 0;
}

/* ---- command line ---- */

enum {
    O_WAIT = 1,
    O_NOWAIT,
    O_EXPIRE,
    O_NORENEW,
    O_GRACE,
    O_FENCING,
    O_ID,
    O_EXITCODE,
    O_VERBOSE,
    O_HELP,
    O_URL,
    O_JSON,
    O_YES,
    O_TTL,
    O_REFRESH,
    O_QUIET,
};
#define BIT(o) (1u << (o))

typedef struct {
    char sname;
    const char *lname;
    bool has_arg;
    int id;
} optdef;

static const optdef OPTS[] = {
    {'w', "wait", true, O_WAIT},
    {'n', "no-wait", false, O_NOWAIT},
    {'x', "expire", true, O_EXPIRE},
    {0, "no-renew", false, O_NORENEW},
    {0, "grace", true, O_GRACE},
    {0, "fencing", false, O_FENCING},
    {'i', "id", true, O_ID},
    {'E', "conflict-exit-code", true, O_EXITCODE},
    {'v', "verbose", false, O_VERBOSE},
    {'h', "help", false, O_HELP},
    {'u', "url", true, O_URL},
    {0, "json", false, O_JSON},
    {0, "yes", false, O_YES},
    {'t', "ttl", true, O_TTL},
    {0, "refresh", false, O_REFRESH},
    {'q', "quiet", false, O_QUIET},
};

typedef struct {
    const char *url;
    const char *name;
    char **cmd; /* after "--" */
    int ncmd;
    bool dashdash;
    int64_t wait_ms; /* -1: forever */
    bool wait_set, nowait;
    int64_t expire_ms;
    bool expire_set;
    int64_t grace_ms;
    int64_t ttl_ms;
    bool ttl_set;
    const char *id;
    int conflict;
    bool no_renew, fencing, json, yes, refresh, quiet;
} cli_args;

typedef struct subcommand {
    const char *name;
    unsigned opts;  /* BIT(O_...) allowed */
    bool takes_name; /* NAME (or KEY) */
    bool wants_cmd;  /* NAME -- CMD [ARG...] */
    int (*fn)(cli_args *a);
    const char *help;
} subcommand;

/* Seconds as a decimal ("5", "0.25", ".5") into ms, rounded up. No sign, no exponent. */
static bool parse_seconds(const char *s, int64_t *out_ms)
{
    const char *p = s;
    int64_t whole = 0, frac = 0;
    int nfrac = 0;
    bool digits = false, more = false;
    for (; *p >= '0' && *p <= '9'; p++) {
        whole = whole * 10 + (*p - '0');
        digits = true;
        if (whole > MAX_SECONDS)
            return false;
    }
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++) {
            digits = true;
            if (nfrac < 3) {
                frac = frac * 10 + (*p - '0');
                nfrac++;
            } else if (*p != '0') {
                more = true;
            }
        }
    if (!digits || *p)
        return false;
    for (; nfrac < 3; nfrac++)
        frac *= 10;
    *out_ms = whole * 1000 + frac + (more ? 1 : 0);
    return true;
}

static int apply_option(cli_args *a, const optdef *o, const char *shown, const char *val)
{
    if (o->has_arg && !val)
        return usage_error("option '%s' needs a value", shown);
    if (!val)
        val = ""; /* options without a value never read it; this keeps analyzers calm */
    switch (o->id) {
    case O_WAIT:
    case O_EXPIRE:
    case O_GRACE:
    case O_TTL: {
        int64_t ms;
        if (!parse_seconds(val, &ms))
            return usage_error("%s needs a number of seconds (like 5 or 0.5), got '%s'", shown,
                               val);
        if (o->id == O_WAIT) {
            a->wait_ms = ms;
            a->wait_set = true;
        } else if (o->id == O_EXPIRE) {
            a->expire_ms = ms;
            a->expire_set = true;
        } else if (o->id == O_GRACE) {
            a->grace_ms = ms;
        } else {
            a->ttl_ms = ms;
            a->ttl_set = true;
        }
        return 0;
    }
    case O_EXITCODE: {
        char *end;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (!*val || *end || errno || v < 0 || v > 255 || (*val < '0' || *val > '9'))
            return usage_error("%s needs an exit status 0..255, got '%s'", shown, val);
        a->conflict = (int)v;
        return 0;
    }
    case O_ID:
        if (!*val)
            return usage_error("%s needs a non-empty id", shown);
        a->id = val;
        return 0;
    case O_URL:
        a->url = val;
        return 0;
    case O_NOWAIT:
        a->nowait = true;
        return 0;
    case O_NORENEW:
        a->no_renew = true;
        return 0;
    case O_FENCING:
        a->fencing = true;
        return 0;
    case O_VERBOSE:
        g_verbose = true;
        return 0;
    case O_JSON:
        a->json = true;
        return 0;
    case O_YES:
        a->yes = true;
        return 0;
    case O_REFRESH:
        a->refresh = true;
        return 0;
    case O_QUIET:
        a->quiet = true;
        return 0;
    default:
        return 0;
    }
}

/* Parse argv[1..] (argv[0] is the subcommand). Options may come before or after NAME;
 * "--" ends them; with wants_cmd everything after "--" is the command. Returns 0, -1
 * for --help (printed), or EX_USAGE (reported). */
static int parse_args(const subcommand *sc, cli_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--") == 0) {
            a->dashdash = true;
            if (sc->wants_cmd) {
                a->cmd = argv + i + 1;
                a->ncmd = argc - i - 1;
                break;
            }
            for (i++; i < argc; i++) {
                if (a->name || !sc->takes_name)
                    return usage_error("unexpected argument '%s'", argv[i]);
                a->name = argv[i];
            }
            break;
        }
        if (s[0] != '-' || s[1] == '\0') {
            if (a->name || !sc->takes_name)
                return sc->wants_cmd
                           ? usage_error("unexpected argument '%s' (the command goes after "
                                         "'--': NAME -- CMD [ARG...])", s)
                           : usage_error("unexpected argument '%s'", s);
            a->name = s;
            continue;
        }
        if (s[1] == '-') { /* --long[=value] */
            const char *nm = s + 2, *eq = strchr(nm, '=');
            size_t len = eq ? (size_t)(eq - nm) : strlen(nm);
            const optdef *o = NULL;
            for (size_t k = 0; k < sizeof OPTS / sizeof *OPTS; k++)
                if (strlen(OPTS[k].lname) == len && strncmp(OPTS[k].lname, nm, len) == 0)
                    o = &OPTS[k];
            if (!o || !(sc->opts & BIT(o->id)))
                return usage_error("unknown option '%.*s'", (int)(len + 2), s);
            if (o->id == O_HELP)
                return -1;
            const char *val = NULL;
            if (o->has_arg) {
                if (eq)
                    val = eq + 1;
                else if (i + 1 < argc)
                    val = argv[++i];
                else
                    return usage_error("option '--%s' needs a value", o->lname);
            } else if (eq) {
                return usage_error("option '--%s' takes no value", o->lname);
            }
            char shown[48];
            snprintf(shown, sizeof shown, "--%s", o->lname);
            int rc = apply_option(a, o, shown, val);
            if (rc)
                return rc;
            continue;
        }
        for (const char *p = s + 1; *p; p++) { /* -abc, -w5, -w 5 */
            const optdef *o = NULL;
            for (size_t k = 0; k < sizeof OPTS / sizeof *OPTS; k++)
                if (OPTS[k].sname == *p)
                    o = &OPTS[k];
            if (!o || !(sc->opts & BIT(o->id)))
                return usage_error("unknown option '-%c'", *p);
            if (o->id == O_HELP)
                return -1;
            char shown[4] = {'-', *p, 0, 0};
            if (o->has_arg) {
                const char *val;
                if (p[1])
                    val = p + 1;
                else if (i + 1 < argc)
                    val = argv[++i];
                else
                    return usage_error("option '-%c' needs a value", *p);
                int rc = apply_option(a, o, shown, val);
                if (rc)
                    return rc;
                break;
            }
            int rc = apply_option(a, o, shown, NULL);
            if (rc)
                return rc;
        }
    }
    if (a->nowait && a->wait_set)
        return usage_error("-n and -w cannot be used together (-n is -w 0)");
    if (a->nowait) {
        a->wait_ms = 0;
        a->wait_set = true;
    }
    if (!sc->takes_name)
        return 0;
    if (!a->name)
        return usage_error("missing %s", strcmp(sc->name, "cache") == 0 ? "KEY" : "NAME");
    if (!*a->name)
        return usage_error("the %s must not be empty",
                           strcmp(sc->name, "cache") == 0 ? "key" : "lock name");
    if (sc->wants_cmd && !a->dashdash)
        return usage_error("missing '--' and the command (NAME -- CMD [ARG...])");
    if (sc->wants_cmd && a->ncmd == 0)
        return usage_error("missing the command after '--'");
    return 0;
}

/* ---- connecting ---- */

/* url with the %-encoded password spliced in when it has none:
 *   redis://[user]:PASS@host..., unix://[user]:PASS@/path
 * NULL when url keeps its own password or is not one of those forms (or out of memory). */
static char *splice_password(const char *url, const char *pw)
{
    const char *p, *end;
    if (strncmp(url, "redis://", 8) == 0) {
        p = url + 8;
        end = p + strcspn(p, "/?#");
    } else if (strncmp(url, "unix://", 7) == 0) {
        p = url + 7;
        end = strchr(p, '/');
        if (!end)
            return NULL;
    } else {
        return NULL;
    }
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    if (at && memchr(p, ':', (size_t)(at - p)))
        return NULL;
    const char *insert = at ? at : p; /* after the user name, or at the authority's start */
    size_t plen = strlen(pw), ulen = strlen(url);
    char *out = malloc(ulen + plen * 3 + 3);
    if (!out)
        return NULL;
    size_t o = (size_t)(insert - url);
    memcpy(out, url, o);
    out[o++] = ':';
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < plen; i++) {
        unsigned char ch = (unsigned char)pw[i];
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    if (!at)
        out[o++] = '@';
    strcpy(out + o, insert);
    return out;
}

/* The library's command timeout bounds a whole reply, so a big cached value needs more
 * than the 2 s default (64 MiB is several seconds on a slow link or a loaded machine). */
#define CACHE_COMMAND_TIMEOUT_MS 60000

static int open_client(redis_lock_client **out, const cli_args *a, int command_timeout_ms)
{
    const char *url = a->url;
    if (!url || !*url)
        url = getenv("REDIS_URL");
    if (!url || !*url)
        url = DEFAULT_URL;
    const char *pw = getenv("REDISCLI_AUTH");
    char *spliced = pw && *pw ? splice_password(url, pw) : NULL;
    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    co.url = spliced ? spliced : url;
    if (command_timeout_ms > 0)
        co.command_timeout_ms = command_timeout_ms;
    if (g_verbose)
        co.log = log_line;
    int rc = redis_lock_client_open(out, &co);
    if (spliced) {
        explicit_bzero(spliced, strlen(spliced));
        free(spliced);
    }
    if (rc == REDIS_LOCK_EINVAL) {
        err("%s", redis_lock_last_error());
        return EX_USAGE; /* a bad URL is a usage error */
    }
    if (rc)
        return report(rc, "cannot use Redis");
    return 0;
}

static int new_lock(redis_lock **out, redis_lock_client *c, const char *name,
                    const redis_lock_options *lo)
{
    int rc = redis_lock_new(out, c, name, lo);
    return rc ? report(rc, "lock '%s'", name) : 0;
}

/* Acquire within wait_ms (-1: forever). The library refuses a timeout longer than the
 * expiry without renewal (python-redis-lock parity); the tool never does: it waits in
 * steps no longer than the expiry until its own deadline. */
static int acquire_stepped(redis_lock *l, int64_t wait_ms, int64_t expire_ms, bool renew)
{
    if (wait_ms <= 0 || expire_ms == 0 || renew || wait_ms <= expire_ms)
        return redis_lock_acquire(l, wait_ms);
    int64_t deadline = now_ms() + wait_ms;
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left < 0)
            left = 0;
        int64_t step = left < expire_ms ? left : expire_ms;
        int rc = redis_lock_acquire(l, step);
        if (rc != REDIS_LOCK_BUSY || step == left)
            return rc;
    }
}

/* Take the lock for run/acquire. Returns 0 when held, else the exit status (reported). */
static int take_lock(redis_lock *l, const cli_args *a, bool renew)
{
    char secs[32];
    atomic_store(&g_lock, l);
    atomic_store(&g_phase, PHASE_WAIT);
    int rc = atomic_load(&g_signal) ? REDIS_LOCK_ECANCELED
                                    : acquire_stepped(l, a->wait_ms, a->expire_ms, renew);
    atomic_store(&g_phase, PHASE_IDLE);
    int sig = atomic_load(&g_signal);
    if (rc == REDIS_LOCK_OK && sig) { /* the signal came as we won: give it back */
        redis_lock_release(l);
        return 128 + sig;
    }
    switch (rc) {
    case REDIS_LOCK_OK:
        return 0;
    case REDIS_LOCK_ECANCELED:
        vlog("wait for %s canceled by signal %d", a->name, sig);
        return 128 + (sig ? sig : SIGTERM);
    case REDIS_LOCK_BUSY:
        if (!a->quiet) {
            if (a->wait_ms == 0)
                err("lock '%s' is held by another owner", a->name);
            else
                err("timed out after %s s waiting for lock '%s'",
                    fmt_secs(secs, sizeof secs, a->wait_ms), a->name);
        }
        return a->conflict;
    case REDIS_LOCK_EALREADY:
        if (!a->quiet)
            err("lock '%s' is already held by id %s", a->name, redis_lock_id(l));
        return a->conflict;
    default:
        return report(rc, "acquiring lock '%s'", a->name);
    }
}

/* ---- running a command ---- */

static int status_of(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return EX_SOFTWARE;
}

/* Start argv with envp (NULL: ours) and stdout on out_fd (-1: ours). Returns the pid,
 * or -1 with *status set (126 cannot run, 127 not found, or a sysexit), reported. */
static pid_t spawn(char **argv, char **envp, int out_fd, int *status)
{
    int ep[2];
    if (pipe2(ep, O_CLOEXEC)) {
        err("cannot create a pipe: %s", strerror(errno));
        *status = EX_SOFTWARE;
        return -1;
    }
    /* Until exec the child must not run our handlers (a passed-on SIGTERM would be
     * eaten by them): block everything across fork, restore the original state there. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        for (size_t i = 0; i < sizeof SAVED / sizeof *SAVED; i++)
            sigaction(SAVED[i], &g_orig_act[SAVED[i]], NULL);
        if (out_fd == STDOUT_FILENO)
            fcntl(out_fd, F_SETFD, 0);
        else if (out_fd >= 0)
            dup2(out_fd, STDOUT_FILENO);
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* redis-lock killed: the command is told at once */
        sigprocmask(SIG_SETMASK, &g_orig_mask, NULL);
        if (getppid() != parent) { /* it died before prctl took effect */
            raise(SIGTERM);
            _exit(128 + SIGTERM);
        }
        execvpe(argv[0], argv, envp ? envp : environ);
        int e = errno;
        ssize_t w = write(ep[1], &e, sizeof e);
        (void)w;
        _exit(e == ENOENT ? 127 : 126);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(ep[1]);
    if (pid < 0) {
        close(ep[0]);
        err("cannot start a process: %s", strerror(fork_errno));
        *status = EX_SOFTWARE;
        return -1;
    }
    int e = 0;
    ssize_t n;
    do
        n = read(ep[0], &e, sizeof e);
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n != (ssize_t)sizeof e)
        return pid; /* exec succeeded: the close-on-exec pipe closed */
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    if (e == ENOENT && !strchr(argv[0], '/'))
        err("%s: command not found", argv[0]);
    else
        err("%s: %s", argv[0], strerror(e));
    *status = e == ENOENT ? 127 : 126;
    return -1;
}

static void pass_on_signals(pid_t pid)
{
    for (size_t i = 0; i < sizeof FORWARDED / sizeof *FORWARDED; i++) {
        int sig = FORWARDED[i];
        int v = atomic_exchange(&g_pending[sig], 0);
        if (v == 1) {
            vlog("passing signal %d (%s) on to the command", sig, strsignal(sig));
            kill(pid, sig);
        }
    }
}

/* Wait for the child, passing signals on. With out_fd, collect its stdout into out (and
 * close out_fd). With watch_lost, a lost lock stops the child: SIGTERM, then SIGKILL after
 * grace_ms; *lost tells. Returns the child's exit status (128+N for signal N). */
static int supervise(pid_t pid, int out_fd, strbuf *out, bool watch_lost, int64_t grace_ms,
                     const char *name, bool *lost)
{
    int st = 0;
    bool exited = false, killed = false;
    int64_t kill_at = 0;
    if (lost)
        *lost = false;
    for (;;) {
        drain();
        if (!exited)
            pass_on_signals(pid);
        if (watch_lost && !*lost && atomic_load(&g_lost)) {
            *lost = true;
            err("lost lock '%s' while the command ran (reset, or not renewed before it "
                "expired): stopping the command", name);
            if (!exited)
                kill(pid, SIGTERM);
            kill_at = now_ms() + grace_ms;
        }
        if (!exited && lost && *lost && !killed && now_ms() >= kill_at) {
            vlog("the command outlived its grace period: SIGKILL");
            kill(pid, SIGKILL);
            killed = true;
        }
        if (!exited) {
            pid_t r = waitpid(pid, &st, WNOHANG);
            if (r == pid || (r < 0 && errno == ECHILD))
                exited = true;
        }
        if (exited && out_fd < 0)
            break;
        struct pollfd p[2] = {{g_pipe[0], POLLIN, 0}, {out_fd, POLLIN, 0}};
        int timeout = -1;
        if (!exited && lost && *lost && !killed) {
            int64_t left = kill_at - now_ms();
            timeout = left <= 0 ? 0 : left > 1 << 30 ? 1 << 30 : (int)left;
        }
        int n = poll(p, out_fd >= 0 ? 2 : 1, timeout);
        if (n < 0 && errno != EINTR) {
            err("poll: %s", strerror(errno));
            break;
        }
        if (n > 0 && out_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = -1;
            if (sb_reserve(out, 1 << 16))
                r = read(out_fd, out->data + out->len, out->cap - out->len - 1);
            if (r > 0) {
                out->len += (size_t)r;
            } else if (r == 0 || out->oom || (errno != EINTR && errno != EAGAIN)) {
                if (out->oom && !exited)
                    kill(pid, SIGTERM);
                close(out_fd);
                out_fd = -1;
            }
        }
    }
    if (out_fd >= 0)
        close(out_fd);
    if (out && out->data)
        out->data[out->len] = '\0';
    return status_of(st);
}

/* environ minus REDIS_LOCK_*, plus REDIS_LOCK_NAME, _ID and (fencing) _TOKEN. */
static char **command_env(redis_lock *l, bool fencing, char **own, size_t nown)
{
    size_t n = 0;
    for (char **e = environ; *e; e++)
        n++;
    char **env = calloc(n + 4, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "REDIS_LOCK_NAME=", 16) && strncmp(*e, "REDIS_LOCK_ID=", 14) &&
            strncmp(*e, "REDIS_LOCK_TOKEN=", 17))
            env[k++] = *e;
    const char *name = redis_lock_name(l), *id = redis_lock_id(l);
    size_t ln = strlen(name) + 17, li = strlen(id) + 15;
    own[0] = malloc(ln);
    own[1] = malloc(li);
    own[2] = fencing ? malloc(48) : NULL;
    if (!own[0] || !own[1] || (fencing && !own[2])) {
        for (size_t i = 0; i < nown; i++) {
            free(own[i]);
            own[i] = NULL;
        }
        free(env);
        return NULL;
    }
    snprintf(own[0], ln, "REDIS_LOCK_NAME=%s", name);
    snprintf(own[1], li, "REDIS_LOCK_ID=%s", id);
    env[k++] = own[0];
    env[k++] = own[1];
    if (fencing) {
        snprintf(own[2], 48, "REDIS_LOCK_TOKEN=%lld", (long long)redis_lock_fencing_token(l));
        env[k++] = own[2];
    }
    env[k] = NULL;
    return env;
}

/* ---- subcommands ---- */

static int cmd_run(cli_args *a)
{
    bool renew = !a->no_renew && a->expire_ms > 0;
    int code = setup_signals();
    if (code)
        return code;
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    char **env = NULL, *own[3] = {NULL, NULL, NULL};
    if ((code = open_client(&c, a, 0)))
        return code;
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.expire_ms = a->expire_ms;
    lo.auto_renewal = renew;
    lo.id = a->id;
    lo.fencing = a->fencing;
    lo.on_lost = renew ? on_lost : NULL;
    if ((code = new_lock(&l, c, a->name, &lo)))
        goto out;
    if ((code = take_lock(l, a, renew)))
        goto out;
    int sig = atomic_load(&g_signal);
    if (sig) {
        redis_lock_release(l);
        code = 128 + sig;
        goto out;
    }
    env = command_env(l, a->fencing, own, 3);
    if (!env) {
        redis_lock_release(l);
        err("out of memory");
        code = EX_SOFTWARE;
        goto out;
    }
    int status;
    bool lost = false;
    atomic_store(&g_phase, PHASE_CHILD);
    pid_t pid = spawn(a->cmd, env, -1, &status);
    if (pid > 0) {
        vlog("running %s (pid %d) under lock %s", a->cmd[0], (int)pid, a->name);
        status = supervise(pid, -1, NULL, renew, a->grace_ms, a->name, &lost);
        vlog("the command exited with status %d", status);
    }
    atomic_store(&g_phase, PHASE_IDLE);
    if (lost) {
        code = EX_TEMPFAIL;
        goto out;
    }
    int rc = redis_lock_release(l);
    if (rc == REDIS_LOCK_ENOTHELD) {
        err("lock '%s' expired or was reset while the command ran (it exited with status %d)",
            a->name, status);
        code = EX_TEMPFAIL;
    } else if (rc) {
        int e = report(rc, "releasing lock '%s'", a->name);
        code = status ? status : e; /* the command's own failure says more */
    } else {
        code = status;
    }
out:
    atomic_store(&g_phase, PHASE_IDLE);
    atomic_store(&g_lock, NULL);
    redis_lock_free(l);
    redis_lock_client_close(c);
    free(env);
    for (int i = 0; i < 3; i++)
        free(own[i]);
    return code;
}

static int cmd_acquire(cli_args *a)
{
    int code = setup_signals();
    if (code)
        return code;
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    if ((code = open_client(&c, a, 0)))
        return code;
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.expire_ms = a->expire_ms;
    lo.id = a->id;
    if ((code = new_lock(&l, c, a->name, &lo)))
        goto out;
    if ((code = take_lock(l, a, false)))
        goto out;
    strbuf b = {0};
    sb_add(&b, redis_lock_id(l), strlen(redis_lock_id(l)));
    sb_add(&b, "\n", 1);
    if (b.oom || !write_all(STDOUT_FILENO, b.data, b.len)) {
        int e = errno;
        redis_lock_release(l); /* nobody could release it without the id */
        err("writing the id to standard output: %s (lock '%s' released)",
            b.oom ? "out of memory" : strerror(e), a->name);
        code = b.oom ? EX_SOFTWARE : EX_IOERR;
    }
    free(b.data);
out:
    atomic_store(&g_lock, NULL);
    redis_lock_free(l);
    redis_lock_client_close(c);
    return code;
}

static int cmd_release_extend(cli_args *a, bool extend)
{
    if (!a->id)
        return usage_error("needs -i ID (the id that 'redis-lock acquire' printed)");
    if (extend && !a->expire_set)
        return usage_error("needs -x SEC (the new expiry)");
    if (extend && a->expire_ms == 0)
        return usage_error("-x must be more than 0 (a lock's expiry cannot be removed)");
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    int code = open_client(&c, a, 0);
    if (code)
        return code;
    redis_lock_options lo;
    redis_lock_options_init(&lo);
    lo.id = a->id;
    lo.expire_ms = extend ? a->expire_ms : 0;
    if ((code = new_lock(&l, c, a->name, &lo)))
        goto out;
    int rc = extend ? redis_lock_extend(l, a->expire_ms) : redis_lock_release(l);
    if (rc == REDIS_LOCK_ENOTHELD) {
        err("lock '%s' is not held by %s (expired, reset, or never acquired)", a->name, a->id);
        code = 1;
    } else if (rc == REDIS_LOCK_ENOEXPIRE) {
        err("lock '%s' has no expiry to extend (it was acquired with -x 0)", a->name);
        code = 1;
    } else if (rc) {
        code = report(rc, "%s lock '%s'", extend ? "extending" : "releasing", a->name);
    }
out:
    redis_lock_free(l);
    redis_lock_client_close(c);
    return code;
}

static int cmd_release(cli_args *a)
{
    return cmd_release_extend(a, false);
}

static int cmd_extend(cli_args *a)
{
    return cmd_release_extend(a, true);
}

static int cmd_status(cli_args *a)
{
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    char *owner = NULL;
    strbuf b = {0};
    int code = open_client(&c, a, 0);
    if (code)
        return code;
    if ((code = new_lock(&l, c, a->name, NULL)))
        goto out;
    int64_t ttl = -2;
    int rc = redis_lock_get_owner_id(l, &owner);
    if (!rc && owner)
        rc = redis_lock_ttl(l, &ttl);
    if (rc) {
        code = report(rc, "status of lock '%s'", a->name);
        goto out;
    }
    bool held = owner && ttl != -2; /* -2: released between the two questions */
    if (a->json) {
        sb_add(&b, "{\"name\":", 8);
        sb_json_string(&b, a->name);
        sb_addf(&b, ",\"held\":%s,\"owner\":", held ? "true" : "false");
        if (held)
            sb_json_string(&b, owner);
        else
            sb_add(&b, "null", 4);
        if (held && ttl >= 0)
            sb_addf(&b, ",\"ttl_ms\":%lld}\n", (long long)ttl);
        else
            sb_add(&b, ",\"ttl_ms\":null}\n", 16);
    } else if (held) {
        sb_add(&b, "held by ", 8);
        sb_text(&b, owner);
        if (ttl >= 0)
            sb_addf(&b, ", expires in %lld ms\n", (long long)ttl);
        else
            sb_add(&b, ", no expiry\n", 12);
    } else {
        sb_add(&b, "free\n", 5);
    }
    if (b.oom) {
        err("out of memory");
        code = EX_SOFTWARE;
    } else {
        code = write_stdout(b.data, b.len);
        if (!code)
            code = held ? 0 : 1;
    }
out:
    free(b.data);
    free(owner);
    redis_lock_free(l);
    redis_lock_client_close(c);
    return code;
}

static int cmd_reset(cli_args *a)
{
    redis_lock_client *c = NULL;
    redis_lock *l = NULL;
    int code = open_client(&c, a, 0);
    if (code)
        return code;
    if ((code = new_lock(&l, c, a->name, NULL)))
        goto out;
    int rc = redis_lock_reset(l);
    if (rc)
        code = report(rc, "resetting lock '%s'", a->name);
out:
    redis_lock_free(l);
    redis_lock_client_close(c);
    return code;
}

static int cmd_reset_all(cli_args *a)
{
    if (!a->yes && isatty(STDIN_FILENO))
        return usage_error("this deletes every lock in the database; add --yes to confirm");
    redis_lock_client *c = NULL;
    int code = open_client(&c, a, 0);
    if (code)
        return code;
    size_t count = 0;
    int rc = redis_lock_reset_all(c, &count);
    if (rc) {
        code = report(rc, "resetting all locks");
    } else {
        char line[32];
        int n = snprintf(line, sizeof line, "%zu\n", count);
        code = write_stdout(line, (size_t)n);
    }
    redis_lock_client_close(c);
    return code;
}

typedef struct {
    char **argv;
    bool ran;   /* make was called */
    int status; /* the command's exit status, or ours */
} cache_job;

/* The cache's make callback: run the command, its stdout is the value. */
static int cache_make(void *payload, char **value, size_t *len)
{
    cache_job *job = payload;
    job->ran = true;
    int p[2];
    if (pipe2(p, O_CLOEXEC)) {
        err("cannot create a pipe: %s", strerror(errno));
        job->status = EX_SOFTWARE;
        return 1;
    }
    fcntl(p[0], F_SETPIPE_SZ, 1 << 20); /* fewer wake-ups for big outputs; best effort */
    atomic_store(&g_phase, PHASE_CHILD);
    pid_t pid = spawn(job->argv, NULL, p[1], &job->status);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        atomic_store(&g_phase, PHASE_IDLE);
        return 1;
    }
    vlog("cache miss: running %s (pid %d)", job->argv[0], (int)pid);
    strbuf out = {0};
    job->status = supervise(pid, p[0], &out, false, 0, NULL, NULL);
    atomic_store(&g_phase, PHASE_IDLE);
    atomic_store(&g_signal, 0); /* those were the command's to act on */
    vlog("the command exited with status %d after writing %zu bytes", job->status, out.len);
    if (out.oom) {
        err("out of memory holding the command's output (%zu bytes)", out.len);
        job->status = EX_SOFTWARE;
    }
    if (job->status) {
        free(out.data);
        return 1;
    }
    *value = out.data;
    *len = out.len;
    return 0;
}

static int cmd_cache(cli_args *a)
{
    if (!a->ttl_set)
        return usage_error("needs -t TTL_SEC (how long the output is cached)");
    if (a->ttl_ms == 0)
        return usage_error("-t must be more than 0");
    int code = setup_signals();
    if (code)
        return code;
    redis_lock_client *c = NULL;
    if ((code = open_client(&c, a, CACHE_COMMAND_TIMEOUT_MS)))
        return code;
    redis_lock_cache_options co;
    redis_lock_cache_options_init(&co);
    co.ttl_ms = a->ttl_ms;
    co.timeout_ms = a->wait_ms;
    co.refresh = a->refresh;
    if (a->expire_set) {
        co.lock.expire_ms = a->expire_ms;
        co.lock.auto_renewal = a->expire_ms > 0;
    }
    cache_job job = {a->cmd, false, 0};
    char *value = NULL;
    size_t len = 0;
    atomic_store(&g_phase, PHASE_CACHE_WAIT);
    int sig = atomic_load(&g_signal);
    if (sig) {
        atomic_store(&g_phase, PHASE_IDLE);
        redis_lock_client_close(c);
        return 128 + sig;
    }
    int rc = redis_lock_cache_get_or_set(c, a->name, &co, cache_make, &job, &value, &len);
    atomic_store(&g_phase, PHASE_IDLE);
    sig = atomic_load(&g_signal);
    char secs[32];
    if (rc == REDIS_LOCK_OK && sig) {
        code = 128 + sig; /* asked to stop; what was computed is stored */
    } else if (rc == REDIS_LOCK_OK) {
        vlog("%s %zu bytes for %s", job.ran ? "computed" : "cached:", len, a->name);
        code = write_stdout(value, len);
    } else if (rc == REDIS_LOCK_EUSER && job.ran) {
        code = job.status ? job.status : EX_SOFTWARE;
    } else if (rc == REDIS_LOCK_BUSY) {
        if (!a->quiet)
            err("timed out after %s s waiting for another process computing '%s'",
                fmt_secs(secs, sizeof secs, a->wait_ms), a->name);
        code = a->conflict;
    } else {
        code = report(rc, "cache '%s'", a->name);
    }
    free(value);
    redis_lock_client_close(c);
    return code;
}

/* ---- help ---- */

static const char GENERAL_HELP[] =
    "usage: redis-lock [-u URL] [-v] COMMAND [OPTIONS] ...\n"
    "\n"
    "Distributed locks over Redis, compatible with python-redis-lock.\n"
    "\n"
    "  run       [-w SEC | -n] [-x SEC] [--no-renew] [--grace SEC] [--fencing] [-i ID]\n"
    "            [-E CODE] [-q] NAME -- CMD [ARG...]   run CMD while holding lock NAME\n"
    "  acquire   [-w SEC | -n] [-x SEC] [-i ID] [-E CODE] [-q] NAME\n"
    "                                    take lock NAME, print its id, keep it\n"
    "  release   -i ID NAME              release lock NAME held by ID\n"
    "  extend    -i ID -x SEC NAME       set the expiry of lock NAME held by ID\n"
    "  status    [--json] NAME           owner and expiry; exit 0 held, 1 free\n"
    "  reset     NAME                    delete lock NAME whoever holds it\n"
    "  reset-all [--yes]                 delete every lock; prints how many\n"
    "  cache     -t TTL_SEC [-w SEC] [-x SEC] [--refresh] KEY -- CMD [ARG...]\n"
    "                                    print CMD's cached stdout, or compute it once\n"
    "\n"
    "  -u, --url URL   redis://[[user]:pass@]host[:port][/db] or unix://[[user]:pass@]/path[?db=N]\n"
    "                  (default: $REDIS_URL, else " DEFAULT_URL ");\n"
    "                  a password may also come from $REDISCLI_AUTH\n"
    "  -v, --verbose   log each step on stderr, with timestamps\n"
    "  -h, --help      this help; 'redis-lock COMMAND --help' for a command's\n"
    "      --version   print the version\n"
    "\n"
    "Exit status: CMD's own; 128+N for signal N; 126/127 CMD cannot run / not found;\n"
    "-E CODE (default 1) lock busy or wait timed out; 64 usage; 69 Redis unreachable;\n"
    "70 internal error; 74 output write error; 75 lock lost while CMD ran;\n"
    "77 authentication or permission refused. See redis-lock(1).\n";

#define COMMON_HELP                                                                     \
    "  -u, --url URL         Redis URL (default: $REDIS_URL, else " DEFAULT_URL ")\n" \
    "  -v, --verbose         log each step on stderr, with timestamps\n"              \
    "  -h, --help            this help\n"

static const char RUN_HELP[] =
    "usage: redis-lock run [-w SEC | -n] [-x SEC] [--no-renew] [--grace SEC] [--fencing]\n"
    "                      [-i ID] [-E CODE] [-q] NAME -- CMD [ARG...]\n"
    "\n"
    "Acquire lock NAME, run CMD, release the lock when CMD exits. CMD finds\n"
    "REDIS_LOCK_NAME, REDIS_LOCK_ID (and with --fencing REDIS_LOCK_TOKEN) in its\n"
    "environment. SIGINT, SIGTERM and SIGHUP are passed on to CMD. If the lock is lost\n"
    "while CMD runs, CMD gets SIGTERM (SIGKILL after the grace period) and redis-lock\n"
    "exits 75. If redis-lock is killed, CMD gets SIGTERM at once.\n"
    "\n"
    "  -w, --wait SEC        wait at most SEC seconds (fractions allowed; default: forever)\n"
    "  -n, --no-wait         try once (same as -w 0)\n"
    "  -x, --expire SEC      the lock's expiry, renewed while CMD runs (default 30;\n"
    "                        0: never expires, not renewed)\n"
    "      --no-renew        do not renew: the lock expires SEC after it was taken\n"
    "      --grace SEC       after a lost lock, SIGKILL CMD this long after SIGTERM (default 5)\n"
    "      --fencing         hand CMD a fencing token in REDIS_LOCK_TOKEN\n"
    "  -i, --id ID           the owner id to store (default: 24 random characters)\n"
    "  -E, --conflict-exit-code CODE  exit status when busy or timed out (default 1)\n"
    "  -q, --quiet           say nothing when the lock is busy or the wait timed out\n" COMMON_HELP
    "\n"
    "Exit status: CMD's own (128+N if it died of signal N); 126/127 CMD cannot run / not\n"
    "found; CODE when busy; 128+N when signal N ended the wait; 64 69 70 75 77 (see --help).\n";

static const char ACQUIRE_HELP[] =
    "usage: redis-lock acquire [-w SEC | -n] [-x SEC] [-i ID] [-E CODE] [-q] NAME\n"
    "\n"
    "Acquire lock NAME, print its id on stdout and exit, leaving the lock held; give it\n"
    "back with 'redis-lock release -i ID NAME'. Nothing renews it.\n"
    "\n"
    "  -w, --wait SEC        wait at most SEC seconds (default: forever)\n"
    "  -n, --no-wait         try once (same as -w 0)\n"
    "  -x, --expire SEC      the lock expires after SEC seconds unless extended\n"
    "                        (default 0: never; a crashed script then needs 'reset')\n"
    "  -i, --id ID           the owner id to store (default: 24 random characters)\n"
    "  -E, --conflict-exit-code CODE  exit status when busy or timed out (default 1)\n"
    "  -q, --quiet           say nothing when the lock is busy or the wait timed out\n" COMMON_HELP;

static const char RELEASE_HELP[] =
    "usage: redis-lock release -i ID NAME\n"
    "\n"
    "Release lock NAME if ID holds it, and wake one waiter. Exit 1 when ID does not\n"
    "hold it (it expired, was reset, or another owner has it).\n"
    "\n"
    "  -i, --id ID           the id 'redis-lock acquire' printed\n" COMMON_HELP;

static const char EXTEND_HELP[] =
    "usage: redis-lock extend -i ID -x SEC NAME\n"
    "\n"
    "Set the expiry of lock NAME, held by ID, to SEC seconds from now. Exit 1 when ID\n"
    "does not hold it, or it was acquired without an expiry.\n"
    "\n"
    "  -i, --id ID           the id 'redis-lock acquire' printed\n"
    "  -x, --expire SEC      the new expiry (more than 0)\n" COMMON_HELP;

static const char STATUS_HELP[] =
    "usage: redis-lock status [--json] NAME\n"
    "\n"
    "Print one line: 'held by ID, expires in N ms', 'held by ID, no expiry' or 'free'.\n"
    "Exit 0 when held, 1 when free.\n"
    "\n"
    "      --json            print {\"name\":...,\"held\":...,\"owner\":...,\"ttl_ms\":...}\n"
    "                        (owner null when free; ttl_ms null when free or no expiry)\n" COMMON_HELP;

static const char RESET_HELP[] =
    "usage: redis-lock reset NAME\n"
    "\n"
    "Delete lock NAME whoever holds it, and wake one waiter. A 'run' holding it\n"
    "notices at its next renewal, stops its command and exits 75.\n"
    "\n" COMMON_HELP;

static const char RESET_ALL_HELP[] =
    "usage: redis-lock reset-all [--yes]\n"
    "\n"
    "Delete every lock (every lock:* key) in the database and print how many.\n"
    "\n"
    "      --yes             confirm (required when stdin is a terminal)\n" COMMON_HELP;

static const char CACHE_HELP[] =
    "usage: redis-lock cache -t TTL_SEC [-w SEC] [-x SEC] [--refresh] [-E CODE] [-q]\n"
    "                        KEY -- CMD [ARG...]\n"
    "\n"
    "Print the value cached under the Redis key KEY. On a miss run CMD once, under the\n"
    "lock 'get_or_set:KEY', however many callers miss at the same time; its stdout\n"
    "(any bytes, any size) is stored for TTL_SEC seconds and printed. A CMD that fails\n"
    "is not cached: its stderr passes through and its exit status is redis-lock's.\n"
    "\n"
    "  -t, --ttl SEC         how long the value lives (more than 0; required)\n"
    "  -w, --wait SEC        wait at most SEC for another caller's computation\n"
    "                        (default: forever)\n"
    "  -x, --expire SEC      the computing lock's expiry, renewed (default 30)\n"
    "      --refresh         compute now even if a value is cached\n"
    "  -E, --conflict-exit-code CODE  exit status when the wait timed out (default 1)\n"
    "  -q, --quiet           say nothing when the wait timed out\n" COMMON_HELP;

#define COMMON_OPTS (BIT(O_VERBOSE) | BIT(O_HELP) | BIT(O_URL))

static const subcommand SUBCOMMANDS[] = {
    {"run",
     COMMON_OPTS | BIT(O_WAIT) | BIT(O_NOWAIT) | BIT(O_EXPIRE) | BIT(O_NORENEW) | BIT(O_GRACE) |
         BIT(O_FENCING) | BIT(O_ID) | BIT(O_EXITCODE) | BIT(O_QUIET),
     true, true, cmd_run, RUN_HELP},
    {"acquire",
     COMMON_OPTS | BIT(O_WAIT) | BIT(O_NOWAIT) | BIT(O_EXPIRE) | BIT(O_ID) | BIT(O_EXITCODE) |
         BIT(O_QUIET),
     true, false, cmd_acquire, ACQUIRE_HELP},
    {"release", COMMON_OPTS | BIT(O_ID), true, false, cmd_release, RELEASE_HELP},
    {"extend", COMMON_OPTS | BIT(O_ID) | BIT(O_EXPIRE), true, false, cmd_extend, EXTEND_HELP},
    {"status", COMMON_OPTS | BIT(O_JSON), true, false, cmd_status, STATUS_HELP},
    {"reset", COMMON_OPTS, true, false, cmd_reset, RESET_HELP},
    {"reset-all", COMMON_OPTS | BIT(O_YES), false, false, cmd_reset_all, RESET_ALL_HELP},
    {"cache",
     COMMON_OPTS | BIT(O_TTL) | BIT(O_WAIT) | BIT(O_NOWAIT) | BIT(O_EXPIRE) | BIT(O_REFRESH) |
         BIT(O_EXITCODE) | BIT(O_QUIET),
     true, true, cmd_cache, CACHE_HELP},
};

static int print_help(const char *text)
{
    return write_stdout(text, strlen(text));
}

enum { CL_COMMAND, CL_HELP, CL_VERSION };

/* The whole command line: global options, the command, its options and arguments. Returns
 * 0 with *what CL_COMMAND (*sc and *a filled), CL_HELP (*sc NULL: the general help, else
 * the command's) or CL_VERSION; or EX_USAGE, reported. Runs nothing, connects nowhere. */
static int parse_command_line(int argc, char **argv, cli_args *a, const subcommand **sc,
                              int *what)
{
    memset(a, 0, sizeof *a);
    a->wait_ms = -1;
    a->grace_ms = 5000;
    a->conflict = 1;
    *sc = NULL;
    *what = CL_HELP;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--version") == 0) {
            *what = CL_VERSION;
            return 0;
        } else if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
            return 0;
        } else if (strcmp(s, "-v") == 0 || strcmp(s, "--verbose") == 0) {
            g_verbose = true;
        } else if (strcmp(s, "-u") == 0 || strcmp(s, "--url") == 0) {
            if (++i >= argc)
                return usage_error("option '%s' needs a value", s);
            a->url = argv[i];
        } else if (strncmp(s, "--url=", 6) == 0) {
            a->url = s + 6;
        } else if (strncmp(s, "-u", 2) == 0) {
            a->url = s + 2;
        } else {
            return usage_error("unknown option '%s'", s);
        }
    }
    if (i >= argc)
        return usage_error("missing command (run, acquire, release, extend, status, reset, "
                           "reset-all, cache)");
    if (strcmp(argv[i], "help") == 0)
        return 0;
    for (size_t k = 0; k < sizeof SUBCOMMANDS / sizeof *SUBCOMMANDS; k++)
        if (strcmp(SUBCOMMANDS[k].name, argv[i]) == 0)
            *sc = &SUBCOMMANDS[k];
    if (!*sc)
        return usage_error("unknown command '%s'", argv[i]);
    g_sub = (*sc)->name;
    a->expire_ms = (*sc)->fn == cmd_run ? 30000 : 0;
    int rc = parse_args(*sc, a, argc - i, argv + i);
    if (rc < 0)
        return 0; /* the command's --help */
    if (rc)
        return rc;
    *what = CL_COMMAND;
    return 0;
}

int main(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof SAVED / sizeof *SAVED; i++)
        sigaction(SAVED[i], NULL, &g_orig_act[SAVED[i]]);
    sigprocmask(SIG_SETMASK, NULL, &g_orig_mask);
    /* A closed stdout is reported as a write error (74), not a silent death. */
    signal(SIGPIPE, SIG_IGN);

    cli_args a;
    const subcommand *sc;
    int what;
    int rc = parse_command_line(argc, argv, &a, &sc, &what);
    if (rc)
        return rc;
    if (what == CL_VERSION) {
        char v[96];
        int n = snprintf(v, sizeof v, "redis-lock %d.%d.%d (libredislock %s)\n",
                         REDIS_LOCK_VERSION_MAJOR, REDIS_LOCK_VERSION_MINOR,
                         REDIS_LOCK_VERSION_PATCH, redis_lock_version());
        return write_stdout(v, (size_t)n);
    }
    if (what == CL_HELP)
        return print_help(sc ? sc->help : GENERAL_HELP);
    return sc->fn(&a);
}
