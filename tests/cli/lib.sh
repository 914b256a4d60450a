# Shared by the redis-lock CLI tests (source it). Starts throwaway redis-servers on private
# unix sockets in a temp dir and always stops them (trap cleanup EXIT); a server that cannot
# start fails the test, it never skips it. Needs REDIS_LOCK_BIN (the binary under test).
set -u -o pipefail

: "${REDIS_LOCK_BIN:?set REDIS_LOCK_BIN to the redis-lock binary}"
RL=$REDIS_LOCK_BIN
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
T=$(mktemp -d /tmp/redis-lock-cli.XXXXXX) || { echo "FAIL - mktemp"; exit 1; }
PASSED=0
FAILED=0
SERVER_PIDS=()
BG_PIDS=()
unset REDIS_URL REDISCLI_AUTH REDIS_LOCK_NAME REDIS_LOCK_ID REDIS_LOCK_TOKEN

cleanup() {
    local rc=$? p
    trap - EXIT
    for p in "${BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    # commands whose redis-lock died with a failed check: they wrote their pid to *.pid
    for p in "$T"/*.pid; do [ -s "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null; done
    for p in "${SERVER_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$T"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ok() { PASSED=$((PASSED + 1)); echo "ok - $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $*"; }

# start_server NAME [redis-server ARGS...]: a server on $T/NAME.sock; sets SOCK and URL.
start_server() {
    local name=$1 i
    shift
    SOCK=$T/$name.sock
    URL=unix://$SOCK
    "$REDIS_SERVER" --port 0 --unixsocket "$SOCK" --unixsocketperm 700 --save '' \
        --appendonly no --dir "$T" --logfile "$T/$name.log" "$@" &
    local pid=$!
    SERVER_PIDS+=("$pid")
    for ((i = 0; i < 200; i++)); do
        if [ -S "$SOCK" ] && "$REDIS_CLI" -s "$SOCK" ping 2>&1 | grep -qE 'PONG|NOAUTH'; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "FAIL - redis-server $name did not start; its log:"
    cat "$T/$name.log" 2>/dev/null
    exit 1
}

rcli() { "$REDIS_CLI" -s "$SOCK" "$@"; }

free_tcp_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# make_certs: a throwaway PKI in $CERTS (tests/make-certs.sh: ca, server, client,
# other-ca, other-client; .crt and .key), once per script.
make_certs() {
    CERTS=$T/certs
    [ -s "$CERTS/ca.crt" ] && return 0
    sh "$(dirname "${BASH_SOURCE[0]}")/../make-certs.sh" "$CERTS" ||
        { echo "FAIL - cannot make test certificates (openssl tool?)"; exit 1; }
}

# start_tls_server NAME [yes|no] [redis-server ARGS...]: start_server NAME that also
# listens with TLS on a free loopback port (tls-auth-clients $2, default no); sets
# TLS_PORT and TLS_URL (rediss://127.0.0.1:PORT/0?cacert=..., with the client
# certificate when $2 is yes) besides SOCK and URL.
start_tls_server() {
    local name=$1 mutual=${2:-no}
    shift $(($# > 1 ? 2 : 1))
    make_certs
    TLS_PORT=$(free_tcp_port)
    start_server "$name" --tls-port "$TLS_PORT" --bind 127.0.0.1 \
        --tls-cert-file "$CERTS/server.crt" --tls-key-file "$CERTS/server.key" \
        --tls-ca-cert-file "$CERTS/ca.crt" --tls-auth-clients "$mutual" "$@"
    TLS_URL="rediss://127.0.0.1:$TLS_PORT/0?cacert=$CERTS/ca.crt"
    [ "$mutual" = yes ] && TLS_URL="$TLS_URL&cert=$CERTS/client.crt&key=$CERTS/client.key"
    return 0
}

# bg CMD...: start CMD in the background (stdin from /dev/null); its pid in BG.
bg() {
    "$@" </dev/null &
    BG=$!
    BG_PIDS+=("$BG")
}

# expect CODE DESC CMD...: run CMD (stdout in $T/out, stderr in $T/err), check its status.
expect() {
    local want=$1 desc=$2 got
    shift 2
    "$@" >"$T/out" 2>"$T/err" </dev/null
    got=$?
    if [ "$got" = "$want" ]; then
        ok "$desc"
    else
        fail "$desc: exit $got, want $want; stderr: $(head -c 400 "$T/err")"
    fi
}

# check DESC CMD...: CMD must succeed.
check() {
    local desc=$1
    shift
    if "$@"; then ok "$desc"; else fail "$desc"; fi
}

# The error report of the last expect: one line starting "redis-lock: ", matching $1.
one_line_error() {
    local pattern=$1 desc=${2:-error message}
    if [ "$(wc -l <"$T/err")" = 1 ] && head -n1 "$T/err" | grep -q '^redis-lock: ' &&
        grep -qE -- "$pattern" "$T/err"; then
        ok "$desc: $(head -c 160 "$T/err")"
    else
        fail "$desc: want one line matching /$pattern/, got: $(head -c 400 "$T/err")"
    fi
}

now_ms() { date +%s%3N; }

# wait_until SECONDS CMD...: poll CMD every 50 ms; false when it never succeeded.
wait_until() {
    local limit=$(($(now_ms) + $1 * 1000))
    shift
    while ! "$@" 2>/dev/null; do
        [ "$(now_ms)" -lt "$limit" ] || return 1
        sleep 0.05
    done
}

finish() {
    echo "$PASSED passed, $FAILED failed"
    [ "$FAILED" = 0 ]
}
