/* redis://, rediss://, redis+sentinel://, rediss+sentinel:// and unix:// URL parsing, and a
 * printable form with the password masked. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Percent-decode [p, p+n) into a new string; NULL (and *code) on a bad escape or %00. */
static char *decode(const char *p, size_t n, int *code)
{
    char *out = rl_malloc(n + 1), *o = out;
    if (!out) {
        *code = rl_error(REDIS_LOCK_ENOMEM, "out of memory parsing URL");
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%') {
            if (i + 2 >= n) {
                free(out);
                *code = rl_error(REDIS_LOCK_EINVAL, "bad URL: truncated %%-escape");
                return NULL;
            }
            int a = hexval((unsigned char)p[i + 1]), b = hexval((unsigned char)p[i + 2]);
            if (a < 0 || b < 0 || (a == 0 && b == 0)) {
                free(out);
                *code = rl_error(REDIS_LOCK_EINVAL, "bad URL: invalid %%-escape");
                return NULL;
            }
            *o++ = (char)(a * 16 + b);
            i += 2;
        } else {
            *o++ = p[i];
        }
    }
    *o = '\0';
    return out;
}

static int parse_int(const char *p, size_t n, long min, long max, const char *what, int *out)
{
    char tmp[16];
    if (n == 0 || n >= sizeof tmp)
        return rl_error(REDIS_LOCK_EINVAL, "bad URL: %s must be a number", what);
    memcpy(tmp, p, n);
    tmp[n] = '\0';
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)tmp[i]))
            return rl_error(REDIS_LOCK_EINVAL, "bad URL: %s must be a number", what);
    long v = strtol(tmp, NULL, 10);
    if (v < min || v > max)
        return rl_error(REDIS_LOCK_EINVAL, "bad URL: %s out of range (%ld..%ld)", what, min, max);
    *out = (int)v;
    return 0;
}

void rl_url_free(rl_url *u)
{
    free(u->host);
    free(u->user);
    free(u->password);
    free(u->masked);
    free(u->cacert);
    free(u->cacertdir);
    free(u->cert);
    free(u->key);
    free(u->sni);
    free(u->master_name);
    for (int i = 0; i < u->nsentinels; i++)
        free(u->sentinels[i].host);
    free(u->sentinels);
    free(u->sentinel_user);
    free(u->sentinel_password);
    memset(u, 0, sizeof *u);
}

/* redis+sentinel://[user[:***]@]h1:p1,h2:p2/MASTER/db */
static int build_masked_sentinel(rl_url *u)
{
    size_t n = (u->user ? strlen(u->user) : 0) + strlen(u->master_name) + 64;
    for (int i = 0; i < u->nsentinels; i++)
        n += strlen(u->sentinels[i].host) + 16;
    u->masked = rl_malloc(n);
    if (!u->masked)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory parsing URL");
    size_t o = (size_t)snprintf(u->masked, n, "%s://%s%s%s", u->tls ? "rediss+sentinel" : "redis+sentinel",
                                u->user ? u->user : "", u->password ? ":***" : "",
                                u->user || u->password ? "@" : "");
    for (int i = 0; i < u->nsentinels; i++) {
        bool v6 = strchr(u->sentinels[i].host, ':') != NULL;
        o += (size_t)snprintf(u->masked + o, n - o, "%s%s%s%s:%d", i ? "," : "", v6 ? "[" : "",
                              u->sentinels[i].host, v6 ? "]" : "", u->sentinels[i].port);
    }
    snprintf(u->masked + o, n - o, "/%s/%d", u->master_name, u->db);
    return 0;
}

static int build_masked(rl_url *u)
{
    if (u->sentinel)
        return build_masked_sentinel(u);
    char port[16] = "";
    const char *cred_sep = u->user || u->password ? "@" : "";
    size_t n = strlen(u->host) + (u->user ? strlen(u->user) : 0) + 64;
    u->masked = rl_malloc(n);
    if (!u->masked)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory parsing URL");
    if (!u->unix_socket)
        snprintf(port, sizeof port, ":%d", u->port);
    if (u->unix_socket)
        snprintf(u->masked, n, "unix://%s%s%s%s/%s?db=%d", u->user ? u->user : "",
                 u->password ? ":***" : "", cred_sep, "", u->host + (u->host[0] == '/'), u->db);
    else
        snprintf(u->masked, n, "%s://%s%s%s%s%s%s%s/%d", u->tls ? "rediss" : "redis",
                 u->user ? u->user : "",
                 u->password ? ":***" : "", cred_sep, strchr(u->host, ':') ? "[" : "", u->host,
                 strchr(u->host, ':') ? "]" : "", port, u->db);
    return 0;
}

/* Split "[user][:pass]@" off the front of the authority [p, end). */
static int parse_userinfo(rl_url *u, const char **pp, const char *end)
{
    const char *p = *pp;
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q; /* the last '@': a password may contain '@' only %-escaped, be lenient */
    if (!at)
        return 0;
    const char *colon = memchr(p, ':', (size_t)(at - p));
    int code = 0;
    size_t ulen = (size_t)((colon ? colon : at) - p);
    if (ulen) {
        u->user = decode(p, ulen, &code);
        if (!u->user)
            return code;
    }
    if (colon) {
        u->password = decode(colon + 1, (size_t)(at - colon - 1), &code);
        if (!u->password)
            return code;
    }
    *pp = at + 1;
    return 0;
}

/* One query parameter "name=value" at [p, p+n): db, or a TLS one (named as redis-cli
 * names its --tls flags). */
static int parse_param(rl_url *u, const char *p, size_t n)
{
    static const struct {
        const char *name;
        size_t off;
    } paths[] = {
        {"cacert", offsetof(rl_url, cacert)}, {"cacertdir", offsetof(rl_url, cacertdir)},
        {"cert", offsetof(rl_url, cert)},     {"key", offsetof(rl_url, key)},
        {"sni", offsetof(rl_url, sni)},
    };
    const char *eq = memchr(p, '=', n);
    size_t nlen = eq ? (size_t)(eq - p) : n;
    const char *val = eq ? eq + 1 : p + n;
    size_t vlen = (size_t)(p + n - val);
    int shown = (int)(nlen > 40 ? 40 : nlen);
    if (nlen == 2 && memcmp(p, "db", 2) == 0)
        return parse_int(val, vlen, 0, 1 << 30, "database", &u->db);
    if (nlen == 12 && memcmp(p, "min_replicas", 12) == 0)
        return parse_int(val, vlen, 0, 1000, "min_replicas", &u->min_replicas);
    if (nlen == 18 && memcmp(p, "replica_timeout_ms", 18) == 0)
        return parse_int(val, vlen, 1, 3600000, "replica_timeout_ms", &u->replica_timeout_ms);
    bool suser = nlen == 13 && memcmp(p, "sentinel_user", 13) == 0;
    if (suser || (nlen == 17 && memcmp(p, "sentinel_password", 17) == 0)) {
        if (!u->sentinel)
            return rl_error(REDIS_LOCK_EINVAL,
                            "bad URL: parameter %.*s needs redis+sentinel:// or rediss+sentinel://",
                            (int)nlen, p);
        if (!eq || vlen == 0)
            return rl_error(REDIS_LOCK_EINVAL, "bad URL: parameter %.*s needs a value", (int)nlen,
                            p);
        int code = 0;
        char *v = decode(val, vlen, &code);
        if (!v)
            return code;
        char **slot = suser ? &u->sentinel_user : &u->sentinel_password;
        free(*slot);
        *slot = v;
        return 0;
    }
    bool tls_param = nlen == 8 && memcmp(p, "insecure", 8) == 0;
    size_t i;
    for (i = 0; !tls_param && i < sizeof paths / sizeof paths[0]; i++)
        if (strlen(paths[i].name) == nlen && memcmp(p, paths[i].name, nlen) == 0)
            break;
    if (!tls_param && i == sizeof paths / sizeof paths[0])
        return rl_error(REDIS_LOCK_EINVAL, "bad URL: unknown parameter %.*s", shown, p);
    if (!u->tls)
        return rl_error(REDIS_LOCK_EINVAL, "bad URL: parameter %.*s needs rediss:// (TLS)",
                        shown, p);
    if (!eq || vlen == 0)
        return rl_error(REDIS_LOCK_EINVAL, "bad URL: parameter %.*s needs a value", shown, p);
    int code = 0;
    char *v = decode(val, vlen, &code);
    if (!v)
        return code;
    if (tls_param) {
        static const char *const yes[] = {"1", "true", "yes", "on"};
        static const char *const no[] = {"0", "false", "no", "off"};
        u->insecure = -1;
        for (size_t k = 0; k < 4; k++) {
            if (strcasecmp(v, yes[k]) == 0)
                u->insecure = 1;
            if (strcasecmp(v, no[k]) == 0)
                u->insecure = 0;
        }
        free(v);
        if (u->insecure < 0)
            return rl_error(REDIS_LOCK_EINVAL, "bad URL: insecure must be 1 or 0");
        return 0;
    }
    char **slot = (char **)((char *)u + paths[i].off);
    free(*slot);
    *slot = v;
    return 0;
}

/* "host[:port]" or "[v6]:port" at [p, end) into a new string and a port. */
static int parse_hostport(const char *p, const char *end, int defport, char **host, int *port)
{
    const char *hs = p, *he, *portp = NULL;
    if (p < end && *p == '[') {
        he = memchr(p, ']', (size_t)(end - p));
        if (!he)
            return rl_error(REDIS_LOCK_EINVAL, "bad URL: unterminated [IPv6] host");
        hs = p + 1;
        if (he + 1 < end) {
            if (he[1] != ':')
                return rl_error(REDIS_LOCK_EINVAL, "bad URL: junk after [IPv6] host");
            portp = he + 2;
        }
    } else {
        he = memchr(p, ':', (size_t)(end - p));
        if (he)
            portp = he + 1;
        else
            he = end;
    }
    if (he == hs)
        return rl_error(REDIS_LOCK_EINVAL, "bad URL: empty host in the list of sentinels");
    int code = 0;
    *host = decode(hs, (size_t)(he - hs), &code);
    if (!*host)
        return code;
    *port = defport;
    if (portp)
        return parse_int(portp, (size_t)(end - portp), 1, 65535, "port", port);
    return 0;
}

/* After "redis+sentinel://": [[user]:pass@]host[:port][,host[:port]...]/MASTER[/db] */
static int parse_sentinel(rl_url *u, const char **pp)
{
    const char *p = *pp;
    const char *end = p + strcspn(p, "/?#");
    int rc = parse_userinfo(u, &p, end);
    if (rc)
        return rc;
    int n = 1;
    for (const char *q = p; q < end; q++)
        n += *q == ',';
    u->sentinels = rl_calloc((size_t)n, sizeof *u->sentinels);
    if (!u->sentinels)
        return rl_error(REDIS_LOCK_ENOMEM, "out of memory parsing URL");
    while (p < end || u->nsentinels == 0) {
        const char *comma = p < end ? memchr(p, ',', (size_t)(end - p)) : NULL;
        const char *e = comma ? comma : end;
        rl_sentinel_addr *a = &u->sentinels[u->nsentinels];
        rc = parse_hostport(p, e, 26379, &a->host, &a->port);
        if (a->host)
            u->nsentinels++; /* freed with the URL, even when its port was bad */
        if (rc)
            return rc;
        p = comma ? comma + 1 : end;
        if (comma && p == end)
            return rl_error(REDIS_LOCK_EINVAL, "bad URL: empty host in the list of sentinels");
    }
    if (*p != '/' || p[1] == '\0' || strchr("?#/", p[1]))
        return rl_error(REDIS_LOCK_EINVAL,
                        "bad URL: redis+sentinel:// needs the master's name: "
                        "redis+sentinel://host[:port][,host[:port]...]/MASTER[/db]");
    p++;
    size_t mlen = strcspn(p, "/?#");
    int code = 0;
    u->master_name = decode(p, mlen, &code);
    if (!u->master_name)
        return code;
    p += mlen;
    if (*p == '/') {
        p++;
        size_t dn = strcspn(p, "?#");
        if (dn && (rc = parse_int(p, dn, 0, 1 << 30, "database", &u->db)))
            return rc;
        p += dn;
    }
    *pp = p;
    return 0;
}

int rl_url_parse(rl_url *u, const char *url)
{
    int rc;
    memset(u, 0, sizeof *u);
    if (!url || !*url)
        return rl_error(REDIS_LOCK_EINVAL, "bad URL: empty");
    const char *p;
    u->insecure = -1;
    u->min_replicas = -1;
    u->replica_timeout_ms = -1;
    if (strncmp(url, "redis+sentinel://", 17) == 0 || strncmp(url, "rediss+sentinel://", 18) == 0) {
        u->sentinel = true;
        u->tls = url[5] == 's';
        p = url + (u->tls ? 18 : 17);
        if ((rc = parse_sentinel(u, &p)))
            goto fail;
        u->host = rl_strdup(u->sentinels[0].host); /* until the master is known */
        u->port = u->sentinels[0].port;
        if (!u->host) {
            rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory parsing URL");
            goto fail;
        }
    } else if (strncmp(url, "redis://", 8) == 0 || strncmp(url, "rediss://", 9) == 0) {
        u->tls = url[5] == 's';
        p = url + (u->tls ? 9 : 8);
        const char *end = p + strcspn(p, "/?#");
        if ((rc = parse_userinfo(u, &p, end)))
            goto fail;
        const char *hs = p, *he, *portp = NULL;
        if (*p == '[') {
            he = memchr(p, ']', (size_t)(end - p));
            if (!he) {
                rc = rl_error(REDIS_LOCK_EINVAL, "bad URL: unterminated [IPv6] host");
                goto fail;
            }
            hs = p + 1;
            if (he + 1 < end) {
                if (he[1] != ':') {
                    rc = rl_error(REDIS_LOCK_EINVAL, "bad URL: junk after [IPv6] host");
                    goto fail;
                }
                portp = he + 2;
            }
        } else {
            he = memchr(p, ':', (size_t)(end - p));
            if (he)
                portp = he + 1;
            else
                he = end;
        }
        if (he == hs) {
            u->host = rl_strdup("127.0.0.1");
        } else {
            int code = 0;
            u->host = decode(hs, (size_t)(he - hs), &code);
            if (!u->host) {
                rc = code;
                goto fail;
            }
        }
        if (!u->host) {
            rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory parsing URL");
            goto fail;
        }
        u->port = 6379;
        if (portp && (rc = parse_int(portp, (size_t)(end - portp), 1, 65535, "port", &u->port)))
            goto fail;
        p = end;
        if (*p == '/') {
            p++;
            size_t n = strcspn(p, "?#");
            if (n && (rc = parse_int(p, n, 0, 1 << 30, "database", &u->db)))
                goto fail;
            p += n;
        }
    } else if (strncmp(url, "unix://", 7) == 0) {
        u->unix_socket = true;
        p = url + 7;
        const char *slash = strchr(p, '/');
        if (!slash) {
            rc = rl_error(REDIS_LOCK_EINVAL, "bad URL: unix:// needs an absolute path");
            goto fail;
        }
        if ((rc = parse_userinfo(u, &p, slash)))
            goto fail;
        if (p != slash) {
            rc = rl_error(REDIS_LOCK_EINVAL, "bad URL: unix:// takes no host, only a path");
            goto fail;
        }
        size_t n = strcspn(p, "?#");
        int code = 0;
        u->host = decode(p, n, &code);
        if (!u->host) {
            rc = code;
            goto fail;
        }
        if (n <= 1) {
            rc = rl_error(REDIS_LOCK_EINVAL, "bad URL: unix:// needs a socket path");
            goto fail;
        }
        p += n;
    } else {
        const char *colon = strstr(url, "://");
        rc = rl_error(REDIS_LOCK_EINVAL,
                      "bad URL: unsupported scheme %.*s (use redis://, rediss://, "
                      "redis+sentinel://, rediss+sentinel:// or unix://)",
                      colon ? (int)(colon - url > 20 ? 20 : colon - url) : 0, url);
        if (!colon)
            rc = rl_error(REDIS_LOCK_EINVAL, "bad URL: no scheme (use redis://host:port/db or unix:///path)");
        goto fail;
    }
    if (*p == '?') {
        p++;
        while (*p && *p != '#') {
            size_t n = strcspn(p, "&#");
            if (n && (rc = parse_param(u, p, n)))
                goto fail;
            p += n;
            if (*p == '&')
                p++;
        }
    }
    if (*p == '#') {
        rc = rl_error(REDIS_LOCK_EINVAL, "bad URL: fragment not allowed");
        goto fail;
    }
    if ((rc = build_masked(u)))
        goto fail;
    return 0;
fail:
    rl_url_free(u);
    return rc;
}
