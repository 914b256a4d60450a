/* The Lua scripts of the wire protocol, the fair lock, the shared lock and the semaphore
 * (docs/design.md) and their SHA1s for EVALSHA, and
 * the one way every script call is sent: EVALSHA, and the calls refused with NOSCRIPT
 * again as EVAL. tests/test_scripts.c checks each SHA1 against SCRIPT LOAD, so an
 * edit that forgets to update one fails the suite. */
#include "internal.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

/* Lua pieces that several scripts share, spliced in as string literals (a script's text,
 * and so its SHA1, stays what it was). */
/* An integer as Redis wants it in a command (no exponent). */
#define LUA_NUM \
    "local function num(x)\n" \
    "    return string.format('%d', x)\n" \
    "end\n"

/* The server's clock in ms. */
#define LUA_NOW_MS \
    "local function now_ms()\n" \
    "    local t = redis.call('time')\n" \
    "    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n" \
    "end\n"

/* The fair lock's queue: purge lapsed waiters, grant to one (both fair scripts). */
#define LUA_FAIR_QUEUE \
    "-- drop the waiters whose queue lease lapsed; a grant one of them never claimed is deleted\n" \
    "local function purge(lock, queue, lease, now)\n" \
    "    local dead = redis.call('zrangebyscore', lease, '-inf', num(now))\n" \
    "    for _, w in ipairs(dead) do\n" \
    "        redis.call('zrem', queue, w)\n" \
    "        redis.call('zrem', lease, w)\n" \
    "        if redis.call('get', lock) == w then\n" \
    "            redis.call('del', lock)\n" \
    "        end\n" \
    "    end\n" \
    "end\n" \
    "-- give the lock to waiter w for what is left of its lease, and wake only it\n" \
    "local function grant(lock, lease, prefix, w, now)\n" \
    "    local left = tonumber(redis.call('zscore', lease, w)) - now\n" \
    "    if left < 1 then\n" \
    "        left = 1\n" \
    "    end\n" \
    "    redis.call('set', lock, w, 'PX', num(left))\n" \
    "    local wake = prefix .. w\n" \
    "    redis.call('del', wake)\n" \
    "    redis.call('lpush', wake, 1)\n" \
    "    redis.call('pexpire', wake, num(left))\n" \
    "end\n"

/* The shared lock's keys expire with the latest shared holder (its scripts define now). */
#define LUA_SHARED_FOLLOW \
    "-- lock:NAME's expiry, and the holders' set's, follow the latest shared holder's\n" \
    "local function follow(lock, shared)\n" \
    "    local last = redis.call('zrange', shared, -1, -1, 'WITHSCORES')\n" \
    "    if last[2] == 'inf' then\n" \
    "        redis.call('persist', lock)\n" \
    "        redis.call('persist', shared)\n" \
    "    else\n" \
    "        local left = tonumber(last[2]) - now\n" \
    "        if left < 1 then\n" \
    "            left = 1\n" \
    "        end\n" \
    "        redis.call('pexpire', lock, num(left))\n" \
    "        redis.call('pexpire', shared, num(left))\n" \
    "    end\n" \
    "end\n"

/* The semaphore's keys expire with the latest permit (its scripts define now). */
#define LUA_SEM_FOLLOW \
    "-- the permits' key and the limit's live as long as the latest permit\n" \
    "local function follow(permits, limit)\n" \
    "    local last = redis.call('zrange', permits, -1, -1, 'WITHSCORES')\n" \
    "    if not last[2] then\n" \
    "        redis.call('del', limit)\n" \
    "        return\n" \
    "    end\n" \
    "    if last[2] == 'inf' then\n" \
    "        redis.call('persist', permits)\n" \
    "        redis.call('persist', limit)\n" \
    "    else\n" \
    "        local left = tonumber(last[2]) - now\n" \
    "        if left < 1 then\n" \
    "            left = 1\n" \
    "        end\n" \
    "        redis.call('pexpire', permits, num(left))\n" \
    "        redis.call('pexpire', limit, num(left))\n" \
    "    end\n" \
    "end\n"

static const struct {
    const char *source;
    const char *sha;
} scripts[RL_SCRIPT_COUNT] = {
    [RL_SCRIPT_ACQUIRE] = {
    "-- redis-lock acquire: KEYS lock, fence, writers; ARGV id, px (0: none), fencing (1/0),\n"
    "-- writer lease (ms; 0: do not wait as a writer), shared marker\n"
    "local ok\n"
    "if ARGV[2] ~= '0' then\n"
    "    ok = redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2])\n"
    "else\n"
    "    ok = redis.call('set', KEYS[1], ARGV[1], 'NX')\n"
    "end\n"
    "if ok then\n"
    "    redis.call('zrem', KEYS[3], ARGV[1])\n"
    "    if ARGV[3] == '1' then\n"
    "        -- the token is the larger of counter + 1 and the server's clock (microseconds),\n"
    "        -- so that tokens keep increasing across a restart that lost the key and a\n"
    "        -- failover to a replica that missed the latest increments\n"
    "        local t = redis.call('time')\n"
    "        local now = t[1] .. string.format('%06d', tonumber(t[2]))\n"
    "        redis.call('set', KEYS[2], now, 'NX')\n"
    "        -- a fence key that cannot count (wrong type, overflow) must not leave the lock set\n"
    "        local token = redis.pcall('incr', KEYS[2])\n"
    "        if type(token) == 'table' and token.err then\n"
    "            redis.call('del', KEYS[1])\n"
    "            return token\n"
    "        end\n"
    "        if token < tonumber(now) then\n"
    "            redis.call('set', KEYS[2], now)\n"
    "            return {1, redis.call('incrby', KEYS[2], 0)}\n"
    "        end\n"
    "        return {1, token}\n"
    "    end\n"
    "    return {1, 0}\n"
    "end\n"
    "local owner = redis.call('get', KEYS[1])\n"
    "local lease = -1\n"
    "-- a writer waiting on shared holders (or queued as one already) keeps its place\n"
    "if ARGV[4] ~= '0' and (owner == ARGV[5] or redis.call('exists', KEYS[3]) == 1) then\n"
    "    local t = redis.call('time')\n"
    "    local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "    lease = tonumber(ARGV[4])\n"
    "    redis.call('zadd', KEYS[3], string.format('%d', now + lease), ARGV[1])\n"
    "    if redis.call('pttl', KEYS[3]) < lease then\n"
    "        redis.call('pexpire', KEYS[3], ARGV[4])\n"
    "    end\n"
    "end\n"
    "return {0, owner, redis.call('pttl', KEYS[1]), lease}\n",
        "279722c9a02a02df9a849fcbfb2214e4e13a54cc"},
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
    [RL_SCRIPT_FAIR_TRY] = {
    "-- redis-lock fair try: KEYS lock, fence, queue, lease; ARGV id, px (0: none), fencing (1/0),\n"
    "-- queue lease (ms), wake prefix, enqueue (1/0)\n"
    LUA_NOW_MS LUA_NUM LUA_FAIR_QUEUE
    "local lock, fence, queue, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4]\n"
    "local id, px, lease_ms, prefix = ARGV[1], ARGV[2], tonumber(ARGV[4]), ARGV[5]\n"
    "local now = now_ms()\n"
    "purge(lock, queue, lease, now)\n"
    "local function take()\n"
    "    if px ~= '0' then\n"
    "        redis.call('set', lock, id, 'PX', px)\n"
    "    else\n"
    "        redis.call('set', lock, id)\n"
    "    end\n"
    "    redis.call('zrem', queue, id)\n"
    "    redis.call('zrem', lease, id)\n"
    "    redis.call('del', prefix .. id)\n"
    "    if ARGV[3] == '1' then\n"
    "        -- max(counter + 1, clock in us), as the acquire script\n"
    "        local t = redis.call('time')\n"
    "        local now = t[1] .. string.format('%06d', tonumber(t[2]))\n"
    "        redis.call('set', fence, now, 'NX')\n"
    "        local token = redis.pcall('incr', fence)\n"
    "        if type(token) == 'table' and token.err then\n"
    "            redis.call('del', lock)\n"
    "            return token\n"
    "        end\n"
    "        if token < tonumber(now) then\n"
    "            redis.call('set', fence, now)\n"
    "            return {1, redis.call('incrby', fence, 0)}\n"
    "        end\n"
    "        return {1, token}\n"
    "    end\n"
    "    return {1, 0}\n"
    "end\n"
    "local owner = redis.call('get', lock)\n"
    "local queued = redis.call('zscore', queue, id)\n"
    "if owner == id then\n"
    "    if queued then\n"
    "        return take()\n"
    "    end\n"
    "    return {0, owner, redis.call('pttl', lock), -1}\n"
    "end\n"
    "if not owner then\n"
    "    local head = redis.call('zrange', queue, 0, 0)[1]\n"
    "    if not head or head == id then\n"
    "        return take()\n"
    "    end\n"
    "    grant(lock, lease, prefix, head, now)\n"
    "    owner = head\n"
    "end\n"
    "if ARGV[6] == '1' then\n"
    "    if not queued then\n"
    "        local last = redis.call('zrange', queue, -1, -1, 'WITHSCORES')\n"
    "        local seq = 1\n"
    "        if last[2] then\n"
    "            seq = tonumber(last[2]) + 1\n"
    "        end\n"
    "        redis.call('zadd', queue, num(seq), id)\n"
    "    end\n"
    "    redis.call('zadd', lease, num(now + lease_ms), id)\n"
    "    for _, k in ipairs({queue, lease}) do\n"
    "        if redis.call('pttl', k) < lease_ms then\n"
    "            redis.call('pexpire', k, num(lease_ms))\n"
    "        end\n"
    "    end\n"
    "end\n"
    "local next = -1\n"
    "local first = redis.call('zrange', lease, 0, 0, 'WITHSCORES')\n"
    "if first[2] then\n"
    "    next = tonumber(first[2]) - now\n"
    "end\n"
    "return {0, owner, redis.call('pttl', lock), next}\n",
        "9a4b4bfeb7e1fc97a0e56d5c5b693dfba1009067"},
    [RL_SCRIPT_FAIR_LEAVE] = {
    "-- redis-lock fair release/leave/give back: KEYS lock, signal, queue, lease;\n"
    "-- ARGV id, signal expiry (ms), mode (release, leave, giveback), wake prefix\n"
    LUA_NOW_MS LUA_NUM LUA_FAIR_QUEUE
    "local lock, signal, queue, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4]\n"
    "local id, mode, prefix = ARGV[1], ARGV[3], ARGV[4]\n"
    "local owner = redis.call('get', lock)\n"
    "if mode == 'release' and owner ~= id then\n"
    "    return 1\n"
    "end\n"
    "local queued = redis.call('zscore', queue, id)\n"
    "redis.call('zrem', queue, id)\n"
    "redis.call('zrem', lease, id)\n"
    "redis.call('del', prefix .. id)\n"
    "if owner ~= id or (mode == 'leave' and not queued) then\n"
    "    return 0\n"
    "end\n"
    "local now = now_ms()\n"
    "purge(lock, queue, lease, now)\n"
    "local head = redis.call('zrange', queue, 0, 0)[1]\n"
    "if head then\n"
    "    grant(lock, lease, prefix, head, now)\n"
    "else\n"
    "    redis.call('del', signal)\n"
    "    redis.call('lpush', signal, 1)\n"
    "    redis.call('pexpire', signal, ARGV[2])\n"
    "    redis.call('del', lock)\n"
    "end\n"
    "return 0\n",
        "3a998637476cd891dac4478107c48a37563d0e3b"},
    [RL_SCRIPT_SHARED_TRY] = {
    "-- redis-lock shared try: KEYS lock, fence, shared, writers; ARGV id, px (0: none), fencing\n"
    "-- (1/0), shared marker\n"
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    LUA_NUM
    LUA_SHARED_FOLLOW
    "local lock, fence, shared, writers = KEYS[1], KEYS[2], KEYS[3], KEYS[4]\n"
    "local id, px, marker = ARGV[1], ARGV[2], ARGV[4]\n"
    "redis.call('zremrangebyscore', shared, '-inf', num(now))\n"
    "redis.call('zremrangebyscore', writers, '-inf', num(now))\n"
    "local owner = redis.call('get', lock)\n"
    "if owner == marker and redis.call('zcard', shared) == 0 then\n"
    "    redis.call('del', lock)\n"
    "    owner = false\n"
    "end\n"
    "if not owner then\n"
    "    -- holders left without the marker were reset: they hold nothing\n"
    "    redis.call('del', shared)\n"
    "end\n"
    "if owner and owner ~= marker then\n"
    "    return {0, owner, redis.call('pttl', lock), -1}\n"
    "end\n"
    "if redis.call('zscore', shared, id) then\n"
    "    return {0, id, redis.call('pttl', lock), -1}\n"
    "end\n"
    "local first = redis.call('zrange', writers, 0, 0, 'WITHSCORES')\n"
    "if first[2] then\n"
    "    -- a writer waits: no new shared holder until it has had its turn\n"
    "    return {0, owner, redis.call('pttl', lock), tonumber(first[2]) - now}\n"
    "end\n"
    "if px ~= '0' then\n"
    "    redis.call('zadd', shared, num(now + tonumber(px)), id)\n"
    "else\n"
    "    redis.call('zadd', shared, '+inf', id)\n"
    "end\n"
    "redis.call('set', lock, marker)\n"
    "follow(lock, shared)\n"
    "if ARGV[3] == '1' then\n"
    "    -- max(counter + 1, clock in us), as the acquire script\n"
    "    local now = t[1] .. string.format('%06d', tonumber(t[2]))\n"
    "    redis.call('set', fence, now, 'NX')\n"
    "    local token = redis.pcall('incr', fence)\n"
    "    if type(token) == 'table' and token.err then\n"
    "        redis.call('zrem', shared, id)\n"
    "        if redis.call('zcard', shared) == 0 then\n"
    "            redis.call('del', lock)\n"
    "        end\n"
    "        return token\n"
    "    end\n"
    "    if token < tonumber(now) then\n"
    "        redis.call('set', fence, now)\n"
    "        return {1, redis.call('incrby', fence, 0)}\n"
    "    end\n"
    "    return {1, token}\n"
    "end\n"
    "return {1, 0}\n",
        "c6a982a4b90ad21b11623e4d947182a0f8403d65"},
    [RL_SCRIPT_SHARED_RELEASE] = {
    "-- redis-lock shared release: KEYS lock, shared, signal; ARGV id, signal expiry (ms),\n"
    "-- shared marker\n"
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    LUA_NUM
    LUA_SHARED_FOLLOW
    "local lock, shared, signal = KEYS[1], KEYS[2], KEYS[3]\n"
    "redis.call('zremrangebyscore', shared, '-inf', num(now))\n"
    "local held = redis.call('zscore', shared, ARGV[1])\n"
    "redis.call('zrem', shared, ARGV[1])\n"
    "if not held or redis.call('get', lock) ~= ARGV[3] then\n"
    "    return 1\n"
    "end\n"
    "if redis.call('zcard', shared) == 0 then\n"
    "    redis.call('del', signal)\n"
    "    redis.call('lpush', signal, 1)\n"
    "    redis.call('pexpire', signal, ARGV[2])\n"
    "    redis.call('del', lock)\n"
    "else\n"
    "    follow(lock, shared)\n"
    "end\n"
    "return 0\n",
        "c53aa81bd3bfccb13eab29545b5a6440631ab55c"},
    [RL_SCRIPT_SHARED_EXTEND] = {
    "-- redis-lock shared extend: KEYS lock, shared; ARGV id, expiry (ms), shared marker\n"
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    LUA_NUM
    "local lock, shared = KEYS[1], KEYS[2]\n"
    "local s = redis.call('zscore', shared, ARGV[1])\n"
    "if redis.call('get', lock) ~= ARGV[3] or not s or (s ~= 'inf' and tonumber(s) <= now) then\n"
    "    return 1\n"
    "end\n"
    "if s == 'inf' then\n"
    "    return 2\n"
    "end\n"
    "local px = tonumber(ARGV[2])\n"
    "redis.call('zadd', shared, num(now + px), ARGV[1])\n"
    "for _, k in ipairs({lock, shared}) do\n"
    "    local left = redis.call('pttl', k)\n"
    "    if left >= 0 and left < px then\n"
    "        redis.call('pexpire', k, ARGV[2])\n"
    "    end\n"
    "end\n"
    "return 0\n",
        "517c552ffd521c4195f12c7052011ebf01b1b36a"},
    [RL_SCRIPT_SEM_TRY] = {
    "-- redis-lock semaphore try: KEYS permits, limit, fence; ARGV id, px (0: none), fencing (1/0),\n"
    "-- limit\n"
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    LUA_NUM
    LUA_SEM_FOLLOW
    "local permits, limitkey, fence = KEYS[1], KEYS[2], KEYS[3]\n"
    "local id, px, limit = ARGV[1], ARGV[2], tonumber(ARGV[4])\n"
    "redis.call('zremrangebyscore', permits, '-inf', num(now))\n"
    "local held = redis.call('zcard', permits)\n"
    "local cur = redis.call('get', limitkey)\n"
    "if cur and held > 0 and tonumber(cur) ~= limit then\n"
    "    return {-1, tonumber(cur)}\n"
    "end\n"
    "local mine = redis.call('zscore', permits, id)\n"
    "if mine then\n"
    "    local left = -1\n"
    "    if mine ~= 'inf' then\n"
    "        left = tonumber(mine) - now\n"
    "    end\n"
    "    return {0, id, left, -1}\n"
    "end\n"
    "if held < limit then\n"
    "    if px ~= '0' then\n"
    "        redis.call('zadd', permits, num(now + tonumber(px)), id)\n"
    "    else\n"
    "        redis.call('zadd', permits, '+inf', id)\n"
    "    end\n"
    "    redis.call('set', limitkey, ARGV[4])\n"
    "    follow(permits, limitkey)\n"
    "    if ARGV[3] == '1' then\n"
    "        redis.call('set', fence, t[1] .. string.format('%06d', tonumber(t[2])), 'NX')\n"
    "        local token = redis.pcall('incr', fence)\n"
    "        if type(token) == 'table' and token.err then\n"
    "            redis.call('zrem', permits, id)\n"
    "            follow(permits, limitkey)\n"
    "            return token\n"
    "        end\n"
    "        return {1, token}\n"
    "    end\n"
    "    return {1, 0}\n"
    "end\n"
    "-- full: wait for a release, or for the earliest permit's expiry\n"
    "local first = redis.call('zrange', permits, 0, 0, 'WITHSCORES')\n"
    "local left = -1\n"
    "if first[2] ~= 'inf' then\n"
    "    left = tonumber(first[2]) - now\n"
    "end\n"
    "return {0, false, left, -1}\n",
        "bc468b02bc17e0d0bf8069ae4dca8a5f7ec837c1"},
    [RL_SCRIPT_SEM_RELEASE] = {
    "-- redis-lock semaphore release: KEYS permits, limit, signal; ARGV id, signal expiry (ms)\n"
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    LUA_NUM
    LUA_SEM_FOLLOW
    "local permits, limitkey, signal = KEYS[1], KEYS[2], KEYS[3]\n"
    "redis.call('zremrangebyscore', permits, '-inf', num(now))\n"
    "if not redis.call('zscore', permits, ARGV[1]) then\n"
    "    return 1\n"
    "end\n"
    "-- read before follow, which deletes the limit with the last permit\n"
    "local limit = tonumber(redis.call('get', limitkey) or '1')\n"
    "redis.call('zrem', permits, ARGV[1])\n"
    "follow(permits, limitkey)\n"
    "-- one wake-up per free permit, never more than the limit's worth\n"
    "redis.call('lpush', signal, 1)\n"
    "redis.call('ltrim', signal, 0, limit - 1)\n"
    "redis.call('pexpire', signal, ARGV[2])\n"
    "return 0\n",
        "52e9b5400a2d84a074412602950edf30e1bbf3a9"},
    [RL_SCRIPT_SEM_EXTEND] = {
    "-- redis-lock semaphore extend: KEYS permits, limit; ARGV id, expiry (ms)\n"
    "local t = redis.call('time')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    LUA_NUM
    LUA_SEM_FOLLOW
    "local permits, limitkey = KEYS[1], KEYS[2]\n"
    "local s = redis.call('zscore', permits, ARGV[1])\n"
    "if not s or (s ~= 'inf' and tonumber(s) <= now) then\n"
    "    return 1\n"
    "end\n"
    "if s == 'inf' then\n"
    "    return 2\n"
    "end\n"
    "redis.call('zadd', permits, num(now + tonumber(ARGV[2])), ARGV[1])\n"
    "follow(permits, limitkey)\n"
    "return 0\n",
        "f2f0e7437bcd8b3d50d41092b99f294b4f745c35"},
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

static int append(rl_buf *b, const char *verb, const char *body, const rl_script_call *call)
{
    enum { MAXARGV = 3 + 2 * RL_SCRIPT_MAXARGS };
    const char *argv[MAXARGV];
    size_t lens[MAXARGV];
    char numkeys[8];
    int n = 0;
    if (call->nkeys < 0 || call->nkeys > RL_SCRIPT_MAXARGS || call->nargs < 0 ||
        call->nargs > RL_SCRIPT_MAXARGS)
        return rl_error(REDIS_LOCK_EINVAL, "too many script arguments");
    numkeys[0] = (char)('0' + call->nkeys);
    numkeys[1] = '\0';
    argv[n] = verb, lens[n++] = strlen(verb);
    argv[n] = body, lens[n++] = strlen(body);
    argv[n] = numkeys, lens[n++] = 1;
    for (int i = 0; i < call->nkeys; i++)
        argv[n] = call->keys[i], lens[n++] = call->keylens[i];
    for (int i = 0; i < call->nargs; i++)
        argv[n] = call->args[i], lens[n++] = strlen(call->args[i]);
    return rl_buf_add(b, n, argv, lens);
}

int rl_script_append(rl_buf *b, int script, const rl_script_call *call)
{
    return append(b, "EVALSHA", scripts[script].sha, call);
}

/* Replica acknowledgement: "WAIT min_replicas replica_timeout_ms" behind the scripts. */
static int append_wait(redis_lock_client *c, rl_buf *b)
{
    char n[16], ms[16];
    snprintf(n, sizeof n, "%d", c->url.min_replicas);
    snprintf(ms, sizeof ms, "%d", c->url.replica_timeout_ms);
    const char *argv[3] = {"WAIT", n, ms};
    return rl_buf_add(b, 3, argv, NULL);
}

/* The number of replicas a WAIT reply counts (-1: an error reply, logged). */
static long long wait_count(redis_lock_client *c, const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer;
    rl_log(c, LOG_WARNING, "WAIT: %.*s", (int)(r->str && r->len < 200 ? r->len : 0),
           r->str ? r->str : "");
    return -1;
}

/* Send b and read one reply for each entry of out whose slot is wanted (all when only
 * is NULL), then the WAIT behind them when acked is set (it may take the replica timeout
 * on top of the command timeout). On error every reply read so far is freed. */
static int send_and_read(redis_lock_client *c, rl_conn *conn, const rl_buf *b, redisReply **out,
                         const bool *only, int n, long long *acked)
{
    int rc = rl_conn_send(c, conn, b->data, b->len);
    int64_t deadline = rl_now_ms() + c->opts.command_timeout_ms;
    for (int i = 0; !rc && i < n; i++)
        if (!only || only[i])
            rc = rl_conn_read(c, conn, &out[i], deadline, -1);
    if (!rc && acked) {
        redisReply *w = NULL;
        rc = rl_conn_read(c, conn, &w,
                          rl_now_ms() + c->opts.command_timeout_ms + c->url.replica_timeout_ms,
                          -1);
        if (!rc)
            *acked = wait_count(c, w);
        if (w)
            freeReplyObject(w);
    }
    if (rc)
        for (int i = 0; i < n; i++)
            if (!only || only[i]) {
                if (out[i])
                    freeReplyObject(out[i]);
                out[i] = NULL;
            }
    return rc;
}

int rl_script_run(redis_lock_client *c, rl_conn *conn, int script, const rl_script_call *calls,
                  int n, redisReply **out, char *scratch, size_t scratch_cap)
{
    return rl_script_run_acked(c, conn, script, calls, n, out, scratch, scratch_cap, NULL);
}

int rl_replica_wait(redis_lock_client *c, rl_conn *conn, long long *acked)
{
    *acked = INT_MAX;
    if (c->url.min_replicas <= 0)
        return 0;
    rl_buf b = {0};
    int rc = append_wait(c, &b);
    if (!rc)
        rc = send_and_read(c, conn, &b, NULL, NULL, 0, acked);
    rl_buf_free(&b);
    return rc;
}

int rl_replica_error(redis_lock_client *c, long long acked, const char *what)
{
    return rl_error(REDIS_LOCK_EREPLICA,
                    "%s: too few replicas acknowledged (%lld of min_replicas %d within %d ms)",
                    what, acked < 0 ? 0 : acked, c->url.min_replicas, c->url.replica_timeout_ms);
}

int rl_script_run_acked(redis_lock_client *c, rl_conn *conn, int script,
                        const rl_script_call *calls, int n, redisReply **out, char *scratch,
                        size_t scratch_cap, long long *acked)
{
    if (acked) {
        *acked = INT_MAX;
        if (c->url.min_replicas <= 0)
            acked = NULL;
    }
    enum { INLINE = 64 };
    bool inline_refused[INLINE], *refused = NULL;
    rl_buf b = {0};
    int rc = 0, nrefused = 0;
    for (int i = 0; i < n; i++)
        out[i] = NULL;
    rl_buf_borrow(&b, scratch, scratch_cap);
    for (int i = 0; i < n && !rc; i++)
        rc = rl_script_append(&b, script, &calls[i]);
    if (!rc && acked)
        rc = append_wait(c, &b);
    if (!rc)
        rc = send_and_read(c, conn, &b, out, NULL, n, acked);
    rl_buf_free(&b);
    if (rc)
        return rc;
    for (int i = 0; i < n; i++)
        nrefused += rl_is_noscript(out[i]);
    if (!nrefused)
        return 0;
    /* The server's script cache is cold (a restart, SCRIPT FLUSH): those calls did not
     * run. Send them again at once as EVAL with the script's source, which also caches
     * it (a renewal cannot wait). */
    refused = n <= INLINE ? inline_refused : rl_calloc((size_t)n, sizeof *refused);
    if (!refused) {
        rc = rl_error(REDIS_LOCK_ENOMEM, "out of memory sending a script");
        goto fail;
    }
    rl_buf_borrow(&b, scratch, scratch_cap);
    for (int i = 0; i < n && !rc; i++) {
        refused[i] = rl_is_noscript(out[i]);
        if (!refused[i])
            continue;
        freeReplyObject(out[i]);
        out[i] = NULL;
        rc = append(&b, "EVAL", scripts[script].source, &calls[i]);
    }
    if (!rc && acked)
        rc = append_wait(c, &b); /* what the re-sent calls wrote must be acknowledged too */
    if (!rc)
        rc = send_and_read(c, conn, &b, out, refused, n, acked);
    rl_buf_free(&b);
    if (rc)
        goto fail;
    if (refused != inline_refused)
        free(refused);
    return 0;
fail:
    for (int i = 0; i < n; i++) {
        if (out[i])
            freeReplyObject(out[i]);
        out[i] = NULL;
    }
    if (refused != inline_refused)
        free(refused);
    return rc;
}

int rl_script(redis_lock_client *c, rl_conn *conn, int script, const rl_script_call *call,
              redisReply **out, char *scratch, size_t scratch_cap)
{
    return rl_script_acked(c, conn, script, call, out, scratch, scratch_cap, NULL);
}

int rl_script_acked(redis_lock_client *c, rl_conn *conn, int script, const rl_script_call *call,
                    redisReply **out, char *scratch, size_t scratch_cap, long long *acked)
{
    int rc = rl_script_run_acked(c, conn, script, call, 1, out, scratch, scratch_cap, acked);
    if (!rc && (rc = rl_reply_error(*out, "lock script failed"))) {
        freeReplyObject(*out);
        *out = NULL;
    }
    return rc;
}
