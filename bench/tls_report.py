"""The TLS section of the benchmark report (bench/run step 8): TLS against plain TCP on the
same server, in interleaved rounds, as ratios.

    python3 bench/tls_report.py RAW      prints the markdown section
    section(RAW) -> (lines, results)     used by bench/report.py
"""
import json
import math
import os
import sys


def _load(raw, name):
    try:
        with open(os.path.join(raw, name + ".json")) as f:
            d = json.load(f)
        return None if isinstance(d, dict) and "error" in d else d
    except (OSError, ValueError):
        return None


def _pct(v, q):
    if not v:
        return None
    s = sorted(v)
    return s[max(0, min(len(s) - 1, math.ceil(q / 100 * len(s)) - 1))]


def _median(v):
    v = [x for x in v if x is not None]
    if not v:
        return None
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _f(x, nd=1):
    if x is None:
        return "n/a"
    return "{:,.{}f}".format(x, nd)


def section(raw):
    rounds = 0
    while _load(raw, "tls_pairs_tcp_%d" % (rounds + 1)) is not None or \
            _load(raw, "tls_pairs_tls_%d" % (rounds + 1)) is not None:
        rounds += 1
    if not rounds:
        return [], None
    pairs = {tr: [_load(raw, "tls_pairs_%s_%d" % (tr, k)) for k in range(1, rounds + 1)]
             for tr in ("tcp", "tls")}
    hand = {}
    for tr in ("tcp", "tls"):
        lat = []
        for k in range(1, rounds + 1):
            d = _load(raw, "tls_handoff_%s_%d" % (tr, k))
            if d:
                lat += [x / 10 for x in d.get("lat", [])]  # 0.1 us -> us
        hand[tr] = lat
    py = {tr: _load(raw, "tls_unc_redispy_" + tr) for tr in ("tcp", "tls")}

    rate = {tr: _median([(d or {}).get("pairs_per_s") for d in pairs[tr]]) for tr in pairs}
    per_round = [(a or {}).get("pairs_per_s") and (b or {}).get("pairs_per_s") and
                 b["pairs_per_s"] / a["pairs_per_s"] for a, b in zip(pairs["tcp"], pairs["tls"])]
    per_round = [r for r in per_round if r]
    ratio = _median(per_round)
    conns = {tr: [(d or {}).get("connections_opened") for d in pairs[tr]] for tr in pairs}
    open_ms = {tr: _median([(d or {}).get("open_ms") for d in pairs[tr]]) for tr in pairs}
    cpu = {tr: _median([(d or {}).get("cpu_us_per_pair") for d in pairs[tr]]) for tr in pairs}
    h50 = {tr: _pct(hand[tr], 50) for tr in hand}
    h99 = {tr: _pct(hand[tr], 99) for tr in hand}
    hratio = h50["tls"] / h50["tcp"] if h50["tcp"] and h50["tls"] else None
    pyrate = {tr: (py[tr] or {}).get("pairs_per_s") for tr in py}
    pyratio = pyrate["tls"] / pyrate["tcp"] if pyrate["tcp"] and pyrate["tls"] else None

    def ok(x):
        return "n/a" if x is None else ("**met**" if x else "**missed**")

    L = []
    w = L.append
    w("## 8. TLS against plain TCP")
    w("")
    w("The same server, its TLS port (TLS 1.3, a P-256 certificate from a throwaway CA) and "
      "its plain port, in %d interleaved rounds: each round runs 10,000 uncontended "
      "acquire+release pairs on a new client, then a 1-waiter hand-off, over TCP and then "
      "over TLS. Connections opened = the server's `total_connections_received` around "
      "the pairs (including the client's first connection)." % rounds)
    w("")
    w("| | plain TCP | TLS | TLS / TCP | target |")
    w("|---|---|---|---|---|")
    w("| uncontended pairs/s (median of rounds; ratio: median of the per-round ratios) | %s | %s | %s | ≥ 0.85: %s |" % (
        _f(rate["tcp"], 0), _f(rate["tls"], 0), _f(ratio, 2),
        ok(ratio >= 0.85 if ratio else None)))
    w("| client CPU µs per pair | %s | %s | %s | |" % (
        _f(cpu["tcp"]), _f(cpu["tls"]),
        _f(cpu["tls"] / cpu["tcp"], 2) if cpu["tcp"] and cpu["tls"] else "n/a"))
    w("| connections opened per 10,000 pairs (each round) | %s | %s | | the handshake once per pooled connection |" % (
        ", ".join(str(c) for c in conns["tcp"]), ", ".join(str(c) for c in conns["tls"])))
    w("| client open (connect + handshake + first commands), ms | %s | %s | | |" % (
        _f(open_ms["tcp"], 2), _f(open_ms["tls"], 2)))
    w("| hand-off p50 µs (1 waiter, %d samples TCP, %d TLS) | %s | %s | %s | ≤ 1.2: %s |" % (
        len(hand["tcp"]), len(hand["tls"]), _f(h50["tcp"]), _f(h50["tls"]), _f(hratio, 2),
        ok(hratio <= 1.2 if hratio else None)))
    w("| hand-off p99 µs | %s | %s | %s | |" % (
        _f(h99["tcp"]), _f(h99["tls"]),
        _f(h99["tls"] / h99["tcp"], 2) if h99["tcp"] and h99["tls"] else "n/a"))
    w("| redis-py `Lock` pairs/s (reference) | %s | %s | %s | |" % (
        _f(pyrate["tcp"], 0), _f(pyrate["tls"], 0), _f(pyratio, 2)))
    w("")
    w("Per-round TLS/TCP pair-rate ratios: %s." % ", ".join(_f(r, 2) for r in per_round))
    env = _load(raw, "env") or {}
    if env.get("loadavg_before"):
        w("")
        w("Load average when the run began: %s (%s CPUs, shared with other work; the "
          "per-round spread shows how much of a ratio is the machine)." % (
              " ".join(env["loadavg_before"].split()[:3]), env.get("ncpu", "?")))
    w("")
    results = {"rounds": rounds, "pairs": pairs, "handoff_lat_us": hand, "redispy": py,
               "pairs_ratio": ratio, "handoff_p50_ratio": hratio, "redispy_ratio": pyratio}
    return L, results


if __name__ == "__main__":
    lines, _ = section(sys.argv[1])
    print("\n".join(lines) if lines else "no TLS step in %s" % sys.argv[1])
