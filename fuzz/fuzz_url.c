/* Fuzz target: rl_url_parse / rl_url_free.
 *
 * Invariants checked on every input, beyond "no crash, no leak, no UB":
 *   - success: host set and non-empty, port 1..65535 (tcp), db 0..2^30, masked set;
 *     ":***@" appears in masked when there is a password (and not otherwise, unless the
 *     host or user holds those very characters);
 *   - the masked URL does not depend on the password: the same user/host/port/db with a
 *     different password (rebuilt as a fully %-encoded URL) masks to the same string, so
 *     no byte of the password can be in it;
 *   - failure: the struct is left zeroed, last_error says why;
 *   - secret mode (first byte 0x01 / 0x02): the rest goes after a known secret,
 *     "redis://u:<SECRET>@<fuzz>" or "unix://u:<SECRET>@<fuzz>" (the secret is part of the
 *     password whatever the rest is); neither masked nor the error text may contain it. */
#include "fuzz.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET "S3cr3tPw.7f"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    return 0;
}

/* %-encode every byte but [A-Za-z0-9] (keep_slash: '/' too) */
static void encode(char *out, size_t cap, const char *s, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s && o + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            (keep_slash && ch == '/')) {
            out[o++] = (char)ch;
        } else {
            out[o++] = '%';
            out[o++] = hex[ch >> 4];
            out[o++] = hex[ch & 15];
        }
    }
    out[o] = '\0';
}

static void check_zeroed(const rl_url *u)
{
    static const rl_url zero;
    FUZZ_CHECK(memcmp(u, &zero, sizeof zero) == 0, "a failed parse left fields set");
}

/* Rebuild the URL from its parts with another password; it must mask the same. */
static void check_mask_independent(const rl_url *u)
{
    size_t cap = 3 * (strlen(u->host) + (u->user ? strlen(u->user) : 0)) + 128;
    char *eu = malloc(cap), *eh = malloc(cap), *url = malloc(3 * cap);
    FUZZ_CHECK(eu && eh && url, "out of memory in the fuzz target");
    encode(eu, cap, u->user ? u->user : "", false);
    const char *pw = u->password && strcmp(u->password, "Zz9") == 0 ? "Yy8" : "Zz9";
    char *cred = malloc(cap + 16);
    FUZZ_CHECK(cred, "out of memory in the fuzz target");
    if (u->password || u->user)
        snprintf(cred, cap + 16, "%s%s%s@", eu, u->password ? ":" : "", u->password ? pw : "");
    else
        cred[0] = '\0';
    if (u->unix_socket) {
        FUZZ_CHECK(u->host[0] == '/', "unix socket path %s is not absolute", u->host);
        encode(eh, cap, u->host + 1, true);
        snprintf(url, 3 * cap, "unix://%s/%s?db=%d", cred, eh, u->db);
    } else {
        encode(eh, cap, u->host, false);
        snprintf(url, 3 * cap, "%s://%s%s:%d/%d", u->tls ? "rediss" : "redis", cred, eh,
                 u->port, u->db);
    }
    free(cred);
    rl_url v;
    int rc = rl_url_parse(&v, url);
    FUZZ_CHECK(rc == 0, "rebuilt URL %s does not parse: %s", url, redis_lock_last_error());
    FUZZ_CHECK(v.unix_socket == u->unix_socket && v.tls == u->tls &&
                   strcmp(v.host, u->host) == 0 &&
                   v.port == u->port && v.db == u->db,
               "rebuilt URL %s parses to other parts", url);
    FUZZ_CHECK(strcmp(v.masked, u->masked) == 0,
               "masked URL depends on the password: %s vs %s", u->masked, v.masked);
    rl_url_free(&v);
    free(eu);
    free(eh);
    free(url);
}

static void check_parsed(const rl_url *u)
{
    FUZZ_CHECK(u->host && u->host[0], "parsed without a host");
    FUZZ_CHECK(u->masked, "parsed without a masked URL");
    FUZZ_CHECK(u->db >= 0 && u->db <= 1 << 30, "db %d out of range", u->db);
    if (!u->unix_socket)
        FUZZ_CHECK(u->port >= 1 && u->port <= 65535, "port %d out of range", u->port);
    if (u->password)
        FUZZ_CHECK(strstr(u->masked, ":***@") != NULL, "masked URL %s hides the password "
                   "without saying so", u->masked);
    else
        FUZZ_CHECK(strstr(u->masked, ":***@") == NULL || strstr(u->host, "***") ||
                       (u->user && strstr(u->user, "***")),
                   "masked URL %s shows a password that is not there", u->masked);
    check_mask_independent(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    bool secret_mode = size > 0 && (data[0] == 1 || data[0] == 2);
    bool unix_mode = size > 0 && data[0] == 2;
    const uint8_t *body = secret_mode ? data + 1 : data;
    size_t blen = secret_mode ? size - 1 : size;
    char *s = malloc(blen + 64);
    if (!s)
        return 0;
    size_t o = 0;
    if (secret_mode) {
        const char *pre = unix_mode ? "unix://u:" SECRET "@" : "redis://u:" SECRET "@";
        o = strlen(pre);
        memcpy(s, pre, o);
    }
    memcpy(s + o, body, blen); /* a NUL inside ends the C string: URLs cannot hold NUL */
    s[o + blen] = '\0';
    if (secret_mode && strstr(s + o, SECRET)) {
        free(s); /* the secret copied into the host or path: it may show there */
        return 0;
    }

    rl_url u;
    memset(&u, 0x5a, sizeof u); /* the parser must initialise every field itself */
    int rc = rl_url_parse(&u, s);
    if (rc == 0) {
        check_parsed(&u);
        if (secret_mode)
            FUZZ_CHECK(strstr(u.masked, SECRET) == NULL, "masked URL %s shows the password",
                       u.masked);
        rl_url_free(&u);
        check_zeroed(&u);
    } else {
        FUZZ_CHECK(rc == REDIS_LOCK_EINVAL || rc == REDIS_LOCK_ENOMEM, "unexpected code %d", rc);
        FUZZ_CHECK(redis_lock_last_error()[0] != '\0', "failure without a message");
        check_zeroed(&u);
        if (secret_mode)
            FUZZ_CHECK(strstr(redis_lock_last_error(), SECRET) == NULL,
                       "error message shows the password: %s", redis_lock_last_error());
    }
    free(s);
    return 0;
}
