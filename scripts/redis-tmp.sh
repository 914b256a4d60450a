# Sourced: start a throwaway redis-server on a private unix socket unless REDIS_URL is set,
# export REDIS_URL, and stop it (and remove its directory) when the shell exits.
if [ -z "${REDIS_URL:-}" ]; then
    RL_TMP_REDIS_DIR=$(mktemp -d /tmp/redis-lock-demo.XXXXXX)
    redis-server --port 0 --unixsocket "$RL_TMP_REDIS_DIR/redis.sock" --unixsocketperm 700 \
        --save '' --appendonly no --dir "$RL_TMP_REDIS_DIR" \
        --logfile "$RL_TMP_REDIS_DIR/redis.log" --daemonize yes \
        --pidfile "$RL_TMP_REDIS_DIR/redis.pid"
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
    echo "(started a throwaway redis-server at $REDIS_URL)"
fi
