#!/usr/bin/python3
"""bench/prims_report.py RAW: the primitives section of one bench/run (step 9) as markdown
on stdout (bench/run writes it to docs/benchmarks/primitives.md). Every figure comes from
the same run as its peers' and its round trip (RTT = the hiredis PING p50 of that step)."""
import json
import math
import os
import sys

RAW = sys.argv[1]
QUEUE_LEASE_MS = 500  # bench/run passes this to fair-dead


def load(name):
    try:
        with open(os.path.join(RAW, name + ".json")) as fh:
            d = json.load(fh)
        return None if isinstance(d, dict) and "error" in d else d
    except (OSError, ValueError):
        return None


def cmdstats(name):
    """({command: calls}, {command: usec}) of one step's INFO commandstats (taken after
    CONFIG RESETSTAT); a script's inner commands are counted as well as the EVALSHA."""
    out, usec = {}, {}
    try:
        with open(os.path.join(RAW, name + ".cmdstats")) as fh:
            for line in fh:
                if line.startswith("cmdstat_") and "calls=" in line:
                    cmd, rest = line[8:].split(":", 1)
                    out[cmd] = int(rest.split("calls=")[1].split(",")[0])
                    usec[cmd] = int(rest.split("usec=")[1].split(",")[0])
    except OSError:
        pass
    for k in ("config|resetstat", "info", "config"):
        out.pop(k, None)
        usec.pop(k, None)
    return out, usec


def pct(v, q):
    if not v:
        return None
    s = sorted(v)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


def f(x, nd=1):
    if x is None:
        return "n/a"
    return "{:,.{}f}".format(x, nd)


SUMMARY = []  # (target, ok), in the order met


def verdict(ok, label=None):
    if label:
        SUMMARY.append((label, ok))
    return "n/a" if ok is None else ("pass" if ok else "**MISS**")


env = load("env") or {}
env_end = load("env_end") or {}
floor = load("prims_floor") or {}
RTT_MS = (floor.get("ping_p50_us") or 0) / 1000.0 or None


def contend(name):
    d = load(name)
    if not d or not d.get("counts"):
        return None
    c = d["counts"]
    ho = [x / 1e4 for x in d.get("handoff", [])]  # 0.1 us -> ms
    r = {
        "fair": min(c) / max(c) if max(c) else 0.0,
        "fewest": min(c), "most": max(c),
        "tput": d["total"] / (d["duration_ms"] / 1000.0),
        "worst": d.get("worst_wait_ms"),
        "ho_p50": pct(ho, 50), "ho_p99": pct(ho, 99), "ho_n": len(ho),
        "total": d["total"], "errors": d.get("errors", 0),
        "w50": d.get("wait_p50_ms"), "w99": d.get("wait_p99_ms"), "w999": d.get("wait_p999_ms"),
        "ms": d["duration_ms"],
    }
    st, us = cmdstats(name)
    if st and d["total"]:
        r["cmds"] = sum(st.values()) / d["total"]  # with the scripts' inner commands
        r["cmdstats"] = st
        ev = sum(us.get(k, 0) for k in ("evalsha", "eval"))
        evn = sum(st.get(k, 0) for k in ("evalsha", "eval"))
        r["scripts"] = evn / d["total"]
        r["script_us"] = ev / evn if evn else None
        r["script_us_per_acq"] = ev / d["total"]
    return r


def monitor_handoffs(name):
    """From a MONITOR capture of a 1-waiter hand-off: for each release script (a script that
    ran LPUSH: the fair grant's wake list or the plain signal), the inner commands it ran,
    the next command from another client (the new owner's try, which the library queues
    behind its BLPOP), that command's inner commands, and the gap (us) between the
    release's last inner command and it. Returns medians, or None."""
    groups = []  # [ts_first, ts_last, client, words, n_inner]
    try:
        with open(os.path.join(RAW, name + ".txt"), errors="replace") as fh:
            for line in fh:
                parts = line.split(" ", 3)
                if len(parts) < 4 or not parts[2].endswith("]"):
                    continue
                ts, client, rest = float(parts[0]), parts[2][:-1], parts[3]
                words = [w.strip('"').lower() for w in rest.split()[:12]]
                if client == "lua":
                    if groups:
                        groups[-1][1] = ts
                        groups[-1][4] += 1
                        groups[-1][5].add(words[0] if words else "")
                    continue
                groups.append([ts, ts, client, words, 0, set()])
    except OSError:
        return None
    rel_inner, next_inner, gaps, names = [], [], [], {}
    for i, g in enumerate(groups):
        if g[3][:1] != ["evalsha"] or "lpush" not in g[5]:
            continue  # only a release that handed on (a grant or a signal)
        nxt = next((h for h in groups[i + 1:] if h[2] != g[2] and h[3][:1] != ["client"]), None)
        if not nxt:
            continue
        rel_inner.append(g[4])
        next_inner.append(nxt[4])
        gaps.append((nxt[0] - g[1]) * 1e6)
        names[nxt[3][0]] = names.get(nxt[3][0], 0) + 1
    if not gaps:
        return None
    return {"n": len(gaps), "release_inner": pct(rel_inner, 50), "next_inner": pct(next_inner, 50),
            "gap_us": pct(gaps, 50), "next": max(names, key=names.get)}


def rtt(ms):
    return None if ms is None or not RTT_MS else ms / RTT_MS


L = []
out = L.append
out("# Benchmarks: fair lock, semaphore, and the Node peers")
out("")
out("Written by `bench/run` (step 9; `bench/run --prims-only` runs only this step). One run, one")
out("private redis-server; every peer below was measured in that same run, against the same")
out("server, and RTT is that run's round trip (hiredis PING p50 over TCP, measured at the")
out("start of the step). Ratios matter more than absolute figures.")
out("")
out("- date %s, git %s, %s mode, redis %s, %s CPU(s) (%s), pinned: %s" % (
    env.get("date", "?"), env.get("git", "?"), env.get("mode", "?"), env.get("redis", "?"),
    env.get("ncpu", "?"), env.get("cpu", "?"), "server CPU 0, clients CPU 1" if env.get("pinned") else "no"))
out("- load average before %s, after %s; the machine's 2 CPUs were shared with other work "
    "during the run: these figures are from a loaded machine (noisy, pessimistic)" % (
        env.get("loadavg_before", "?"), env_end.get("loadavg_after", "?")))
out("- RTT (PING p50) %s ms; each contended point ran %s ms" % (
    f(RTT_MS, 3), (load("prims_contend_fair_h0_n8") or {}).get("duration_ms", "?")))
out("- Node peers (bench/node/, `npm ci`): redlock %s (single instance), redis-semaphore %s, "
    "ioredis %s, under node %s; settings in bench/node/peers.js (library defaults, except: "
    "wait without a limit, no automatic refresh, redlock retryDelay 10 ms +- 5)" % (
        env.get("node_redlock", "?"), env.get("node_redis_semaphore", "?"),
        env.get("node_ioredis", "?"), env.get("node", "?")))
out("")
out("Definitions (the same code paths measure ours and the peers'): **fairness** = fewest /")
out("most acquisitions of one process in the window; **worst wait** = the longest acquire call")
out("that succeeded; **hand-off** (contended tables) = an acquire's return minus the start of")
out("the latest release call by another process, if that release started after the acquire")
out("call did; **hand-off** (the 8/32-waiter table) = `rl_bench handoff`: a release call's start")
out("to the next owner's acquire return, the releaser staying out until someone else owns the")
out("lock; **cmds/acq** = all commands the server ran in the step, a script's inner commands")
out("included (INFO commandstats after CONFIG RESETSTAT), per successful acquisition;")
out("**scripts/acq** = EVALSHA + EVAL per acquisition; **script us** = server time per script")
out("call (commandstats usec_per_call). Wait percentiles: every successful acquire call's")
out("duration in the window.")
out("")
SUMMARY_AT = len(L)

# ---------------------------------------------------------------- fair lock
out("## Fair lock")
out("")
out("### Fairness and worst wait (target: fairness >= 0.98; worst wait <= N x (hold + hand-off p50) + 10 %)")
out("")
out("| N | hold ms | window s | fair: fairness | plain: fairness | fair: wait p50 / p99 / p99.9 / worst ms | bound ms | (N x mean cycle + 10 %) | plain: wait p50 / p99 / p99.9 / worst ms | fairness | worst wait |")
out("|---|---|---|---|---|---|---|---|---|---|---|")
results = {}
for hold in (0, 10):
    for n in (8, 16, 32):
        fr = contend("prims_contend_fair_h%d_n%d" % (hold, n))
        pl = contend("prims_contend_plain_h%d_n%d" % (hold, n))
        results[("fair", hold, n)] = fr
        results[("plain", hold, n)] = pl
        if not fr:
            out("| %d | %d | (step failed) ||||||||" % (n, hold))
            continue
        bound = n * (hold + (fr["ho_p50"] or 0)) * 1.1
        def waits(r):
            return "%s / %s / %s / %s" % (f(r["w50"]), f(r["w99"]), f(r["w999"]), f(r["worst"])) if r else "n/a"
        cyc = 1000.0 / fr["tput"] if fr["tput"] else None
        out("| %d | %d | %s | %.3f (%d/%d) | %s | %s | %s | (%s) | %s | %s | %s |" % (
            n, hold, f(fr["ms"] / 1000.0), fr["fair"], fr["fewest"], fr["most"],
            "%.3f (%d/%d)" % (pl["fair"], pl["fewest"], pl["most"]) if pl else "n/a",
            waits(fr), f(bound), f(n * cyc * 1.1 if cyc else None), waits(pl),
            verdict(fr["fair"] >= 0.98, "fair lock fairness >= 0.98, N %d, hold %d ms" % (n, hold)), verdict(fr["worst"] <= bound, "fair lock worst wait <= N x (hold + hand-off) + 10 %%, N %d, hold %d ms" % (n, hold))))
out("")
out("The bound uses the run's hand-off p50 (contended definition) and the nominal hold; the mean")
out("cycle (1 / throughput) is the hold as slept plus the hand-off as it happened, for comparison.")
out("")
out("### Throughput at hold 10 ms (target: fair >= 0.8 x plain)")
out("")
out("| N | fair acq/s | plain acq/s | ratio | target | cmds/acq fair / plain | scripts/acq fair / plain | script us fair / plain |")
out("|---|---|---|---|---|---|---|---|")
for n in (8, 16, 32):
    fr, pl = results[("fair", 10, n)], results[("plain", 10, n)]
    if not fr or not pl:
        out("| %d | (step failed) |||||||" % n)
        continue
    ratio = fr["tput"] / pl["tput"] if pl["tput"] else None
    out("| %d | %s | %s | %s | %s | %s / %s | %s / %s | %s / %s |" % (
        n, f(fr["tput"]), f(pl["tput"]), f(ratio, 2), verdict(ratio is not None and ratio >= 0.8, "fair throughput >= 0.8 x plain, hold 10 ms, N %d" % n),
        f(fr.get("cmds"), 1), f(pl.get("cmds"), 1), f(fr.get("scripts"), 2), f(pl.get("scripts"), 2),
        f(fr.get("script_us"), 1), f(pl.get("script_us"), 1)))
out("")
out("### Hand-off with 8 and 32 waiters (target: fair p50 <= 1.5 RTT, p99 <= 6 RTT)")
out("")
out("| waiters | fair p50 ms (RTT) | fair p99 ms (RTT) | plain p50 ms (RTT) | plain p99 ms (RTT) | hand-offs (fair / plain) | p50 | p99 |")
out("|---|---|---|---|---|---|---|---|")
for w in (8, 32):
    row = {}
    for impl in ("fair", "plain"):
        d = load("prims_handoff_%s_w%d" % (impl, w))
        lat = [x / 1e4 for x in d["lat"]] if d else []
        row[impl] = (pct(lat, 50), pct(lat, 99), len(lat))
    fp50, fp99, fn = row["fair"]
    pp50, pp99, pn = row["plain"]
    out("| %d | %s (%s) | %s (%s) | %s (%s) | %s (%s) | %d / %d | %s | %s |" % (
        w, f(fp50, 3), f(rtt(fp50)), f(fp99, 3), f(rtt(fp99)), f(pp50, 3), f(rtt(pp50)),
        f(pp99, 3), f(rtt(pp99)), fn, pn,
        verdict(None if fp50 is None or not RTT_MS else rtt(fp50) <= 1.5, "fair hand-off p50 <= 1.5 RTT, %d waiters" % w),
        verdict(None if fp99 is None or not RTT_MS else rtt(fp99) <= 6, "fair hand-off p99 <= 6 RTT, %d waiters" % w)))
out("")
fr8 = results.get(("fair", 10, 8))
pl8 = results.get(("plain", 10, 8))
if fr8 and fr8.get("cmdstats"):
    def per(st, tot):
        return ", ".join("%s %.2f" % (k, v / tot) for k, v in sorted(st.items(), key=lambda kv: -kv[1]) if v / tot >= 0.01)
    out("Commands per acquisition, 8 processes, hold 10 ms: fair: %s; plain: %s." % (
        per(fr8["cmdstats"], fr8["total"]), per(pl8["cmdstats"], pl8["total"]) if pl8 and pl8.get("cmdstats") else "n/a"))
    out("")
mf, mp = monitor_handoffs("prims_monitor_fair"), monitor_handoffs("prims_monitor_plain")
if mf and mp and fr8 and pl8:
    out("Where a hand-off's time goes (MONITOR of a 1-waiter hand-off in this run, %d fair and "
        "%d plain hand-offs, medians; the server times are this run's commandstats):" % (mf["n"], mp["n"]))
    out("")
    out("| | fair | plain |")
    out("|---|---|---|")
    out("| commands inside the releaser's script | %d | %d |" % (mf["release_inner"], mp["release_inner"]))
    out("| the new owner's next command | %s, %d inside it | %s, %d inside it |" % (
        mf["next"].upper(), mf["next_inner"], mp["next"].upper(), mp["next_inner"]))
    out("| release script's end -> that command, us (MONITOR timestamps) | %s | %s |" % (
        f(mf["gap_us"]), f(mp["gap_us"])))
    out("| server time per script call, us (8 processes, hold 10 ms) | %s | %s |" % (
        f(fr8.get("script_us")), f(pl8.get("script_us"))))
    if RTT_MS and fr8.get("script_us"):
        crit = 2 * fr8["script_us"] / 1000.0
        out("")
        out("Neither hand-off has a second round trip: the new owner's try runs %s us (fair) and "
            "%s us (plain) after the release script, queued behind the BLPOP. What differs is "
            "server time: two scripts run back to back on the hand-off path (the release, which "
            "purges and grants, then the grantee's claim), %d + %d commands for the fair lock "
            "against %d + %d for the plain one; at %s us per fair script call (the run's average) that is about "
            "%s ms = **%s RTT** on this machine, before any network or wake-up time (plain: %s us "
            "per script call)." % (
                f(mf["gap_us"]), f(mp["gap_us"]), mf["release_inner"], mf["next_inner"],
                mp["release_inner"], mp["next_inner"], f(fr8["script_us"]), f(crit, 3),
                f(rtt(crit)), f(pl8.get("script_us"))))
    out("")
d = load("prims_fair_dead")
out("### A dead waiter in the fair queue (kill -9; target: the next waiter holds the lock within queue_lease_ms + 20 ms)")
out("")
if d:
    rel = [x / 1000 for x in d["release_to_next_us"]]
    kil = [x / 1000 for x in d["kill_to_next_us"]]
    lim = d["queue_lease_ms"] + 20
    out("queue_lease_ms %d; %d trials. The holder releases right after the kill (the grant goes to "
        "the dead waiter's place first)." % (d["queue_lease_ms"], len(rel)))
    out("")
    out("| | p50 ms | max ms | target ms | |")
    out("|---|---|---|---|---|")
    out("| release -> the next waiter holds it | %s | %s | %d | %s |" % (
        f(pct(rel, 50)), f(max(rel)), lim, verdict(max(rel) <= lim, "dead fair waiter: next holder within queue_lease_ms + 20 ms (every trial)")))
    out("| kill -> the next waiter holds it | %s | %s | | |" % (f(pct(kil, 50)), f(max(kil))))
else:
    out("(step failed)")
out("")

# ---------------------------------------------------------------- semaphore
out("## Semaphore (limit 4, 32 processes, hold 10 ms) against redis-semaphore's Semaphore")
out("")
cs = contend("prims_contend_sem_h10_n32")
ns = contend("prims_contend_semaphore_h10_n32")
cc = load("prims_crash_sem")
nc = load("prims_crash_semaphore")
out("| | libredislock | redis-semaphore | target | |")
out("|---|---|---|---|---|")
if cs and ns:
    out("| permit hand-off p50 ms (RTT) | %s (%s) | %s (%s) | <= 2 RTT | %s |" % (
        f(cs["ho_p50"], 3), f(rtt(cs["ho_p50"])), f(ns["ho_p50"], 3), f(rtt(ns["ho_p50"])),
        verdict(None if cs["ho_p50"] is None or not RTT_MS else rtt(cs["ho_p50"]) <= 2, "semaphore permit hand-off p50 <= 2 RTT")))
    out("| permit hand-off p99 ms | %s | %s | | |" % (f(cs["ho_p99"], 3), f(ns["ho_p99"], 3)))
    ratio = cs["tput"] / ns["tput"] if ns["tput"] else None
    out("| throughput acq/s | %s | %s | ours >= 1.5 x theirs (%s x) | %s |" % (
        f(cs["tput"]), f(ns["tput"]), f(ratio, 2), verdict(ratio is not None and ratio >= 1.5, "semaphore throughput >= 1.5 x redis-semaphore")))
    out("| fairness (fewest/most) | %.3f | %.3f | | |" % (cs["fair"], ns["fair"]))
    out("| worst wait ms | %s | %s | | |" % (f(cs["worst"]), f(ns["worst"])))
    out("| cmds/acq (scripts/acq, script us) | %s (%s, %s) | %s (%s, %s) | | |" % (
        f(cs.get("cmds"), 1), f(cs.get("scripts"), 2), f(cs.get("script_us"), 1),
        f(ns.get("cmds"), 1), f(ns.get("scripts"), 2), f(ns.get("script_us"), 1)))
else:
    out("| (a step failed) |||||")
if cc and nc:
    cl = [x / 1000 for x in cc["late_us"]]
    nl = [x / 1000 for x in nc["late_us"]]
    out("| crashed holder: permit taken, ms after its expiry (p50 / max of %d) | %s / %s | %s / %s | <= 5 ms | p50 %s, max %s |" % (
        len(cl), f(pct(cl, 50)), f(max(cl)), f(pct(nl, 50)), f(max(nl)),
        verdict(pct(cl, 50) <= 5, "semaphore crashed holder taken over <= 5 ms after expiry (p50)"), verdict(max(cl) <= 5, "semaphore crashed holder taken over <= 5 ms after expiry (every trial)")))
out("")

# ---------------------------------------------------------------- plain vs node
out("## Plain lock against redlock (single instance) and redis-semaphore's Mutex (hold 10 ms)")
out("")
out("| N | implementation | acq/s | fairness (fewest/most) | wait p99 / worst ms | hand-off p50 ms (RTT) | hand-off p99 ms | cmds/acq (scripts/acq) |")
out("|---|---|---|---|---|---|---|---|")
for n in (8, 32):
    for impl, label in (("plain", "libredislock"), ("redlock", "redlock"), ("mutex", "redis-semaphore Mutex")):
        r = results.get(("plain", 10, n)) if impl == "plain" else contend("prims_contend_%s_h10_n%d" % (impl, n))
        if not r:
            out("| %d | %s | (step failed) ||||||" % (n, label))
            continue
        out("| %d | %s | %s | %.3f (%d/%d) | %s / %s | %s (%s) | %s | %s (%s) |" % (
            n, label, f(r["tput"]), r["fair"], r["fewest"], r["most"], f(r["w99"]), f(r["worst"]),
            f(r["ho_p50"], 3), f(rtt(r["ho_p50"])), f(r["ho_p99"], 3), f(r.get("cmds"), 1),
            f(r.get("scripts"), 2)))
out("")
out("Crashed holder (kill -9, expiry 300 ms): the lock taken, ms after its expiry:")
out("")
out("| implementation | p50 ms | max ms | trials |")
out("|---|---|---|---|")
for name, label in (("prims_crash_plain", "libredislock"), ("prims_crash_redlock", "redlock"),
                    ("prims_crash_mutex", "redis-semaphore Mutex")):
    d = load(name)
    if not d:
        out("| %s | (step failed) | | |" % label)
        continue
    v = [x / 1000 for x in d["late_us"]]
    out("| %s | %s | %s | %d |" % (label, f(pct(v, 50)), f(max(v)), len(v)))
out("")
# ---------------------------------------------------------------- reading
R = ["## Reading", ""]
def g(key):
    return results.get(key)
if all(g(("fair", 0, n)) and g(("plain", 0, n)) for n in (8, 16, 32)):
    R.append("- **Worst wait at hold 0** (bound %s-%s ms): the N clients share one pinned CPU on a "
             "loaded machine, so a waiter is often not even running when its turn comes. The fair "
             "lock's p99 waits (%s ms at N = 8 / 16 / 32) are of the same order as the plain "
             "lock's (%s ms), which has no queue: the scheduler, not the queue, sets the tail." % (
                 f(8 * (g(("fair", 0, 8))["ho_p50"] or 0) * 1.1), f(32 * (g(("fair", 0, 32))["ho_p50"] or 0) * 1.1),
                 " / ".join(f(g(("fair", 0, n))["w99"]) for n in (8, 16, 32)),
                 " / ".join(f(g(("plain", 0, n))["w99"]) for n in (8, 16, 32))))
if all(g(("fair", 10, n)) for n in (8, 16, 32)):
    R.append("- **Worst wait at hold 10 ms**: the median wait is N - 1 cycles as it should be (%s ms "
             "at N = 8 / 16 / 32), but a cycle is not hold + hand-off p50: the 10 ms sleep overshoots "
             "on a loaded CPU, and one late holder delays every waiter behind it, so the tail (p99.9 "
             "%s ms) exceeds the bound by the stalls of a few cycles. The plain lock's tail is of "
             "the same order (%s ms)." % (
                 " / ".join(f(g(("fair", 10, n))["w50"]) for n in (8, 16, 32)),
                 " / ".join(f(g(("fair", 10, n))["w999"]) for n in (8, 16, 32)),
                 " / ".join(f(g(("plain", 10, n))["w999"]) for n in (8, 16, 32)) if all(g(("plain", 10, n)) for n in (8, 16, 32)) else "n/a"))
if fr8 and fr8.get("script_us") and RTT_MS:
    R.append("- **Fair hand-off (the library)**: no extra round trip (the claim is queued behind the "
             "BLPOP, see the MONITOR table, as for the plain lock), but the two scripts on the "
             "hand-off path cost about "
             "2 x %s us = %s RTT of server time, against %s us for the plain release script: every "
             "fair script begins with TIME + ZRANGEBYSCORE (the purge); the release also reads the "
             "head (ZRANGE, ZSCORE of its lease) and deletes two wake lists before the LPUSH; the "
             "claim rewrites lock:NAME (already the grantee's since the grant) and deletes a wake "
             "list the BLPOP has just emptied; every enqueueing try reads and resets both sets' "
             "expiries (PTTL + PEXPIRE twice). That alone exceeds the 1.5 RTT target before network "
             "and wake-up time; the rest of the p50 (the plain lock, the same path with lighter "
             "scripts, measures %s RTT in the same run) is the waking of the waiter's process on "
             "the shared CPU. Dropping the "
             "redundant rewrite and deletes would shorten the path (each redis.call costs a few us "
             "here); the p99 (tens of RTT for both locks) is the loaded machine." % (
                 f(fr8["script_us"]), f(rtt(2 * fr8["script_us"] / 1000.0)), f(pl8.get("script_us") if pl8 else None),
                 f(rtt(pct([x / 1e4 for x in (load("prims_handoff_plain_w8") or {}).get("lat", [])], 50)))))
cs_ = contend("prims_contend_sem_h10_n32")
if cs_ and g(("plain", 10, 8)):
    R.append("- **Semaphore hand-off**: measured inside the 32-process contended run (the only way to "
             "measure redis-semaphore the same way), where the releaser keeps running on the waiters' "
             "CPU; by that measure the plain lock's hand-off (8 processes) is %s RTT. The semaphore's "
             "is %s RTT, %s x faster than redis-semaphore's (which polls every 10 ms); against the "
             "2 RTT target the measure's scheduling share weighs as much as the commands do "
             "(%s scripts per acquisition, %s us each)." % (
                 f(rtt(g(("plain", 10, 8))["ho_p50"])), f(rtt(cs_["ho_p50"])),
                 f(ns["ho_p50"] / cs_["ho_p50"] if ns and cs_["ho_p50"] else None, 1),
                 f(cs_.get("scripts"), 2), f(cs_.get("script_us"))))
crash = {k: load("prims_crash_" + k) for k in ("plain", "sem", "redlock", "mutex", "semaphore")}
if all(crash.values()):
    def cr(k, fn):
        v = [x / 1000 for x in crash[k]["late_us"]]
        return f(fn(v))
    R.append("- **Crashed holders**: our takeovers land %s ms (lock) and %s ms (semaphore) after the "
             "expiry at the median, the peers' %s / %s / %s ms (redlock / Mutex / Semaphore: they "
             "poll); our worst single trials (%s ms lock, %s ms semaphore) are single outliers "
             "on the loaded machine (not examined further)." % (
                 cr("plain", lambda v: pct(v, 50)), cr("sem", lambda v: pct(v, 50)),
                 cr("redlock", lambda v: pct(v, 50)), cr("mutex", lambda v: pct(v, 50)),
                 cr("semaphore", lambda v: pct(v, 50)), cr("plain", max), cr("sem", max)))
rl8, rl32 = contend("prims_contend_redlock_h10_n8"), contend("prims_contend_redlock_h10_n32")
mu32 = contend("prims_contend_mutex_h10_n32")
if rl8 and rl32 and mu32:
    R.append("- **Node peers**: redlock and redis-semaphore poll (every 10 ms here), so a waiter "
             "wins by luck of timing: at 32 processes fairness is %.2f / %.2f (redlock / Mutex), "
             "p99 waits %s / %s ms, hand-off p50 %s / %s RTT; redlock runs %s scripts per "
             "acquisition at 8 processes and %s at 32 (each failed try runs its lock script and "
             "then its unlock script)." % (
                 rl32["fair"], mu32["fair"], f(rl32["w99"]), f(mu32["w99"]), f(rtt(rl32["ho_p50"])),
                 f(rtt(mu32["ho_p50"])), f(rl8.get("scripts"), 1), f(rl32.get("scripts"), 1)))
R.append("")
L.extend(R)

summary = ["## Targets", "", "| target | |", "|---|---|"]
summary += ["| %s | %s |" % (t, verdict(ok)) for t, ok in SUMMARY]
summary += ["", "%d of %d met." % (sum(1 for _, ok in SUMMARY if ok), len(SUMMARY)), ""]
L[SUMMARY_AT:SUMMARY_AT] = summary
print("\n".join(L))
