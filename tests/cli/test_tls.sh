#!/usr/bin/env bash
# TLS (rediss://): the tool passes the URL to the library; a certificate that does not
# verify or a refused client certificate exits 77, a server that is not there (or does not
# speak TLS) exits 69, a bad TLS parameter 64; each with a one-line message.
. "$(dirname "$0")/lib.sh"

start_tls_server tls
tls_url=$TLS_URL
tls_port=$TLS_PORT
tls_sock=$SOCK

expect 1 "status over TLS" "$RL" -u "$tls_url" status x
check "status says free" test "$(cat "$T/out")" = free
expect 0 "run over TLS" "$RL" -u "$tls_url" run x -- sh -c "\"$REDIS_CLI\" -s '$tls_sock' exists lock:x >'$T/held'"
check "the lock was held while the command ran" test "$(cat "$T/held")" = 1
expect 0 "acquire over TLS" "$RL" -u "$tls_url" acquire -x 30 -i me y
expect 0 "status of a held lock" "$RL" -u "$tls_url" status y
expect 0 "release over TLS" "$RL" -u "$tls_url" release -i me y
expect 0 "cache over TLS: computed" "$RL" -u "$tls_url" cache -t 30 tls:k -- echo computed-once
expect 0 "cache over TLS: hit" "$RL" -u "$tls_url" cache -t 30 tls:k -- echo computed-again
check "the second call got the cached value" test "$(cat "$T/out")" = computed-once
expect 1 "REDIS_URL=rediss://..." env REDIS_URL="$tls_url" "$RL" status x
expect 1 "-v over TLS" "$RL" -v -u "$tls_url" status x
check "-v names the TLS version" grep -q 'TLSv1' "$T/err"
expect 1 "localhost (the certificate's DNS name)" \
    "$RL" -u "rediss://localhost:$tls_port/0?cacert=$CERTS/ca.crt" status x
expect 1 "insecure=1 with the wrong CA" \
    "$RL" -u "rediss://127.0.0.1:$tls_port/0?cacert=$CERTS/other-ca.crt&insecure=1" status x

# refusals: 77
expect 77 "wrong CA: 77" "$RL" -u "rediss://127.0.0.1:$tls_port/0?cacert=$CERTS/other-ca.crt" status x
one_line_error "certificate verify failed" "wrong CA message"
expect 77 "system trust store (no cacert): 77" "$RL" -u "rediss://127.0.0.1:$tls_port" status x
one_line_error "certificate verify failed"
expect 77 "host name mismatch: 77" \
    "$RL" -u "rediss://127.0.0.1:$tls_port/0?cacert=$CERTS/ca.crt&sni=db.example.invalid" status x
one_line_error "hostname mismatch"
expect 77 "run refused: 77" "$RL" -u "rediss://127.0.0.1:$tls_port/0?cacert=$CERTS/other-ca.crt" \
    run x -- touch "$T/ran"
check "the command did not run" test ! -e "$T/ran"

start_tls_server mutual yes
expect 0 "mutual TLS with the client certificate" "$RL" -u "$TLS_URL" run x -- true
expect 77 "mutual TLS without a client certificate: 77" \
    "$RL" -u "rediss://127.0.0.1:$TLS_PORT/0?cacert=$CERTS/ca.crt" status x
one_line_error "refused the client certificate"
expect 77 "a client certificate of another CA: 77" \
    "$RL" -u "rediss://127.0.0.1:$TLS_PORT/0?cacert=$CERTS/ca.crt&cert=$CERTS/other-client.crt&key=$CERTS/other-client.key" status x
one_line_error "refused the client certificate"

# a password over TLS, from the URL and from $REDISCLI_AUTH (never printed)
start_tls_server auth no --requirepass 'tls-s3cret'
expect 77 "no password over TLS: 77" "$RL" -u "$TLS_URL" status x
one_line_error "NOAUTH"
expect 1 "REDISCLI_AUTH spliced into rediss://" env REDISCLI_AUTH=tls-s3cret "$RL" -u "$TLS_URL" status x
expect 1 "password in the rediss:// URL" \
    "$RL" -v -u "rediss://:tls-s3cret@127.0.0.1:$TLS_PORT/0?cacert=$CERTS/ca.crt" status x
check "-v never prints the password" bash -c "! grep -q s3cret '$T/err' '$T/out'"

# not there, or not TLS: 69, within the connect timeout
port=$(free_tcp_port)
expect 69 "nothing listening: 69" "$RL" -u "rediss://127.0.0.1:$port/0?cacert=$CERTS/ca.crt" status x
one_line_error "cannot connect"
plain_port=$(free_tcp_port)
start_server plain --port "$plain_port" --bind 127.0.0.1
t0=$(now_ms)
expect 69 "a plain-TCP server on the port: 69" \
    "$RL" -u "rediss://127.0.0.1:$plain_port/0?cacert=$CERTS/ca.crt" status x
took=$(($(now_ms) - t0))
one_line_error "TLS"
check "within the connect timeout (took $took ms)" test "$took" -lt 8000

# bad parameters: 64
expect 64 "unknown parameter: 64" "$RL" -u "rediss://127.0.0.1:$tls_port/0?tls_verify=no" status x
one_line_error "unknown parameter tls_verify"
expect 64 "missing CA file: 64" "$RL" -u "rediss://127.0.0.1:$tls_port/0?cacert=$T/none.crt" status x
one_line_error "cacert"
expect 64 "a TLS parameter on redis://: 64" "$RL" -u "redis://127.0.0.1:$tls_port/0?cacert=$CERTS/ca.crt" status x
one_line_error "needs rediss://"

finish
