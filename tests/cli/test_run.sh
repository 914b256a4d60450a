#!/usr/bin/env bash
# redis-lock run: exit statuses, the command's environment, busy and timed-out locks,
# waiting longer than the expiry, renewal, mutual exclusion between processes.
. "$(dirname "$0")/lib.sh"
start_server main
export REDIS_URL=$URL

# Exit statuses of the command are passed on.
expect 0 "true exits 0" "$RL" run a -- true
expect 3 "exit 3 is passed on" "$RL" run a -- sh -c 'exit 3'
expect 137 "killed by SIGKILL: 128+9" "$RL" run a -- sh -c 'kill -KILL $$'
expect 143 "killed by SIGTERM: 128+15" "$RL" run a -- sh -c 'kill -TERM $$'
expect 127 "command not found: 127" "$RL" run a -- no-such-command-here
one_line_error "no-such-command-here: command not found" "not found message"
expect 127 "missing path: 127" "$RL" run a -- "$T/missing/prog"
one_line_error "No such file or directory"
printf '#!/bin/sh\necho hi\n' >"$T/noexec.sh"
chmod 644 "$T/noexec.sh"
expect 126 "not executable: 126" "$RL" run a -- "$T/noexec.sh"
one_line_error "Permission denied"
expect 126 "a directory: 126" "$RL" run a -- "$T"
expect 1 "lock is free after each run" "$RL" status a
check "status says free" grep -qx free "$T/out"
expect 0 "arguments reach the command verbatim" "$RL" run a -- printf '%s|' 'two words' '' '*' '-w' '--'
check "arguments verbatim" test "$(cat "$T/out")" = 'two words||*|-w|--|'
expect 0 "options after NAME" "$RL" run a -w 5 -x 10 -- true
expect 0 "stdin reaches the command" bash -c "echo piped | '$RL' run a -- cat >'$T/stdin.out'"
check "stdin content" test "$(cat "$T/stdin.out")" = piped

# The command's environment.
REDIS_LOCK_TOKEN=stale expect 0 "environment" "$RL" run -i my-id envlock -- \
    sh -c 'echo "$REDIS_LOCK_NAME $REDIS_LOCK_ID ${REDIS_LOCK_TOKEN-unset}"; "$0" status envlock' "$RL"
check "REDIS_LOCK_NAME, REDIS_LOCK_ID set; a stale REDIS_LOCK_TOKEN removed" \
    test "$(head -n1 "$T/out")" = "envlock my-id unset"
check "the lock is held by that id while the command runs" grep -q '^held by my-id, expires in' "$T/out"
expect 0 "random id" "$RL" run envlock -- sh -c 'echo "$REDIS_LOCK_ID"'
check "random id is 24 base64 characters" grep -qE '^[A-Za-z0-9+/]{24}$' "$T/out"
expect 0 "--fencing" "$RL" run --fencing fence -- sh -c 'echo "$REDIS_LOCK_TOKEN"'
t1=$(cat "$T/out")
expect 0 "--fencing again" "$RL" run --fencing fence -- sh -c 'echo "$REDIS_LOCK_TOKEN"'
t2=$(cat "$T/out")
check "fencing tokens increase ($t1 < $t2)" test "$t1" -ge 1 -a "$t2" -gt "$t1"
expect 0 "-x 0: no expiry" "$RL" run -x 0 noexp -- "$RL" status noexp
check "held with no expiry" grep -q ', no expiry$' "$T/out"

# Busy locks: -n, -E, -q, -w.
id=$("$RL" acquire busy)
expect 1 "-n on a held lock: 1" "$RL" run -n busy -- touch "$T/ran"
one_line_error "held by another owner" "busy message"
check "the command did not run" test ! -e "$T/ran"
expect 42 "-E 42 on a held lock" "$RL" run -n -E 42 busy -- true
expect 1 "-w 0 is -n" "$RL" run -w 0 busy -- true
expect 1 "-q: busy" "$RL" run -q -n busy -- true
check "-q: nothing on stderr" test ! -s "$T/err"
start=$(now_ms)
expect 1 "-w 0.3 on a held lock times out" "$RL" run -w 0.3 busy -- true
took=$(($(now_ms) - start))
check "-w 0.3 took ${took} ms (>= 300, < 2000)" test "$took" -ge 300 -a "$took" -lt 2000
one_line_error "timed out after 0.3 s waiting for lock 'busy'" "timeout message"
expect 1 "-i of the holder: already held" "$RL" run -n -i "$id" busy -- true
one_line_error "already held" "already-held message"
"$RL" release -i "$id" busy

# -w longer than -x without renewal: the tool waits in steps (the library alone refuses).
start=$(now_ms)
"$RL" acquire -x 1 steps >/dev/null
expect 0 "-w 4 -x 0.4 --no-renew waits past the holder's 1 s expiry" \
    "$RL" run -w 4 -x 0.4 --no-renew steps -- true
took=$(($(now_ms) - start))
check "stepped wait took ${took} ms since the holder's acquire (>= 1000, < 4000)" \
    test "$took" -ge 1000 -a "$took" -lt 4000
"$RL" acquire steps2 >/dev/null
start=$(now_ms)
expect 1 "-w 1.2 -x 0.5 --no-renew on a lock that never frees: timeout" \
    "$RL" run -w 1.2 -x 0.5 --no-renew steps2 -- true
took=$(($(now_ms) - start))
check "stepped timeout took ${took} ms (>= 1200, < 3000)" test "$took" -ge 1200 -a "$took" -lt 3000
one_line_error "timed out after 1.2 s" "stepped timeout message"

# Renewal keeps a short expiry alive for a long command; --no-renew lets it lapse (75).
expect 0 "-x 0.6 renewed through a 2 s command" \
    "$RL" run -x 0.6 renew -- sh -c 'sleep 2; "$0" status renew' "$RL"
check "still held (renewed) at the end" grep -q '^held by' "$T/out"
expect 75 "--no-renew -x 0.5 with a 1.5 s command: the lock lapsed" \
    "$RL" run -x 0.5 --no-renew lapse -- sleep 1.5
one_line_error "expired or was reset while the command ran" "lapsed message"

# Mutual exclusion: 6 processes x 3 runs append start/end times to one file; the
# intervals must not overlap.
log=$T/intervals
for p in 1 2 3 4 5 6; do
    bg bash -c "for i in 1 2 3; do '$RL' run -w 60 ovl -- sh -c 'echo \"S \$(date +%s%N)\" >>$log; sleep 0.02; echo \"E \$(date +%s%N)\" >>$log' || exit 1; done"
done
allok=1
for p in "${BG_PIDS[@]}"; do wait "$p" || allok=0; done
BG_PIDS=()
check "all 18 runs succeeded" test "$allok" = 1
check "18 intervals recorded" test "$(grep -c '^S' "$log")" = 18 -a "$(grep -c '^E' "$log")" = 18
check "no two intervals overlap" awk '
    { if (($1 == "S") != (NR % 2 == 1)) bad = 1; if ($2 < prev) bad = 1; prev = $2 }
    END { exit bad }' "$log"

# Verbose logs the steps with timestamps, on stderr only.
expect 0 "-v" "$RL" -v run verbose -- true
check "-v: acquiring, acquired, releasing with timestamps" bash -c "
    grep -qE '^redis-lock: [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:.]+ .*acquiring' '$T/err' &&
    grep -q 'acquired verbose' '$T/err' && grep -q 'releasing verbose' '$T/err'"
check "-v: stdout untouched" test ! -s "$T/out"

finish
