"""Drive prl_peer (python-redis-lock 4.x's protocol) from a C test, line by line.

Usage: /usr/bin/python3 prl_driver.py SOCKET_PATH
       /usr/bin/python3 prl_driver.py 'rediss://HOST:PORT/DB?cacert=PATH[&cert=PATH&key=PATH]'
       (TLS: redis-py's ssl=True, the CA and client certificate of the URL)

Prints "ready" once connected, then reads one command per line on stdin and answers with
one line on stdout (flushed). Handles are small integers returned by "lock".

    lock NAME [EXPIRE|-] [ID]     -> "ok HANDLE ID"      (EXPIRE in seconds, "-": none)
    acquire H [TIMEOUT]           -> "acquired MS" | "busy MS" | "already"
                                     (blocking, TIMEOUT seconds; without it, forever)
    try H                         -> "acquired" | "busy" | "already"   (blocking=False)
    release H                     -> "ok" | "notacquired"
    extend H [EXPIRE]             -> "ok" | "notacquired" | "noexpire"
    reset H                       -> "ok"
    locked H                      -> "true" | "false"
    owner H                       -> ID | "none"
    reset_all                     -> "ok COUNT"
    loop NAME N COUNTER           -> "done VIOLATIONS TIMEOUTS"
                                     N times: acquire (10 s), INCR COUNTER (must be 1),
                                     hold ~2 ms, DECR, release
    quit                          -> exits
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import redis  # noqa: E402  (Debian's python3-redis)

import prl_peer  # noqa: E402


def connect(where):
    if not where.startswith("rediss://"):
        return redis.Redis(unix_socket_path=where)
    from urllib.parse import parse_qs, urlsplit

    u = urlsplit(where)
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    return redis.Redis(host=u.hostname, port=u.port, db=int(u.path.strip("/") or 0), ssl=True,
                       ssl_ca_certs=q.get("cacert"), ssl_certfile=q.get("cert"),
                       ssl_keyfile=q.get("key"), ssl_cert_reqs="required")


def main():
    client = connect(sys.argv[1])
    client.ping()
    locks = []
    out = sys.stdout

    def say(line):
        out.write(line + "\n")
        out.flush()

    say("ready")
    for raw in sys.stdin:
        words = raw.split()
        if not words:
            continue
        cmd, args = words[0], words[1:]
        try:
            if cmd == "quit":
                break
            elif cmd == "lock":
                expire = None if len(args) < 2 or args[1] == "-" else int(args[1])
                lock_id = args[2] if len(args) > 2 else None
                lock = prl_peer.Lock(client, args[0], expire=expire, id=lock_id)
                locks.append(lock)
                say("ok %d %s" % (len(locks) - 1, lock.id))
            elif cmd == "acquire":
                lock = locks[int(args[0])]
                timeout = int(args[1]) if len(args) > 1 else None
                t0 = time.monotonic()
                got = lock.acquire(blocking=True, timeout=timeout)
                ms = int((time.monotonic() - t0) * 1000)
                say("%s %d" % ("acquired" if got else "busy", ms))
            elif cmd == "try":
                say("acquired" if locks[int(args[0])].acquire(blocking=False) else "busy")
            elif cmd == "release":
                locks[int(args[0])].release()
                say("ok")
            elif cmd == "extend":
                lock = locks[int(args[0])]
                lock.extend(int(args[1]) if len(args) > 1 else None)
                say("ok")
            elif cmd == "reset":
                locks[int(args[0])].reset()
                say("ok")
            elif cmd == "locked":
                say("true" if locks[int(args[0])].locked() else "false")
            elif cmd == "owner":
                owner = locks[int(args[0])].get_owner_id()
                say(owner if owner is not None else "none")
            elif cmd == "reset_all":
                say("ok %d" % prl_peer.reset_all(client))
            elif cmd == "loop":
                name, n, counter = args[0], int(args[1]), args[2]
                lock = prl_peer.Lock(client, name)
                violations = timeouts = 0
                for _ in range(n):
                    if not lock.acquire(blocking=True, timeout=10):
                        timeouts += 1
                        continue
                    if client.incr(counter) != 1:
                        violations += 1
                    time.sleep(0.002)
                    client.decr(counter)
                    lock.release()
                say("done %d %d" % (violations, timeouts))
            else:
                say("error unknown command " + cmd)
        except prl_peer.AlreadyAcquired:
            say("already")
        except prl_peer.NotAcquired:
            say("notacquired")
        except RuntimeError as e:
            say("noexpire" if "expiration" in str(e) else "error " + str(e))
        except Exception as e:  # report, do not die: the C side reads one line per command
            say("error %s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    main()
