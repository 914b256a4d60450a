/* Messages, -v logging, exit statuses, and writing output. Every message is one line on
 * stderr starting "redis-lock: ", written with one write(). */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

bool cli_verbose;

static void emit_line(const char *fmt, va_list ap) CLI_PRINTF(1, 0);
static void emit_line(const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "redis-lock: ");
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

void cli_err(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit_line(fmt, ap);
    va_end(ap);
}

int cli_usage_error(const char *sub, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (sub)
        cli_err("%s: %s (try 'redis-lock %s --help')", sub, what, sub);
    else
        cli_err("%s (try 'redis-lock --help')", what);
    return EX_USAGE;
}

static const char *level_name(int level)
{
    static const char *const names[] = {"emerg", "alert", "crit",  "error",
                                        "warning", "notice", "info", "debug"};
    return names[level & 7];
}

void cli_log_line(int level, const char *message, void *payload)
{
    (void)payload;
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    cli_err("%s.%03ld [%d] %s: %.850s", stamp, ts.tv_nsec / 1000000L, (int)getpid(),
            level_name(level), message);
}

void cli_vlog(const char *fmt, ...)
{
    if (!cli_verbose)
        return;
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cli_log_line(6 /* LOG_INFO */, msg, NULL);
}

/* docs/cli.md's table of exit statuses. */
int cli_exit_status_for(int rc)
{
    switch (rc) {
    case REDIS_LOCK_ECONN:
    case REDIS_LOCK_EREPLICA: /* too few replicas acknowledged: the service is degraded */
        return EX_UNAVAILABLE;
    case REDIS_LOCK_EAUTH:
        return EX_NOPERM;
    case REDIS_LOCK_ESERVER:
        return EX_UNAVAILABLE; /* Redis refused the service: READONLY, OOM, LOADING, ... */
    default:
        return EX_SOFTWARE;
    }
}

int cli_report(int rc, const char *fmt, ...)
{
    char ctx[512];
    const char *detail = redis_lock_last_error();
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    cli_err("%s: %s", ctx, detail && *detail ? detail : redis_lock_strerror(rc));
    return cli_exit_status_for(rc);
}

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool cli_write_all(int fd, const char *p, size_t n)
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

int cli_write_stdout(const char *p, size_t n)
{
    if (cli_write_all(STDOUT_FILENO, p, n))
        return 0;
    cli_err("writing to standard output: %s", strerror(errno));
    return EX_IOERR;
}

const char *cli_fmt_secs(char *buf, size_t n, int64_t ms)
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

/* ---- strbuf ---- */

bool sb_reserve(strbuf *b, size_t more)
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

void sb_add(strbuf *b, const char *p, size_t n)
{
    if (sb_reserve(b, n + 1)) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
    }
}

void sb_adds(strbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

void sb_addf(strbuf *b, const char *fmt, ...)
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

void sb_json_string(strbuf *b, const char *s)
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

void sb_text(strbuf *b, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '\\')
            sb_addf(b, "\\x%02x", *p);
        else
            sb_add(b, (const char *)p, 1);
    }
}
