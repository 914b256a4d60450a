#!/usr/bin/env bash
# acquire / release / extend across shells, status (text and --json), reset, reset-all.
. "$(dirname "$0")/lib.sh"
start_server main
export REDIS_URL=$URL

# acquire in one shell, status and release in others.
expect 0 "acquire" "$RL" acquire steps
id=$(cat "$T/out")
check "acquire printed a 24-character id ($id)" bash -c "[[ '$id' =~ ^[A-Za-z0-9+/]{24}$ ]]"
check "acquire printed only the id" test "$(wc -l <"$T/out")" = 1 -a ! -s "$T/err"
expect 0 "status of a held lock: 0" bash -c "'$RL' status steps"
check "status text: held by ID, no expiry" test "$(cat "$T/out")" = "held by $id, no expiry"
check "the owner in Redis is the printed id" test "$(rcli GET lock:steps)" = "$id"
expect 1 "acquire -n of a held lock: 1" "$RL" acquire -n steps
one_line_error "held by another owner"
expect 7 "acquire -n -E 7" "$RL" acquire -n -E 7 steps
start=$(now_ms)
expect 1 "acquire -w 0.3 of a held lock: timeout" "$RL" acquire -w 0.3 steps
took=$(($(now_ms) - start))
check "acquire -w 0.3 took ${took} ms (>= 300, < 2000)" test "$took" -ge 300 -a "$took" -lt 2000
expect 1 "acquire -i of the holder's own id: already held" "$RL" acquire -n -i "$id" steps
one_line_error "already held by id"
expect 1 "release with a wrong id: 1" bash -c "'$RL' release -i not-the-owner steps"
one_line_error "not held by not-the-owner"
check "still held after the wrong release" test "$(rcli GET lock:steps)" = "$id"
expect 0 "release -i ID in another shell" bash -c "'$RL' release -i '$id' steps"
expect 1 "status of a free lock: 1" "$RL" status steps
check "status text: free" test "$(cat "$T/out")" = free
expect 1 "release again: not held" "$RL" release -i "$id" steps

# expiries: acquire -x, extend, extend without expiry, a released waiter wakes.
expect 0 "acquire -x 60 -i custom" "$RL" acquire -x 60 -i custom-id exp
check "acquire -i prints that id" test "$(cat "$T/out")" = custom-id
expect 0 "status with expiry" "$RL" status exp
check "status text: expires in N ms, N <= 60000" \
    bash -c "[[ \"\$(cat '$T/out')\" =~ ^held\ by\ custom-id,\ expires\ in\ ([0-9]+)\ ms$ ]] && [ \${BASH_REMATCH[1]} -le 60000 ] && [ \${BASH_REMATCH[1]} -gt 50000 ]"
expect 0 "extend -x 600" "$RL" extend -i custom-id -x 600 exp
check "the expiry grew past 60 s" test "$(rcli PTTL lock:exp)" -gt 60000
expect 1 "extend with a wrong id: 1" "$RL" extend -i someone-else -x 5 exp
one_line_error "not held by someone-else"
"$RL" acquire -i forever noexp >/dev/null
expect 1 "extend of a lock without expiry: 1" "$RL" extend -i forever -x 5 noexp
one_line_error "no expiry"
expect 1 "extend of a free lock: 1" "$RL" extend -i x -x 5 nothing-here

# A waiting acquire wakes when another shell releases.
bg "$RL" acquire -w 20 -i second -x 300 exp >/dev/null
pid=$BG
sleep 0.3
start=$(now_ms)
"$RL" release -i custom-id exp
wait "$pid"
rc=$?
took=$(($(now_ms) - start))
check "a waiting acquire got the lock after the release (exit $rc, ${took} ms < 2000)" \
    test "$rc" = 0 -a "$took" -lt 2000
check "now held by the waiter" test "$(rcli GET lock:exp)" = second

# Waiting longer than -x (no renewal for acquire): the tool waits in steps.
"$RL" acquire -x 1 short >/dev/null
expect 0 "acquire -w 5 -x 0.3 waits past a 1 s holder" "$RL" acquire -w 5 -x 0.3 short
check "new holder's key expires (PTTL > 0)" test "$(rcli PTTL lock:short)" -gt -1

# A signal during acquire's wait: 128+N and no lock.
"$RL" acquire -i holder sig >/dev/null
bg "$RL" acquire -i waiter sig >/dev/null
pid=$BG
wait_until 10 bash -c "'$REDIS_CLI' -s '$SOCK' CLIENT LIST | grep -q cmd=blpop"
kill -TERM "$pid"
wait "$pid"
rc=$?
check "SIGTERM during acquire's wait: 143 (got $rc)" test "$rc" = 143
check "the waiter left no lock" test "$(rcli GET lock:sig)" = holder

# Output errors: the id cannot be printed -> 74, and the lock is released.
expect 74 "acquire >/dev/full: 74" bash -c "'$RL' acquire full >/dev/full"
one_line_error "writing the id.*released"
check "nobody holds the lock whose id was lost" test "$(rcli EXISTS lock:full)" = 0
"$RL" acquire held-for-status >/dev/null
expect 74 "status >/dev/full: 74" bash -c "'$RL' status held-for-status >/dev/full"

# --json, with names and ids that need escaping.
expect 0 "status --json held" "$RL" status --json exp
check "json: held" python3 -c "
import json,sys; d=json.load(open('$T/out'))
assert d['name']=='exp' and d['held'] is True and d['owner']=='second' and d['ttl_ms']>0, d"
expect 1 "status --json free" "$RL" status --json never-taken
check "json: free (owner null, ttl_ms null)" python3 -c "
import json; d=json.load(open('$T/out'))
assert d=={'name':'never-taken','held':False,'owner':None,'ttl_ms':None,'node':'$SOCK'}, d"
expect 0 "status --json no expiry" "$RL" status --json noexp
check "json: no expiry (ttl_ms null)" python3 -c "
import json; d=json.load(open('$T/out'))
assert d['held'] is True and d['owner']=='forever' and d['ttl_ms'] is None, d"
weird_name=$'we"ird\\na\tme\x01 \xc3\xa9'
weird_id=$'i"d\\\n'
"$RL" acquire -i "$weird_id" "$weird_name" >/dev/null
expect 0 "status --json escapes" "$RL" status --json "$weird_name"
check "json escaping round-trips (one line, valid JSON)" python3 -c "
import json; raw=open('$T/out','rb').read(); assert raw.count(b'\n')==1, raw
d=json.loads(raw)
assert d['name']=='we\"ird\\\\na\tme\x01 é' and d['owner']=='i\"d\\\\\n', d"
expect 0 "status text of a weird id stays on one line" "$RL" status "$weird_name"
check "one line" test "$(wc -l <"$T/out")" = 1
printf 'x\377y' >"$T/badutf8"
"$REDIS_CLI" -s "$SOCK" -x SET lock:badowner <"$T/badutf8" >/dev/null
expect 0 "status --json of a non-UTF-8 owner" "$RL" status --json badowner
check "json: invalid UTF-8 becomes U+FFFD" python3 -c "
import json; d=json.load(open('$T/out')); assert d['owner']=='x\ufffdy', d"

# reset and reset-all
expect 0 "reset a held lock" "$RL" reset exp
check "reset: free" test "$(rcli EXISTS lock:exp)" = 0
expect 0 "reset a free lock" "$RL" reset exp
"$RL" acquire r1 >/dev/null
"$RL" acquire -x 100 r2 >/dev/null
n=$(rcli --scan --pattern 'lock:*' | wc -l)
expect 0 "reset-all --yes" "$RL" reset-all --yes
check "reset-all printed the count ($(cat "$T/out") = $n)" test "$(cat "$T/out")" = "$n"
check "no lock:* key left" test "$(rcli --scan --pattern 'lock:*' | wc -l)" = 0
expect 0 "reset-all, stdin not a terminal, no --yes" "$RL" reset-all
check "reset-all of nothing prints 0" test "$(cat "$T/out")" = 0

# -v logs to stderr with timestamps; -u overrides REDIS_URL.
expect 1 "-v status" "$RL" status -v -u "$URL" never
check "-v: timestamped lines on stderr" grep -qE '^redis-lock: [0-9-]+ [0-9:.]+ \[[0-9]+\] ' "$T/err"
expect 1 "-u overrides a broken REDIS_URL" env REDIS_URL=unix:///nonexistent "$RL" -u "$URL" status never

finish
