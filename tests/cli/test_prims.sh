#!/usr/bin/env bash
# redis-lock --fair, -s and --limit N (docs/design.md section 7): fair runs exclude each
# other and queue in order, shared runs overlap while plain ones wait, a semaphore lets N
# at a time, a limit conflict exits 64 naming both limits, acquire/release/extend/status of
# each kind, status lists the holders (text and --json).
. "$(dirname "$0")/lib.sh"
start_server main
export REDIS_URL=$URL

queued() { test "$(rcli ZCARD "$1")" = "$2"; } # KEY N: the sorted set KEY has N members

# --- fair: exclusion between processes, and arrival order
log=$T/fair
for p in 1 2 3 4 5; do
    bg bash -c "for i in 1 2 3; do '$RL' run --fair -w 60 fr -- sh -c 'echo \"S \$(date +%s%N)\" >>$log; sleep 0.02; echo \"E \$(date +%s%N)\" >>$log' || exit 1; done"
done
allok=1
for p in "${BG_PIDS[@]}"; do wait "$p" || allok=0; done
BG_PIDS=()
check "--fair: all 15 runs succeeded" test "$allok" = 1
check "--fair: 15 intervals, none overlapping" awk '
    { n++; if (($1 == "S") != (NR % 2 == 1)) bad = 1; if ($2 < prev) bad = 1; prev = $2 }
    END { exit bad || n != 30 }' "$log"
id=$("$RL" acquire --fair order)
for w in 1 2 3 4; do
    bg "$RL" run --fair -w 30 order -- sh -c "echo $w >>'$T/order'"
    check "--fair: waiter $w queued" wait_until 20 queued lock-queue:order "$w"
done
expect 0 "--fair: release hands the lock on" "$RL" release --fair -i "$id" order
for p in "${BG_PIDS[@]}"; do wait "$p"; done
BG_PIDS=()
check "--fair: waiters ran in arrival order ($(tr '\n' ' ' <"$T/order"))" \
    test "$(tr -d '\n' <"$T/order")" = 1234
expect 1 "--fair: status of the free lock" "$RL" status --fair order

# --- shared: shared runs overlap; a plain run waits for them; a waiting plain run stops
# new shared ones
# each holds until both are inside and the checks below are done ($T/rdone; at most 60 s, so
# a failed run leaves nothing behind): a fixed hold let a loaded machine end both before a check
hold_until() { echo "i=0; while [ ! -e '$1' ] && [ \$i -lt 1200 ]; do sleep 0.05; i=\$((i + 1)); done"; }
bg "$RL" run -s rw -- sh -c "touch '$T/r1'; $(hold_until "$T/r2"); $(hold_until "$T/rdone")"
bg "$RL" run -s rw -- sh -c "touch '$T/r2'; $(hold_until "$T/r1"); $(hold_until "$T/rdone")"
check "-s: two shared runs are inside at once" wait_until 20 test -e "$T/r1" -a -e "$T/r2"
expect 0 "-s: status lists the shared holders" "$RL" status -s rw
check "-s: 'held by 2 holders (shared)' and two holder lines" bash -c "
    head -n1 '$T/out' | grep -qx 'held by 2 holders (shared)' &&
    test \$(grep -cE '^  [A-Za-z0-9+/]{24}, expires in [0-9]+ ms$' '$T/out') = 2"
expect 0 "-s --json" "$RL" status -s --json rw
check "-s --json: a holders array of two" python3 -c "
import json, sys
d = json.load(open('$T/out'))
assert d['name'] == 'rw' and d['held'] is True and d['owner'] is None, d
assert len(d['holders']) == 2 and all(len(h['id']) == 24 and h['ttl_ms'] > 0 for h in d['holders']), d"
expect 1 "-s: a plain run cannot enter while shared holders hold" "$RL" run -n rw -- true
touch "$T/rdone"
for p in "${BG_PIDS[@]}"; do wait "$p"; done
BG_PIDS=()
rid=$("$RL" acquire -s -x 30 rw2)
bg "$RL" run -w 20 rw2 -- touch "$T/writer-ran"
check "-s: the waiting plain run counts as a writer" wait_until 20 queued lock-writers:rw2 1
expect 1 "-s: a new shared run is kept out by the waiting writer" "$RL" run -s -n rw2 -- true
expect 0 "-s: extend the shared hold" "$RL" extend -s -i "$rid" -x 20 rw2
expect 0 "-s: release the shared hold" "$RL" release -s -i "$rid" rw2
for p in "${BG_PIDS[@]}"; do wait "$p"; done
BG_PIDS=()
check "-s: the writer ran after the shared holder left" test -e "$T/writer-ran"
expect 1 "-s: release again: not held" "$RL" release -s -i "$rid" rw2
one_line_error "is not held by" "-s: not-held message"

# --- semaphore: never more than N, conflicts, status
# each run holds 1 s: a shorter hold let a loaded machine start the runs too far apart to overlap
cnt=$T/cnt
for p in 1 2 3 4 5 6; do
    bg "$RL" run --limit 2 -w 60 sem -- sh -c "
        mkdir '$cnt.lock.'\$\$ 2>/dev/null; n=\$(ls -d '$cnt'.lock.* | wc -l); echo \$n >>'$cnt'
        sleep 1; rmdir '$cnt.lock.'\$\$"
done
allok=1
for p in "${BG_PIDS[@]}"; do wait "$p" || allok=0; done
BG_PIDS=()
check "--limit 2: all 6 runs succeeded" test "$allok" = 1
check "--limit 2: never more than 2 inside ($(sort -n "$cnt" | tail -n1) at most)" \
    test "$(sort -n "$cnt" | tail -n1)" -le 2 -a "$(wc -l <"$cnt")" = 6
check "--limit 2: two were inside at once" grep -qx 2 "$cnt"
p1=$("$RL" acquire --limit 2 -x 30 slots)
expect 0 "--limit: REDIS_LOCK_ID is the permit's id" "$RL" run --limit 2 slots -- sh -c 'echo "$REDIS_LOCK_ID"; "$0" status --limit 2 slots' "$RL"
check "--limit: the running permit is listed with the acquired one" bash -c "
    id=\$(head -n1 '$T/out'); grep -qx 'held by 2 holders' '$T/out' &&
    grep -q \"^  \$id, expires in\" '$T/out' && grep -q '^  $p1, expires in' '$T/out'"
expect 64 "--limit 3 while holders hold with 2: usage error" "$RL" run --limit 3 -n slots -- true
one_line_error "limit 2.*limit 3" "limit conflict names both limits"
p2=$("$RL" acquire --limit 2 slots)
expect 1 "--limit 2: full" "$RL" acquire --limit 2 -n slots
one_line_error "all 2 permits of semaphore 'slots' are held" "full message"
expect 0 "--limit --json" "$RL" status --limit 2 --json slots
check "--limit --json: limit and holders" python3 -c "
import json
d = json.load(open('$T/out'))
assert d['held'] and d['limit'] == 2 and d['owner'] is None, d
ids = sorted(h['id'] for h in d['holders'])
assert ids == sorted(['$p1', '$p2']), d
assert [h['ttl_ms'] is None for h in d['holders']].count(True) == 1, d"
expect 0 "--limit: extend a permit" "$RL" extend --limit 2 -i "$p1" -x 60 slots
expect 1 "--limit: a permit without expiry cannot be extended" "$RL" extend --limit 2 -i "$p2" -x 60 slots
expect 0 "--limit: release a permit" "$RL" release --limit 2 -i "$p1" slots
expect 0 "--limit: release the other" "$RL" release --limit 2 -i "$p2" slots
expect 1 "--limit: status of a free semaphore" "$RL" status --limit 2 slots
check "--limit: free" grep -qx free "$T/out"
check "--limit: no keys left" test "$(rcli EXISTS semaphore:slots semaphore-limit:slots)" = 0

# --- usage
expect 64 "--fair with -s" "$RL" run --fair -s u -- true
one_line_error "cannot be used together"
expect 64 "--limit 0" "$RL" acquire --limit 0 u
expect 64 "--limit x" "$RL" status --limit x u
expect 64 "--fair on reset is unknown" "$RL" reset --fair u
expect 64 "-i (shared), the shared holders' marker" "$RL" acquire -n -i "(shared)" u
check "no key written for the marker id" test "$(rcli exists lock:u)" = 0

finish
