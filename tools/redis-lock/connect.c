/* Connecting: the URL (-u, $REDIS_URL, the default), a password from $REDISCLI_AUTH. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

char *cli_splice_password(const char *url, const char *pw)
{
    const char *p, *end;
    if (strncmp(url, "redis://", 8) == 0 || strncmp(url, "rediss://", 9) == 0 ||
        strncmp(url, "redis+sentinel://", 17) == 0 || strncmp(url, "rediss+sentinel://", 18) == 0) {
        p = strstr(url, "://") + 3;
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

int cli_open_client(redis_lock_client **out, const cli_args *a, int command_timeout_ms)
{
    const char *url = a->url;
    if (!url || !*url)
        url = getenv("REDIS_URL");
    if (!url || !*url)
        url = CLI_DEFAULT_URL;
    const char *pw = getenv("REDISCLI_AUTH");
    char *spliced = pw && *pw ? cli_splice_password(url, pw) : NULL;
    redis_lock_client_options co;
    redis_lock_client_options_init(&co);
    co.url = spliced ? spliced : url;
    if (command_timeout_ms > 0)
        co.command_timeout_ms = command_timeout_ms;
    if (cli_verbose)
        co.log = cli_log_line;
    int rc = redis_lock_client_open(out, &co);
    if (spliced) {
        explicit_bzero(spliced, strlen(spliced));
        free(spliced);
    }
    if (rc == REDIS_LOCK_EINVAL) {
        cli_err("%s", redis_lock_last_error());
        return EX_USAGE; /* a bad URL is a usage error */
    }
    if (rc)
        return cli_report(rc, "cannot use Redis");
    return 0;
}

int cli_new_lock(redis_lock **out, redis_lock_client *c, const char *name,
                 const redis_lock_options *lo)
{
    int rc = redis_lock_new(out, c, name, lo);
    return rc ? cli_report(rc, "lock '%s'", name) : 0;
}

int cli_new_hold(redis_lock **out, redis_lock_client *c, const cli_args *a,
                 redis_lock_options *lo)
{
    lo->fair = a->fair;
    lo->shared = a->shared;
    if (!a->limit)
        return cli_new_lock(out, c, a->name, lo);
    int rc = redis_lock_semaphore_new(out, c, a->name, a->limit, lo);
    return rc ? cli_report(rc, "semaphore '%s'", a->name) : 0;
}
