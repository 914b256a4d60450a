/* The Lua scripts of the wire protocol (DESIGN.md section 1) and their SHA1s for EVALSHA.
 * tests/test_scripts.c checks each SHA1 against SCRIPT LOAD, so an edit that forgets to
 * update one fails the suite. */
#include "internal.h"

#include <string.h>

static const struct {
    const char *source;
    const char *sha;
} scripts[RL_SCRIPT_COUNT] = {
    [RL_SCRIPT_ACQUIRE] = {
    "-- redis-lock acquire: KEYS lock, fence; ARGV id, px (0: none), fencing (1/0)\n"
    "local ok\n"
    "if ARGV[2] ~= '0' then\n"
    "    ok = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])\n"
    "else\n"
    "    ok = redis.call('set', KEYS[1], ARGV[1], 'NX')\n"
    "end\n"
    "if ok then\n"
    "    if ARGV[3] == '1' then\n"
    "        -- a missing counter starts from the server's clock (microseconds), so that\n"
    "        -- tokens keep increasing across a restart that lost the key\n"
    "        local t = redis.call('time')\n"
    "        redis.call('set', KEYS[2], t[1] .. string.format('%06d', tonumber(t[2])), 'NX')\n"
    "        -- a fence key that cannot count (wrong type, overflow) must not leave the lock set\n"
    "        local token = redis.pcall('incr', KEYS[2])\n"
    "        if type(token) == 'table' and token.err then\n"
    "            redis.call('del', KEYS[1])\n"
    "            return token\n"
    "        end\n"
    "        return {1, token}\n"
    "    end\n"
    "    return {1, 0}\n"
    "end\n"
    "return {0, redis.call('get', KEYS[1]), redis.call('pttl', KEYS[1])}\n",
        "e67270e6e27b07016308739f074a30832a5cad38"},
    [RL_SCRIPT_RELEASE] = {
    "-- redis-lock release: KEYS lock, signal; ARGV id, signal expiry (ms)\n"
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then\n"
    "    return 1\n"
    "else\n"
    "    redis.call('del', KEYS[2])\n"
    "    redis.call('lpush', KEYS[2], 1)\n"
    "    redis.call('pexpire', KEYS[2], ARGV[2])\n"
    "    redis.call('del', KEYS[1])\n"
    "    return 0\n"
    "end\n",
        "afa9def0592c6c668d10b2d83f6eb0c7f933cdea"},
    [RL_SCRIPT_EXTEND] = {
    "-- redis-lock extend: KEYS lock; ARGV id, expiry (ms)\n"
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then\n"
    "    return 1\n"
    "elseif redis.call('pttl', KEYS[1]) < 0 then\n"
    "    return 2\n"
    "else\n"
    "    redis.call('pexpire', KEYS[1], ARGV[2])\n"
    "    return 0\n"
    "end\n",
        "9a718f17dbe74c2cffb2f2401021ee09d3cdfdc7"},
    [RL_SCRIPT_RESET] = {
    "-- redis-lock reset: KEYS lock, signal; ARGV signal expiry (ms)\n"
    "redis.call('del', KEYS[2])\n"
    "redis.call('lpush', KEYS[2], 1)\n"
    "redis.call('pexpire', KEYS[2], ARGV[1])\n"
    "return redis.call('del', KEYS[1])\n",
        "aac13ee5cb3a5ee3df3c16a39946885b9105d37e"},
};

const char *rl_script_source(int script)
{
    return scripts[script].source;
}

const char *rl_script_sha(int script)
{
    return scripts[script].sha;
}

bool rl_is_noscript(const redisReply *r)
{
    return r && r->type == REDIS_REPLY_ERROR && r->len >= 8 && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

static int append(rl_buf *b, const char *verb, const char *body, int nkeys, const char **keys,
                  const size_t *keylens, int nargs, const char **args, const size_t *arglens)
{
    enum { MAXARGV = 16 };
    const char *argv[MAXARGV];
    size_t lens[MAXARGV];
    char numkeys[8];
    int n = 0;
    if (3 + nkeys + nargs > MAXARGV)
        return rl_error(REDIS_LOCK_EINVAL, "too many script arguments");
    numkeys[0] = (char)('0' + nkeys);
    numkeys[1] = '\0';
    argv[n] = verb, lens[n++] = strlen(verb);
    argv[n] = body, lens[n++] = strlen(body);
    argv[n] = numkeys, lens[n++] = 1;
    for (int i = 0; i < nkeys; i++)
        argv[n] = keys[i], lens[n++] = keylens ? keylens[i] : strlen(keys[i]);
    for (int i = 0; i < nargs; i++)
        argv[n] = args[i], lens[n++] = arglens ? arglens[i] : strlen(args[i]);
    return rl_buf_add(b, n, argv, lens);
}

int rl_script_append(rl_buf *b, int script, int nkeys, const char **keys, const size_t *keylens,
                     int nargs, const char **args, const size_t *arglens)
{
    return append(b, "EVALSHA", scripts[script].sha, nkeys, keys, keylens, nargs, args, arglens);
}

int rl_script(redis_lock_client *c, rl_conn *conn, int script, redisReply **out, int nkeys,
              const char **keys, const size_t *keylens, int nargs, const char **args,
              const size_t *arglens)
{
    return rl_script_in(c, conn, script, out, nkeys, keys, keylens, nargs, args, arglens, NULL,
                        0);
}

int rl_script_in(redis_lock_client *c, rl_conn *conn, int script, redisReply **out, int nkeys,
                 const char **keys, const size_t *keylens, int nargs, const char **args,
                 const size_t *arglens, char *scratch, size_t scratch_cap)
{
    *out = NULL;
    for (int attempt = 0; attempt < 2; attempt++) {
        rl_buf b = {0};
        rl_buf_borrow(&b, scratch, scratch_cap);
        int rc = attempt == 0 ? rl_script_append(&b, script, nkeys, keys, keylens, nargs, args,
                                                 arglens)
                              : append(&b, "EVAL", scripts[script].source, nkeys, keys, keylens,
                                       nargs, args, arglens);
        if (!rc)
            rc = rl_conn_pipeline(c, conn, &b, out);
        rl_buf_free(&b);
        if (rc)
            return rc;
        if (attempt == 0 && rl_is_noscript(*out)) {
            /* The server lost its script cache (restart, SCRIPT FLUSH): EVAL loads it. */
            freeReplyObject(*out);
            *out = NULL;
            continue;
        }
        return rl_reply_error(*out, "lock script failed");
    }
    return 0;
}
