#!/usr/bin/python3
"""Crashed-holder trials for one implementation (bench/run drives it).

One holder process acquires K locks (expiry E ms), lock i at T0 + i*STEP, and is then
kill -9'd holding all of them. One waiter process forks K children; child i starts
waiting for lock i at T0 + i*STEP + u_i, u_i spread over (30 ms, E - 50 ms) in a shuffled
order, so waiters start long before the kill, just before it, after it, and shortly
before the key expires. For each trial: delay = the waiter's acquire returning - the
key's expiry, where the expiry is taken as (the holder's acquire call start + E): the
SET ran after that instant, so the true expiry is no earlier and the delay shown is an
upper bound (by at most the holder's acquire round trip).

  crash.py --impl c|redispy|prl --url URL --rl-bench PATH --py-bench PATH [--count K]

Prints one JSON object."""
import argparse
import json
import os
import signal
import subprocess
import sys
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--impl", required=True, choices=["c", "redispy", "prl"])
    p.add_argument("--url", required=True)
    p.add_argument("--rl-bench", required=True)
    p.add_argument("--py-bench", required=True)
    p.add_argument("--count", type=int, default=24)
    p.add_argument("--step-ms", type=int, default=60)
    p.add_argument("--expire-ms", type=int, default=2000)
    p.add_argument("--name", default=None)
    p.add_argument("--taskset", default="")
    a = p.parse_args()
    k, step, exp = a.count, a.step_ms, a.expire_ms
    name = a.name or "bench:crash:%s:%d" % (a.impl, os.getpid())
    pin = ["taskset", "-c", a.taskset] if a.taskset else []

    def cmd(sub, *extra):
        if a.impl == "c":
            return pin + [a.rl_bench, sub, "--url", a.url] + list(extra)
        return pin + [sys.executable, a.py_bench, "--impl", a.impl, "--url", a.url, sub] + \
            list(extra)

    # waiter start offsets: a permutation of evenly spread points in (30, exp - 50) ms
    span = exp - 80
    order = [(i * 7) % k for i in range(k)] if k % 7 else list(range(k))
    offs = [30 + span * (order[i] + 0.5) / k for i in range(k)]
    t0 = time.monotonic_ns() + 2_000_000_000  # time for both processes to start
    go = [t0 + i * step * 1_000_000 + int(offs[i] * 1_000_000) for i in range(k)]
    max_ms = 2000 + k * step + exp + 2 * exp + 3000  # prl may wait a whole BLPOP beyond
    waiters = subprocess.Popen(cmd("crash-wait", "--name", name, "--count", str(k),
                                   "--expire-ms", str(exp), "--go-list",
                                   ",".join(str(g) for g in go), "--duration-ms",
                                   str(max_ms)),
                               stdout=subprocess.PIPE, text=True)
    holder = subprocess.Popen(cmd("crash-hold", "--name", name, "--count", str(k),
                                  "--expire-ms", str(exp), "--t0-ns", str(t0),
                                  "--step-ms", str(step)),
                              stdout=subprocess.PIPE, text=True)
    held = {}
    deadline = time.monotonic() + 2 + k * step / 1000 + 5
    for line in holder.stdout:
        obj = json.loads(line)
        if obj.get("done"):
            break
        held[obj["i"]] = obj
        if time.monotonic() > deadline:
            break
    t_kill = time.monotonic_ns()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    try:
        wout, _ = waiters.communicate(timeout=max_ms / 1000 + 10)
    except subprocess.TimeoutExpired:
        waiters.kill()
        wout, _ = waiters.communicate()
    trials = []
    for line in wout.splitlines():
        w = json.loads(line)
        h = held.get(w["i"])
        if not h or h["rc"] != 0 or w["rc"] != 0:
            trials.append({"i": w["i"], "valid": False, "holder": h, "waiter": w})
            continue
        expiry = h["t_start_ns"] + exp * 1_000_000
        trials.append({"i": w["i"], "valid": w["t_go_ns"] < expiry,
                       "delay_us": (w["t_acq_ns"] - expiry) / 1000,
                       "waiter_start_before_expiry_ms": (expiry - w["t_go_ns"]) / 1e6,
                       "waiter_start_vs_kill_ms": (w["t_go_ns"] - t_kill) / 1e6,
                       "holder_acquire_rtt_us": (h["t_end_ns"] - h["t_start_ns"]) / 1000})
    trials.sort(key=lambda t: t["i"])
    print(json.dumps({"impl": a.impl, "count": k, "expire_ms": exp, "step_ms": step,
                      "trials": trials}, separators=(",", ":")))


if __name__ == "__main__":
    main()
