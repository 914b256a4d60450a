# Sourced: start a throwaway redis-server on a private unix socket unless REDIS_URL is set,
# export REDIS_URL, and stop it (and remove its directory) when the shell exits.
# RL_TMP_REDIS_TLS=1: the server also listens with TLS on a free loopback port, with a
# throwaway CA and certificate (tests/make-certs.sh), and REDIS_URL is rediss://.
if [ -z "${REDIS_URL:-}" ]; then
    RL_TMP_REDIS_DIR=$(mktemp -d /tmp/redis-lock-demo.XXXXXX)
    rl_tmp_tls=()
    if [ "${RL_TMP_REDIS_TLS:-0}" = 1 ]; then
        sh "$(dirname "${BASH_SOURCE[0]}")/../tests/make-certs.sh" "$RL_TMP_REDIS_DIR/certs"
        RL_TMP_REDIS_TLS_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        rl_tmp_tls=(--tls-port "$RL_TMP_REDIS_TLS_PORT" --bind 127.0.0.1
            --tls-cert-file "$RL_TMP_REDIS_DIR/certs/server.crt"
            --tls-key-file "$RL_TMP_REDIS_DIR/certs/server.key"
            --tls-ca-cert-file "$RL_TMP_REDIS_DIR/certs/ca.crt" --tls-auth-clients no)
    fi
    redis-server --port 0 --unixsocket "$RL_TMP_REDIS_DIR/redis.sock" --unixsocketperm 700 \
        --save '' --appendonly no --dir "$RL_TMP_REDIS_DIR" \
        --logfile "$RL_TMP_REDIS_DIR/redis.log" --daemonize yes \
        --pidfile "$RL_TMP_REDIS_DIR/redis.pid" "${rl_tmp_tls[@]}"
    rl_tmp_redis_stop() {
        [ -f "$RL_TMP_REDIS_DIR/redis.pid" ] && kill "$(cat "$RL_TMP_REDIS_DIR/redis.pid")" 2>/dev/null
        sleep 0.1
        rm -rf "$RL_TMP_REDIS_DIR"
    }
    trap rl_tmp_redis_stop EXIT
    for _ in $(seq 100); do
        redis-cli -s "$RL_TMP_REDIS_DIR/redis.sock" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
    export REDIS_URL="unix://$RL_TMP_REDIS_DIR/redis.sock"
    if [ "${RL_TMP_REDIS_TLS:-0}" = 1 ]; then
        export REDIS_URL="rediss://127.0.0.1:$RL_TMP_REDIS_TLS_PORT/0?cacert=$RL_TMP_REDIS_DIR/certs/ca.crt"
    fi
    echo "(started a throwaway redis-server at $REDIS_URL)"
fi
