#!/usr/bin/env bash
# redis-lock cache: hit and miss, failing commands not cached (status and stderr passed
# on), binary-safe output of any size, --refresh, TTL, waits, 50 simultaneous misses
# running the command once, and signals (none leaves the computing lock behind).
. "$(dirname "$0")/lib.sh"
start_server main
export REDIS_URL=$URL

# A command that counts its runs in a file and prints a fresh value.
counter=$T/runs
runs() { if [ -e "$counter" ]; then wc -l <"$counter"; else echo 0; fi; }

expect 0 "miss computes" "$RL" cache -t 60 k1 -- sh -c "echo run >>'$counter'; echo value-\$\$"
first=$(cat "$T/out")
check "the command ran once" test "$(runs)" = 1
check "the value printed ($first)" bash -c "[[ '$first' == value-* ]]"
check "stored under the key itself with a TTL" test "$(rcli PTTL k1)" -gt 50000
expect 0 "hit" "$RL" cache -t 60 k1 -- sh -c "echo run >>'$counter'; echo value-\$\$"
check "hit: same bytes" test "$(cat "$T/out")" = "$first"
check "hit: the command did not run" test "$(runs)" = 1
check "no lock left behind" test "$(rcli EXISTS lock:get_or_set:k1)" = 0
expect 0 "--refresh recomputes" "$RL" cache --refresh -t 60 k1 -- sh -c "echo run >>'$counter'; echo value-\$\$"
check "--refresh: ran again, new value" test "$(runs)" = 2 -a "$(cat "$T/out")" != "$first"
refreshed=$(cat "$T/out")
expect 0 "hit after refresh" "$RL" cache -t 60 k1 -- false
check "hit after refresh: the refreshed value" test "$(cat "$T/out")" = "$refreshed"

# TTL: gone after it passes.
expect 0 "-t 0.3" "$RL" cache -t 0.3 short -- echo one
sleep 0.6
expect 0 "after the TTL: computed again" "$RL" cache -t 0.3 short -- echo two
check "after the TTL: new value" test "$(cat "$T/out")" = two

# A failing command: not cached, stderr passes through, status passed on.
expect 3 "failing command: its status 3" "$RL" cache -t 60 bad -- sh -c 'echo partial; echo oops >&2; exit 3'
check "failing command: its stderr passed through" test "$(cat "$T/err")" = oops
check "failing command: nothing printed on stdout" test ! -s "$T/out"
check "failing command: nothing cached" test "$(rcli EXISTS bad)" = 0
expect 0 "after a failure the next call computes" "$RL" cache -t 60 bad -- echo good
check "... and caches" test "$(cat "$T/out")" = good -a "$(rcli GET bad)" = good
expect 137 "command killed by a signal: 128+9" "$RL" cache -t 60 sig -- sh -c 'echo x; kill -KILL $$'
check "killed command: nothing cached" test "$(rcli EXISTS sig)" = 0
expect 127 "command not found: 127" "$RL" cache -t 60 nf -- no-such-command-here
one_line_error "command not found"
expect 126 "command not executable: 126" "$RL" cache -t 60 nf -- "$T"
check "nothing cached" test "$(rcli EXISTS nf)" = 0

# Empty output is a value too.
expect 0 "empty output" "$RL" cache -t 60 empty -- sh -c "echo run >>'$T/empty-runs'"
check "empty output: nothing printed, stored empty" test ! -s "$T/out" -a "$(rcli EXISTS empty)" = 1
expect 0 "empty output: hit" "$RL" cache -t 60 empty -- sh -c "echo run >>'$T/empty-runs'"
check "empty output: a hit, not recomputed" test "$(wc -l <"$T/empty-runs")" = 1

# Binary-safe: 1 MB of random bytes (NULs included), miss and hit; then 64 MiB.
head -c 1000000 /dev/urandom >"$T/rand"
"$RL" cache -t 60 bin -- cat "$T/rand" >"$T/bin1"
check "1 MB binary: miss output identical" cmp -s "$T/rand" "$T/bin1"
"$RL" cache -t 60 bin -- false >"$T/bin2"
check "1 MB binary: hit output identical" cmp -s "$T/rand" "$T/bin2"
head -c 67108864 /dev/urandom >"$T/big"
"$RL" cache -t 60 big -- cat "$T/big" >"$T/big1"
check "64 MiB: miss output identical" cmp -s "$T/big" "$T/big1"
"$RL" cache -t 60 big -- false >"$T/big2"
check "64 MiB: hit output identical" cmp -s "$T/big" "$T/big2"
rm -f "$T/big" "$T/big1" "$T/big2"
rcli DEL big >/dev/null

# 50 simultaneous misses: the command runs once; everyone prints the same bytes.
rm -f "$T/par-runs"
for i in $(seq 1 50); do
    bg "$RL" cache -t 60 par -- sh -c "echo run >>'$T/par-runs'; sleep 0.5; head -c 100000 /dev/urandom" >"$T/par.$i"
done
allok=1
for p in "${BG_PIDS[@]}"; do wait "$p" || allok=0; done
BG_PIDS=()
check "50 parallel: all exited 0" test "$allok" = 1
check "50 parallel: the command ran exactly once ($(wc -l <"$T/par-runs"))" test "$(wc -l <"$T/par-runs")" = 1
check "50 parallel: 100000 bytes each" test "$(stat -c %s "$T/par.1")" = 100000
same=1
for i in $(seq 2 50); do cmp -s "$T/par.1" "$T/par.$i" || same=0; done
check "50 parallel: identical output" test "$same" = 1

# Waiting for another computation: -w times out (-E), a signal ends the wait.
"$RL" acquire get_or_set:slow >/dev/null
start=$(now_ms)
expect 1 "-w 0.3 while another computes: 1" "$RL" cache -t 60 -w 0.3 slow -- echo x
took=$(($(now_ms) - start))
check "-w 0.3 took ${took} ms (>= 300, < 2000)" test "$took" -ge 300 -a "$took" -lt 2000
one_line_error "timed out after 0.3 s waiting for another process computing 'slow'"
expect 9 "-E 9 on timeout" "$RL" cache -t 60 -w 0.3 -E 9 slow -- echo x
bg "$RL" cache -t 60 slow -- touch "$T/slow-ran"
pid=$BG
wait_until 10 bash -c "'$REDIS_CLI' -s '$SOCK' CLIENT LIST | grep -q cmd=blpop"
kill -TERM "$pid"
wait "$pid"
rc=$?
check "SIGTERM during the wait: 143 (got $rc)" test "$rc" = 143
check "the command never ran" test ! -e "$T/slow-ran"
"$RL" reset get_or_set:slow

# SIGTERM while the command computes: passed on; the command's status; nothing cached.
bg "$RL" cache -t 60 term -- sh -c "trap 'exit 5' TERM; echo \$\$ >'$T/term.pid'; while :; do sleep 0.05; done"
pid=$BG
wait_until 10 test -s "$T/term.pid"
kill -TERM "$pid"
wait "$pid"
rc=$?
check "SIGTERM while computing: passed on, the command's status 5 (got $rc)" test "$rc" = 5
check "nothing cached" test "$(rcli EXISTS term)" = 0
check "the computing lock was released" test "$(rcli EXISTS lock:get_or_set:term)" = 0

# A signal just after the computing lock was taken, before the command starts: nothing is
# left behind. stall_stderr.py holds that moment open: -v logs "acquired get_or_set:KEY"
# right after the lock is taken, to a stderr pipe it has filled, so redis-lock blocks in
# that write until the signal has come.
cat >"$T/stall_stderr.py" <<'PY'
# usage: stall_stderr.py PATTERN SIGNAL CMD...: run CMD with stderr on a pipe; once a line
# matching PATTERN came, fill the pipe, run $THEN (sh), wait until $READY (sh) passes, send
# SIGNAL, then drain the pipe; exit with CMD's status.
import os, signal, subprocess, sys, time
pattern, sig, cmd = sys.argv[1].encode(), getattr(signal, sys.argv[2]), sys.argv[3:]
r, w = os.pipe()
p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=w)
buf = b""
deadline = time.time() + 10
while pattern not in buf and time.time() < deadline:
    data = os.read(r, 65536)
    if not data:
        break
    buf += data
if pattern not in buf:
    sys.exit("stall_stderr: no line matching %r; got %r" % (pattern, buf))
# a write end of our own (the child's must stay blocking), non-blocking: fill up
fill = os.open("/proc/self/fd/%d" % w, os.O_WRONLY | os.O_NONBLOCK)
try:
    while True:
        os.write(fill, b"#" * 4096)
except BlockingIOError:
    pass
os.close(fill)
subprocess.check_call(["sh", "-c", os.environ["THEN"]])
deadline = time.time() + 10
while subprocess.call(["sh", "-c", os.environ["READY"]]) != 0:
    if time.time() > deadline:
        sys.exit("stall_stderr: $READY never passed")
    time.sleep(0.05)
time.sleep(0.3)  # it is blocked in the write by now (nothing else for it to do)
p.send_signal(sig)
time.sleep(0.3)
os.close(w)
while os.read(r, 65536):
    pass
sys.exit(os.waitstatus_to_exitcode(os.waitpid(p.pid, 0)[1]))
PY
holder=$("$RL" acquire get_or_set:win)
THEN="'$RL' release -i '$holder' get_or_set:win" \
READY="o=\$('$REDIS_CLI' -s '$SOCK' GET lock:get_or_set:win); [ -n \"\$o\" ] && [ \"\$o\" != '$holder' ]" \
    expect 143 "SIGTERM just after the computing lock was taken: 143" \
    python3 "$T/stall_stderr.py" "waiting for get_or_set:win" SIGTERM \
    "$RL" -v cache -t 60 win -- touch "$T/win-ran"
check "no lock left behind" test "$(rcli EXISTS lock:get_or_set:win)" = 0
check "the command never ran" test ! -e "$T/win-ran"
check "nothing cached" test "$(rcli EXISTS win)" = 0

# Output errors: 74, after the value was stored.
expect 74 "cache >/dev/full: 74" bash -c "'$RL' cache -t 60 full -- echo stored >/dev/full"
one_line_error "writing to standard output"
check "the value was stored anyway" test "$(rcli GET full)" = stored

# -x sets the computing lock's expiry.
expect 0 "-x 0.6: a computation longer than the expiry (renewed)" \
    "$RL" cache -t 60 -x 0.6 renewed -- sh -c 'sleep 1.2; echo done'
check "renewed computation stored" test "$(rcli GET renewed)" = done

finish
