#!/usr/bin/env bash
# Connections: an unreachable Redis exits 69; a refused password or permission exits 77;
# the password may come from the URL or $REDISCLI_AUTH and is never printed.
. "$(dirname "$0")/lib.sh"

# Unreachable: a unix socket nobody listens on, and a TCP port nobody listens on.
nowhere=unix://$T/nobody-listens.sock
free_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for url in "$nowhere" "redis://127.0.0.1:$free_port/0"; do
    expect 69 "status, unreachable $url" "$RL" -u "$url" status x
    one_line_error "cannot connect" "unreachable message"
    expect 69 "run, unreachable" "$RL" -u "$url" run x -- touch "$T/ran"
    check "run: the command did not run" test ! -e "$T/ran"
    expect 69 "acquire, unreachable" "$RL" -u "$url" acquire x
    expect 69 "release, unreachable" "$RL" -u "$url" release -i a x
    expect 69 "extend, unreachable" "$RL" -u "$url" extend -i a -x 1 x
    expect 69 "reset, unreachable" "$RL" -u "$url" reset x
    expect 69 "reset-all, unreachable" "$RL" -u "$url" reset-all --yes
    expect 69 "cache, unreachable" "$RL" -u "$url" cache -t 5 k -- touch "$T/ran"
    check "cache: the command did not run" test ! -e "$T/ran"
done
expect 69 "REDIS_URL is used" env REDIS_URL="$nowhere" "$RL" status x

# A server with a password.
secret='s3cr:t/p@ss%word'
start_server auth --requirepass "$secret"
enc=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$secret")
expect 77 "no password: NOAUTH -> 77" "$RL" -u "$URL" status x
one_line_error "NOAUTH" "NOAUTH message"
expect 77 "run without a password: 77" "$RL" -u "$URL" run x -- touch "$T/ran"
check "the command did not run" test ! -e "$T/ran"
expect 77 "wrong password in the URL: 77" "$RL" -u "unix://:wrong@$SOCK" status x
one_line_error "WRONGPASS" "WRONGPASS message"
check "the wrong password is not printed" bash -c "! grep -q wrong '$T/err'"
expect 77 "wrong REDISCLI_AUTH: 77" env REDISCLI_AUTH=wrong "$RL" -u "$URL" status x
expect 1 "password in the URL (%-encoded): works" "$RL" -u "unix://:$enc@$SOCK" status x
check "status free" test "$(cat "$T/out")" = free
expect 1 "REDISCLI_AUTH with special characters: works" \
    env REDISCLI_AUTH="$secret" "$RL" -u "$URL" status x
expect 1 "REDISCLI_AUTH with REDIS_URL: works" env REDISCLI_AUTH="$secret" REDIS_URL="$URL" "$RL" status x
expect 0 "REDISCLI_AUTH: run works" env REDISCLI_AUTH="$secret" "$RL" -u "$URL" run x -- true
expect 1 "the URL's own password wins over REDISCLI_AUTH" \
    env REDISCLI_AUTH=wrong "$RL" -u "unix://:$enc@$SOCK" status x
expect 1 "-v with REDISCLI_AUTH" env REDISCLI_AUTH="$secret" "$RL" -v -u "$URL" status x
check "-v logs the connection" grep -q 'connected to' "$T/err"
check "-v never prints the password" bash -c "! grep -qF -e 's3cr' -e '$enc' '$T/err' '$T/out'"
expect 1 "-v with the password in the URL" "$RL" -v -u "unix://:$enc@$SOCK" status x
check "-v masks the URL's password" bash -c "! grep -qF -e 's3cr' -e '$enc' '$T/err' '$T/out'"

# ACL users: a user and REDISCLI_AUTH, and a user without permission (NOPERM -> 77).
"$REDIS_CLI" -s "$SOCK" -a "$secret" --no-auth-warning ACL SETUSER worker on '>wpass' '~*' '&*' '+@all' >/dev/null
"$REDIS_CLI" -s "$SOCK" -a "$secret" --no-auth-warning ACL SETUSER guest on '>gpass' '~nothing:*' '+@all' >/dev/null
expect 1 "user in the URL, password from REDISCLI_AUTH" \
    env REDISCLI_AUTH=wpass "$RL" -u "unix://worker@$SOCK" status x
expect 0 "user:password in the URL: acquire works" "$RL" -u "unix://worker:wpass@$SOCK" acquire -x 5 y
expect 77 "a user without access to lock:* keys: NOPERM -> 77" \
    "$RL" -u "unix://guest:gpass@$SOCK" status x
one_line_error "NOPERM" "NOPERM message"
expect 77 "run as that user: 77" "$RL" -u "unix://guest:gpass@$SOCK" run -n x -- touch "$T/ran"
check "the command did not run" test ! -e "$T/ran"
expect 77 "cache as that user: 77" "$RL" -u "unix://guest:gpass@$SOCK" cache -t 5 k -- touch "$T/ran"

# A server that goes away during a wait: the waiter keeps waiting (the library
# reconnects); here we only check a dead server mid-run does not hang the tool: the
# lock is lost (renewal cannot reach Redis before the expiry) and it exits 75.
start_server flaky
flaky_pid=${SERVER_PIDS[-1]}
bg "$RL" -u "$URL" run -x 1 --grace 0.5 flaky 2>"$T/flaky.err" -- sh -c "echo \$\$ >'$T/flaky.pid'; exec sleep 30"
pid=$BG
wait_until 10 test -s "$T/flaky.pid"
kill -9 "$flaky_pid"
wait "$flaky_pid" 2>/dev/null
wait "$pid"
rc=$?
check "Redis gone mid-run: exit 75 (got $rc)" test "$rc" = 75
cp "$T/flaky.err" "$T/err"
one_line_error "lost lock 'flaky'" "lost message"
check "the command was stopped" bash -c "! kill -0 $(cat "$T/flaky.pid") 2>/dev/null"

finish
