#!/usr/bin/python3
"""The Python side of the benchmarks (bench/run drives it): the same
subcommands as rl_bench, for the two peers, each printing one JSON object:

  py_bench.py --impl redispy|prl --url URL SUBCOMMAND [options]

  redispy  redis-py's own redis.lock.Lock (Debian python3-redis 4.3): SET NX PX to acquire,
           a polling loop (sleep 0.1 s) to wait, Lua to release and extend.
  prl      tests/interop/prl_peer.py, python-redis-lock 4.x's protocol: SET NX EX to
           acquire, BLPOP on the signal list to wait, Lua to release. python-redis-lock's
           auto_renewal (one thread per lock calling extend every expire*2/3) is emulated
           here for the scale test, as that library does it.

Run with /usr/bin/python3 (Debian's python3-redis). Every loop is bounded. Times are
time.monotonic_ns() (CLOCK_MONOTONIC, comparable with rl_bench in other processes)."""
import argparse
import json
import mmap
import os
import random
import select
import signal
import struct
import sys
import threading
import time

import redis

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "interop"))
import prl_peer  # noqa: E402

RELEASE_SCRIPT = (
    "if redis.call('get', KEYS[1]) ~= ARGV[1] then return 1 else "
    "redis.call('del', KEYS[2]) redis.call('lpush', KEYS[2], 1) "
    "redis.call('pexpire', KEYS[2], ARGV[2]) redis.call('del', KEYS[1]) return 0 end")


def now_ns():
    return time.monotonic_ns()


def sleep_until_ns(t):
    d = t - now_ns()
    if d > 0:
        time.sleep(d / 1e9)


def connect(url, **kw):
    if url.startswith("unix://"):
        return redis.Redis(unix_socket_path=url[len("unix://"):], **kw)
    if url.startswith("rediss://"):  # our TLS parameters, in redis-py's words
        from urllib.parse import parse_qs, urlsplit

        u = urlsplit(url)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        return redis.Redis(host=u.hostname, port=u.port, db=int(u.path.strip("/") or 0),
                           ssl=True, ssl_ca_certs=q.get("cacert"), ssl_cert_reqs="required", **kw)
    return redis.Redis.from_url(url, **kw)


class Impl:
    """acquire(lock, timeout_s): timeout_s None = wait forever, 0 = try once."""

    def __init__(self, kind, client):
        self.kind = kind
        self.client = client

    def new(self, name, expire_s=None):
        if self.kind == "redispy":
            # thread_local=False: a lock object may be shared (it is not here); the
            # default sleep (0.1 s) is what an application gets.
            return self.client.lock("lock:" + name, timeout=expire_s, thread_local=False)
        return prl_peer.Lock(self.client, name, expire=expire_s)

    def acquire(self, lock, timeout_s):
        if self.kind == "redispy":
            if timeout_s == 0:
                return lock.acquire(blocking=False)
            return lock.acquire(blocking=True, blocking_timeout=timeout_s)
        if timeout_s == 0:
            return lock.acquire(blocking=False)
        if timeout_s is not None:
            # BLPOP's timeout is in seconds; a value that rounds to 0 ms would block
            # forever on the server, so never pass less than 10 ms.
            timeout_s = max(timeout_s, 0.01)
        return lock.acquire(blocking=True, timeout=timeout_s)

    def release(self, lock):
        lock.release()

    def owned(self, lock):
        if self.kind == "redispy":
            return lock.owned()
        return lock.get_owner_id() == lock.id

    def renew(self, lock):
        if self.kind == "redispy":
            lock.reacquire()
        else:
            lock.extend()


def out(obj):
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def shared(n):
    return mmap.mmap(-1, n)  # MAP_SHARED | MAP_ANONYMOUS: survives fork()


def reap(pids, deadline_ns):
    cpu = 0.0
    left = set(pids)
    while left:
        try:
            pid, _, ru = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid:
            cpu += ru.ru_utime + ru.ru_stime
            left.discard(pid)
            continue
        if now_ns() > deadline_ns:
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline_ns = 1 << 62
        time.sleep(0.002)
    return cpu


# ------------------------------------------------------------------ subcommands

def cmd_uncontended(a):
    client = connect(a.url)
    impl = Impl(a.impl, client)
    lock = impl.new(a.name or "bench:uncontended:" + a.impl)
    for _ in range(200):  # warm up
        if impl.acquire(lock, None):
            impl.release(lock)
    set_rates, pair_rates = [], []
    lock_time = lock_cpu = lock_user = 0.0
    pairs = errors = 0
    for _ in range(a.rounds):
        # redis-py's own SET loop: this interpreter's round-trip floor
        n = 0
        t0 = now_ns()
        end = t0 + a.window_ms * 1_000_000
        while now_ns() < end and n < 10_000_000:
            client.set("bench:pyfloor", "v")
            n += 1
        set_rates.append(n / ((now_ns() - t0) / 1e9))
        n = 0
        c0 = time.process_time()
        u0 = os.times().user
        t0 = now_ns()
        end = t0 + a.window_ms * 1_000_000
        while now_ns() < end and n < 10_000_000:
            try:
                if impl.acquire(lock, None):
                    impl.release(lock)
                else:
                    errors += 1
            except Exception:
                errors += 1
            n += 1
        t1 = now_ns()
        lock_cpu += time.process_time() - c0
        lock_user += os.times().user - u0
        lock_time += (t1 - t0) / 1e9
        pairs += n
        pair_rates.append(n / ((t1 - t0) / 1e9))
    out({"rounds": a.rounds, "window_ms": a.window_ms, "pairs_per_s": pairs / lock_time,
         "cpu_us_per_pair": lock_cpu / pairs * 1e6,
         "user_us_per_pair": lock_user / pairs * 1e6, "errors": errors,
         "pairs": pairs, "cpu_s": lock_cpu, "user_s": lock_user, "time_s": lock_time,
         "py_set_rates": set_rates, "pair_rates": pair_rates})


def cmd_contend(a):
    n = a.procs
    name = a.name or "bench:contend:" + a.impl
    shm = shared(16 * n)
    start = now_ns() + 250_000_000 + n * 12_000_000
    end = start + a.duration_ms * 1_000_000
    pids = []
    sys.stdout.flush()
    for i in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                impl = Impl(a.impl, connect(a.url))
                lock = impl.new(name)
                sleep_until_ns(start)
                got = bad = 0
                while True:
                    t = now_ns()
                    if t >= end:
                        break
                    try:
                        ok = impl.acquire(lock, (end - t) / 1e9)
                    except Exception:
                        bad += 1
                        time.sleep(0.001)
                        continue
                    if not ok:
                        break
                    if now_ns() < end:
                        got += 1
                    if a.hold_ms:
                        time.sleep(a.hold_ms / 1000)
                    try:
                        impl.release(lock)
                    except Exception:
                        bad += 1
                struct.pack_into("qq", shm, 16 * i, got, bad)
            finally:
                os._exit(0)
        pids.append(pid)
    cpu = reap(pids, end + 30_000_000_000)
    counts = [struct.unpack_from("qq", shm, 16 * i)[0] for i in range(n)]
    errs = [struct.unpack_from("qq", shm, 16 * i)[1] for i in range(n)]
    out({"procs": n, "hold_ms": a.hold_ms, "duration_ms": a.duration_ms, "cpu_s": cpu,
         "counts": counts, "total": sum(counts), "errors": sum(errs)})


HANDOFF_MAX = 200_000
# header: t_rel (q), last (q), n (q), self (q), errors (q), acquisitions (q); then lat[] (q)
HDR = 48


def cmd_handoff(a):
    w = a.waiters
    n = w + 1
    name = a.name or "bench:handoff:" + a.impl
    shm = shared(HDR + 8 * HANDOFF_MAX)
    struct.pack_into("qqqqqq", shm, 0, 0, -1, 0, 0, 0, 0)
    pipes = [os.pipe() for _ in range(n)]
    for r, wfd in pipes:
        os.set_blocking(r, False)
        os.set_blocking(wfd, False)
    start = now_ns() + 250_000_000 + n * 12_000_000
    end = start + a.duration_ms * 1_000_000
    pids = []
    sys.stdout.flush()

    def get(i):
        return struct.unpack_from("q", shm, 8 * i)[0]

    def put(i, v):
        struct.pack_into("q", shm, 8 * i, v)

    for me in range(n):
        pid = os.fork()
        if pid == 0:
            try:
                impl = Impl(a.impl, connect(a.url))
                lock = impl.new(name)
                sleep_until_ns(start + me * 200_000)
                while True:
                    t = now_ns()
                    if t >= end:
                        break
                    try:
                        ok = impl.acquire(lock, (end - t) / 1e9)
                    except Exception:
                        put(4, get(4) + 1)
                        time.sleep(0.001)
                        continue
                    t_acq = now_ns()
                    if not ok:
                        break
                    # the lock itself serializes these updates
                    put(5, get(5) + 1)
                    prev = get(1)
                    if prev >= 0 and prev != me:
                        k = get(2)
                        if k < HANDOFF_MAX and t_acq < end:
                            struct.pack_into("q", shm, HDR + 8 * k, t_acq - get(0))
                            put(2, k + 1)
                        try:
                            os.write(pipes[prev][1], b"x")
                        except BlockingIOError:
                            pass
                    elif prev == me:
                        put(3, get(3) + 1)
                    time.sleep(a.hold_ms / 1000)
                    put(1, me)
                    put(0, now_ns())
                    try:
                        impl.release(lock)
                    except Exception:
                        put(4, get(4) + 1)
                    left = (end - now_ns()) / 1e9
                    if left > 0:
                        select.select([pipes[me][0]], [], [], left + 0.001)
                    try:
                        while os.read(pipes[me][0], 64):
                            pass
                    except BlockingIOError:
                        pass
            finally:
                os._exit(0)
        pids.append(pid)
    cpu = reap(pids, end + 30_000_000_000)
    k = min(get(2), HANDOFF_MAX)
    lat = [struct.unpack_from("q", shm, HDR + 8 * i)[0] // 100 for i in range(k)]
    out({"waiters": w, "hold_ms": a.hold_ms, "duration_ms": a.duration_ms, "cpu_s": cpu,
         "acquisitions": get(5), "self_reacquire": get(3), "errors": get(4), "unit": "0.1us",
         "lat": lat})


def cmd_crash_hold(a):
    impl = Impl(a.impl, connect(a.url))
    held = []
    for i in range(a.count):
        lock = impl.new("%s:%d" % (a.name, i), expire_s=a.expire_ms / 1000)
        held.append(lock)
        sleep_until_ns(a.t0_ns + i * a.step_ms * 1_000_000)
        t0 = now_ns()
        ok = impl.acquire(lock, 0)
        t1 = now_ns()
        out({"i": i, "rc": 0 if ok else 1, "t_start_ns": t0, "t_end_ns": t1})
    out({"done": True})
    time.sleep(60)  # bounded: the coordinator kills us long before


def cmd_crash_wait(a):
    go = [int(x) for x in a.go_list.split(",")]
    pids = []
    sys.stdout.flush()
    for i in range(a.count):
        pid = os.fork()
        if pid == 0:
            try:
                impl = Impl(a.impl, connect(a.url))
                lock = impl.new("%s:%d" % (a.name, i), expire_s=a.expire_ms / 1000)
                sleep_until_ns(go[i])
                t0 = now_ns()
                ok = impl.acquire(lock, None)  # ends when the key expires
                t1 = now_ns()
                out({"i": i, "rc": 0 if ok else 1, "t_go_ns": t0, "t_acq_ns": t1})
                if ok:
                    impl.release(lock)
            finally:
                os._exit(0)
        pids.append(pid)
    reap(pids, now_ns() + a.duration_ms * 1_000_000)


def cmd_timeouts(a):
    client = connect(a.url)
    impl = Impl(a.impl, client)
    name = a.name or "bench:timeouts:" + a.impl
    holder = impl.new(name)
    waiter = impl.new(name)
    if not impl.acquire(holder, 0):
        raise SystemExit("cannot hold " + name)
    rnd = random.Random(12345)
    res = {}
    for t, count in zip([int(x) for x in a.timeouts.split(",")],
                        [int(x) for x in a.counts.split(",")]):
        late, other = [], 0
        for _ in range(count):
            time.sleep(rnd.randrange(100) / 1000)  # vary the phase
            t0 = now_ns()
            ok = impl.acquire(waiter, t / 1000)
            t1 = now_ns()
            if ok:
                other += 1
            late.append((t1 - t0) - t * 1_000_000)
        res[str(t)] = {"unexpected_rc": other, "late_ns": late}
    impl.release(holder)
    out(res)


def cmdstats(client):
    return {k[len("cmdstat_"):] if k.startswith("cmdstat_") else k: v["calls"]
            for k, v in client.info("commandstats").items()}


def vm_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def cmd_scale_renew(a):
    """redispy: one thread renews every lock, one round trip each (Lock.reacquire), every
    expire*2/3. prl: python-redis-lock's auto_renewal, one thread per lock, each calling
    extend every expire*2/3 (as that library's _lock_renewer does)."""
    client = connect(a.url)
    info_client = connect(a.url)
    impl = Impl(a.impl, client)
    expire_s = a.expire_ms / 1000
    interval = expire_s * 2 / 3
    locks = []
    stop = threading.Event()
    renew_errors = [0]
    threads = []
    thread_fail = 0

    def renewer(lock):
        # python-redis-lock's _lock_renewer: wait interval, extend, until stopped
        while not stop.wait(timeout=interval):
            try:
                impl.renew(lock)
            except Exception:
                renew_errors[0] += 1

    if a.impl == "redispy":
        # one application thread renews every lock held so far, each `interval` seconds,
        # one round trip per lock (Lock.reacquire); started before the first acquire so
        # that no lock waits longer than `interval` for its first renewal
        def loop():
            next_round = time.monotonic() + interval
            while not stop.wait(max(0.0, next_round - time.monotonic())):
                next_round = time.monotonic() + interval
                for lock in list(locks):
                    if stop.is_set():
                        break
                    try:
                        impl.renew(lock)
                    except Exception:
                        renew_errors[0] += 1
        th = threading.Thread(target=loop, daemon=True)
        th.start()
        threads.append(th)

    t0 = now_ns()
    acq_fail = 0
    budget_end = t0 + a.setup_budget_ms * 1_000_000
    for i in range(a.count):
        if now_ns() > budget_end:
            break  # setup budget spent: go on with the locks acquired so far
        lock = impl.new("%s:%d" % (a.name, i), expire_s=expire_s)
        if not impl.acquire(lock, 0):
            acq_fail += 1
            continue
        locks.append(lock)
        if a.impl == "prl":
            # as python-redis-lock's acquire(): the renewal thread starts right away
            th = threading.Thread(target=renewer, args=(lock,), daemon=True)
            try:
                th.start()
                threads.append(th)
            except RuntimeError:
                thread_fail += 1
    t1 = now_ns()
    cs0 = cmdstats(info_client)
    tc0 = info_client.info("stats")["total_commands_processed"]
    c0 = time.process_time()
    w0 = now_ns()
    time.sleep(a.duration_ms / 1000)
    w1 = now_ns()
    c1 = time.process_time()
    cs1 = cmdstats(info_client)
    tc1 = info_client.info("stats")["total_commands_processed"]
    rss = vm_kb("VmRSS")
    nthreads = threading.active_count()
    # verify while the renewals go on (as libredislock's do), then stop them
    mismatch = 0
    for lock in locks:
        try:
            if not impl.owned(lock):
                mismatch += 1
        except Exception:
            mismatch += 1
    stop.set()
    join_until = time.monotonic() + 15
    for th in threads:
        if th.is_alive():
            th.join(timeout=max(0.0, join_until - time.monotonic()))
    rel_fail = 0
    for lock in locks:
        try:
            impl.release(lock)
        except Exception:
            rel_fail += 1
    out({"locks": a.count, "acquired": len(locks),
         "setup_budget_ms": a.setup_budget_ms, "expire_ms": a.expire_ms, "duration_s": (w1 - w0) / 1e9,
         "acquire_all_s": (t1 - t0) / 1e9, "acquire_failures": acq_fail,
         "renew_errors": renew_errors[0], "thread_start_failures": thread_fail,
         "verify_mismatch": mismatch, "release_failures": rel_fail, "cpu_s": c1 - c0,
         "rss_kb": rss, "threads": nthreads, "total_commands": tc1 - tc0,
         "commandstats_before": cs0, "commandstats_after": cs1})


def cmd_scale_threads(a):
    info_client = connect(a.url)
    i0 = info_client.info("clients")
    s0 = info_client.info("stats")
    rss0 = vm_kb("VmRSS")
    client = connect(a.url)
    impl = Impl(a.impl, client)
    name = a.name or "bench:threads:" + a.impl
    holder = impl.new(name)
    if not impl.acquire(holder, 0):
        raise SystemExit("cannot hold " + name)
    results = [None] * a.threads

    def waiter(i):
        lock = impl.new(name)
        ok = False
        try:
            ok = impl.acquire(lock, 60)
            results[i] = now_ns()
            if ok:
                impl.release(lock)
        except Exception as e:  # noqa: BLE001
            results[i] = repr(e)

    threads = [threading.Thread(target=waiter, args=(i,), daemon=True)
               for i in range(a.threads)]
    for th in threads:
        th.start()
    # wait until the server sees the waiters blocked (BLPOP), or a fixed settle time
    until = now_ns() + 10_000_000_000
    blocked = 0
    while now_ns() < until:
        blocked = info_client.info("clients")["blocked_clients"]
        if blocked >= a.threads or (a.impl == "redispy" and now_ns() > until - 8_500_000_000):
            break
        time.sleep(0.02)
    time.sleep(0.2)
    i1 = info_client.info("clients")
    s1 = info_client.info("stats")
    rss1 = vm_kb("VmRSS")
    t_rel = now_ns()
    impl.release(holder)
    for th in threads:
        th.join(timeout=65)
    s2 = info_client.info("stats")
    got = [r for r in results if isinstance(r, int)]
    out({"threads": a.threads, "acquired": len(got), "blocked_clients": blocked,
         "connected_clients_delta": i1["connected_clients"] - i0["connected_clients"],
         "connections_opened_waiting": s1["total_connections_received"]
         - s0["total_connections_received"],
         "connections_opened_total": s2["total_connections_received"]
         - s0["total_connections_received"],
         "rss_kb_before": rss0, "rss_kb_waiting": rss1,
         "drain_ms": (max(got) - t_rel) / 1e6 if got else None,
         "errors": [r for r in results if isinstance(r, str)][:3]})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--impl", choices=["redispy", "prl"], required=True)
    p.add_argument("--url", required=True)
    p.add_argument("cmd")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--window-ms", type=int, default=500)
    p.add_argument("--procs", type=int, default=2)
    p.add_argument("--hold-ms", type=int, default=0)
    p.add_argument("--duration-ms", type=int, default=2000)
    p.add_argument("--waiters", type=int, default=1)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--step-ms", type=int, default=0)
    p.add_argument("--expire-ms", type=int, default=2000)
    p.add_argument("--threads", type=int, default=200)
    p.add_argument("--setup-budget-ms", type=int, default=20000)
    p.add_argument("--t0-ns", type=int, default=0)
    p.add_argument("--name", default=None)
    p.add_argument("--go-list", default="")
    p.add_argument("--timeouts", default="50,300,1000")
    p.add_argument("--counts", default="10,5,3")
    a = p.parse_args()
    fn = {"uncontended": cmd_uncontended, "contend": cmd_contend, "handoff": cmd_handoff,
          "crash-hold": cmd_crash_hold, "crash-wait": cmd_crash_wait,
          "timeouts": cmd_timeouts, "scale-renew": cmd_scale_renew,
          "scale-threads": cmd_scale_threads}.get(a.cmd)
    if not fn:
        raise SystemExit("unknown subcommand " + a.cmd)
    if a.cmd == "handoff" and a.hold_ms == 0:
        a.hold_ms = 2
    if a.name is None and a.cmd in ("crash-hold", "crash-wait"):
        a.name = "bench:crash:" + a.impl
    if a.name is None and a.cmd == "scale-renew":
        a.name = "bench:scale:" + a.impl
    fn(a)


if __name__ == "__main__":
    main()
