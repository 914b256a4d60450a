"""A Python peer that speaks python-redis-lock 4.x's wire protocol exactly as that library
does (Debian has no python-redis-lock package; this follows its source): SET NX EX to
acquire, BLPOP on lock-signal:NAME to wait (restarting the wait after each lost race),
the same Lua scripts for release/extend/reset/reset_all (with KEYS). Runs under
/usr/bin/python3 with Debian's python3-redis. Used by the interoperability tests and by
the benchmarks as the python-redis-lock reference."""
from base64 import b64encode
from os import urandom

UNLOCK_SCRIPT = b"""
    if redis.call("get", KEYS[1]) ~= ARGV[1] then
        return 1
    else
        redis.call("del", KEYS[2])
        redis.call("lpush", KEYS[2], 1)
        redis.call("pexpire", KEYS[2], ARGV[2])
        redis.call("del", KEYS[1])
        return 0
    end
"""

EXTEND_SCRIPT = b"""
    if redis.call("get", KEYS[1]) ~= ARGV[1] then
        return 1
    elseif redis.call("ttl", KEYS[1]) < 0 then
        return 2
    else
        redis.call("expire", KEYS[1], ARGV[2])
        return 0
    end
"""

RESET_SCRIPT = b"""
    redis.call('del', KEYS[2])
    redis.call('lpush', KEYS[2], 1)
    redis.call('pexpire', KEYS[2], ARGV[2])
    return redis.call('del', KEYS[1])
"""

RESET_ALL_SCRIPT = b"""
    local locks = redis.call('keys', 'lock:*')
    local signal
    for _, lock in pairs(locks) do
        signal = 'lock-signal:' .. string.sub(lock, 6)
        redis.call('del', signal)
        redis.call('lpush', signal, 1)
        redis.call('expire', signal, 1)
        redis.call('del', lock)
    end
    return #locks
"""


class NotAcquired(RuntimeError):
    pass


class AlreadyAcquired(RuntimeError):
    pass


class Lock:
    def __init__(self, redis_client, name, expire=None, id=None, signal_expire=1000):
        self._client = redis_client
        self._expire = expire if expire is None else int(expire)
        self._signal_expire = signal_expire
        self._id = id if id is not None else b64encode(urandom(18)).decode("ascii")
        self._name = "lock:" + name
        self._signal = "lock-signal:" + name
        self._unlock = redis_client.register_script(UNLOCK_SCRIPT)
        self._extend = redis_client.register_script(EXTEND_SCRIPT)
        self._reset = redis_client.register_script(RESET_SCRIPT)

    @property
    def id(self):
        return self._id

    def get_owner_id(self):
        v = self._client.get(self._name)
        return v.decode("ascii") if isinstance(v, bytes) else v

    def locked(self):
        return self._client.exists(self._name) == 1

    def acquire(self, blocking=True, timeout=None):
        if self._id == self.get_owner_id():
            raise AlreadyAcquired("Already acquired from this Lock instance.")
        busy = True
        blpop_timeout = timeout or self._expire or 0
        timed_out = False
        while busy:
            busy = not self._client.set(self._name, self._id, nx=True, ex=self._expire)
            if busy:
                if timed_out:
                    return False
                elif blocking:
                    timed_out = not self._client.blpop(self._signal, blpop_timeout) and timeout
                else:
                    return False
        return True

    def extend(self, expire=None):
        expire = expire or self._expire
        error = self._extend(keys=(self._name,), args=(self._id, expire))
        if error == 1:
            raise NotAcquired("Lock %s is not acquired or it already expired." % self._name)
        elif error == 2:
            raise RuntimeError("Lock %s has no assigned expiration time" % self._name)

    def release(self):
        error = self._unlock(keys=(self._name, self._signal), args=(self._id, self._signal_expire))
        if error == 1:
            raise NotAcquired("Lock %s is not acquired or it already expired." % self._name)

    def reset(self):
        self._reset(keys=(self._name, self._signal), args=(self._id, self._signal_expire))


def reset_all(redis_client):
    return redis_client.register_script(RESET_ALL_SCRIPT)()
