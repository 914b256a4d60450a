#!/usr/bin/env bash
# redis-lock run and signals: passed on to the command; a signal during the wait ends it
# holding nothing; kill -9 of redis-lock reaches the command (PR_SET_PDEATHSIG) and the
# lock expires; a lock lost mid-run (reset from outside) stops the command, exit 75.
. "$(dirname "$0")/lib.sh"
start_server main
export REDIS_URL=$URL

# A command that reports the signals it gets and exits 0 on TERM/HUP/INT.
cat >"$T/trapper.sh" <<'EOF'
#!/bin/sh
out=$1
for s in TERM HUP INT; do trap "echo got-$s >>$out; exit 0" $s; done
echo $$ >"$out.pid"
while :; do sleep 0.05; done
EOF
chmod +x "$T/trapper.sh"

held() { "$RL" status "$1" >/dev/null 2>&1; }
free() { ! held "$1"; }

# Background jobs of a script have SIGINT ignored, and redis-lock leaves ignored signals
# ignored (as shells do); env --default-signal gives it a default SIGINT like a terminal's.
for sig in TERM HUP INT; do
    rm -f "$T/sig.out" "$T/sig.out.pid"
    bg env --default-signal=INT "$RL" run fwd -- "$T/trapper.sh" "$T/sig.out"
    pid=$BG
    check "SIG$sig: the command started" wait_until 10 test -s "$T/sig.out.pid"
    check "SIG$sig: lock held while it runs" held fwd
    kill -"$sig" "$pid"
    wait "$pid"; rc=$?
    check "SIG$sig to redis-lock reached the command" grep -qx "got-$sig" "$T/sig.out"
    check "SIG$sig: the command's status (0) passed on, got $rc" test "$rc" = 0
    check "SIG$sig: lock released after the command exited" free fwd
done

# A command that ignores the signal keeps running; redis-lock waits for it.
bg "$RL" run fwd2 -- sh -c "trap '' TERM; echo \$\$ >'$T/ign.pid'; sleep 1; exit 4"
pid=$BG
wait_until 10 test -s "$T/ign.pid"
kill -TERM "$pid"
wait "$pid"; rc=$?
check "a command that ignores SIGTERM finishes; its status 4 (got $rc)" test "$rc" = 4
check "and the lock was released" free fwd2

# A signal during the wait ends it: 128+N, no lock taken.
id=$("$RL" acquire waitlock)
for sig in TERM INT; do
    bg env --default-signal=INT "$RL" run waitlock -- touch "$T/ran-$sig"
    pid=$BG
    check "SIG$sig: waiter is waiting" wait_until 10 bash -c "'$REDIS_CLI' -s '$SOCK' CLIENT LIST | grep -q cmd=blpop"
    start=$(now_ms)
    kill -"$sig" "$pid"
    wait "$pid"; rc=$?
    took=$(($(now_ms) - start))
    want=$((128 + $(kill -l "$sig")))
    check "SIG$sig during the wait: exit $want (got $rc), in ${took} ms (< 2000)" \
        test "$rc" = "$want" -a "$took" -lt 2000
    check "SIG$sig during the wait: the command never ran" test ! -e "$T/ran-$sig"
done
"$RL" release -i "$id" waitlock
check "the canceled waiters left no lock behind" free waitlock
check "no waiter left blocked on the server" bash -c "! '$REDIS_CLI' -s '$SOCK' CLIENT LIST | grep -q cmd=blpop"

# kill -9 of redis-lock: the command gets SIGTERM at once; the lock expires (-x 2) and
# another run gets it within the expiry.
rm -f "$T/k9.out" "$T/k9.out.pid"
bg "$RL" run -x 2 k9 -- "$T/trapper.sh" "$T/k9.out"
pid=$BG
wait_until 10 test -s "$T/k9.out.pid"
{ kill -9 "$pid" && wait "$pid"; } 2>/dev/null
check "kill -9 of redis-lock: the command got SIGTERM" wait_until 5 grep -qx got-TERM "$T/k9.out"
check "the command is gone" wait_until 5 bash -c "! kill -0 $(cat "$T/k9.out.pid") 2>/dev/null"
start=$(now_ms)
expect 0 "another run gets the lock once it expires" "$RL" run -w 20 k9 -- true
took=$(($(now_ms) - start))
check "within the 2 s expiry plus slack (${took} ms < 6000)" test "$took" -lt 6000

# Lost mid-run: reset from outside. The renewal finds it gone, the command gets SIGTERM,
# redis-lock says so on one line and exits 75.
rm -f "$T/lost.out" "$T/lost.out.pid"
"$RL" run -x 1 lost -- "$T/trapper.sh" "$T/lost.out" 2>"$T/lost.err" &
pid=$!
BG_PIDS+=("$pid")
wait_until 10 test -s "$T/lost.out.pid"
"$RL" reset lost
wait "$pid"; rc=$?
check "lock lost mid-run: exit 75 (got $rc)" test "$rc" = 75
check "the command got SIGTERM" grep -qx got-TERM "$T/lost.out"
cp "$T/lost.err" "$T/err"
one_line_error "lost lock 'lost' while the command ran" "lost message"

# ... and a command that ignores SIGTERM gets SIGKILL after --grace.
rm -f "$T/stub.pid"
bg "$RL" run -x 1 --grace 0.5 lost2 2>/dev/null -- sh -c "trap '' TERM; echo \$\$ >'$T/stub.pid'; while :; do sleep 0.05; done"
pid=$BG
wait_until 10 test -s "$T/stub.pid"
start=$(now_ms)
"$RL" reset lost2
wait "$pid"; rc=$?
took=$(($(now_ms) - start))
check "stubborn command: exit 75 (got $rc) after the grace period (${took} ms >= 500, < 5000)" \
    test "$rc" = 75 -a "$took" -ge 500 -a "$took" -lt 5000
check "stubborn command was killed" bash -c "! kill -0 $(cat "$T/stub.pid") 2>/dev/null"

# Ctrl-C at a terminal: the kernel sends SIGINT to the whole foreground process group, so
# the command has it already; redis-lock must not deliver it a second time.
cat >"$T/ptyrun.py" <<'EOF'
import os, pty, select, subprocess, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
out = b""
def pump(seconds, until=None):
    global out
    end = time.time() + seconds
    while time.time() < end and not (until and until in out):
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                data = os.read(fd, 4096)
            except OSError:
                return
            if not data:
                return
            out += data
pump(10, b"started")
ready = os.environ.get("PTY_READY")  # a shell test to pass before typing Ctrl-C
deadline = time.time() + 10
while ready and subprocess.call(["sh", "-c", ready]) != 0 and time.time() < deadline:
    pump(0.05)
time.sleep(0.3)
os.write(fd, b"\x03")
pump(10)
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
sys.exit(os.waitstatus_to_exitcode(st))
EOF
expect 3 "Ctrl-C at a terminal while the command runs: its status" python3 "$T/ptyrun.py" \
    "$RL" run ctrlc -- sh -c 'n=0; trap "n=\$((n+1)); echo got-INT" INT; echo started; i=0
        while [ $i -lt 60 ]; do sleep 0.05; i=$((i+1)); done; exit $((n + 2))'
check "Ctrl-C reached the command exactly once" test "$(grep -c got-INT "$T/out")" = 1
check "the lock was released" free ctrlc
id=$("$RL" acquire ctrlc)
PTY_READY="'$REDIS_CLI' -s '$SOCK' CLIENT LIST | grep -q cmd=blpop" \
    expect 130 "Ctrl-C at a terminal during the wait: 130" python3 "$T/ptyrun.py" \
    bash -c "echo started; exec '$RL' run ctrlc -- touch '$T/ctrlc-ran'"
check "the command never ran" test ! -e "$T/ctrlc-ran"
check "the lock is still its holder's" test "$("$RL" status ctrlc)" = "held by $id, no expiry"

finish
