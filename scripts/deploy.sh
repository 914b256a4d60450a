#!/usr/bin/env bash
# Throwaway Redis deployments on private loopback ports, for tests, benchmarks and by hand:
#
#   bash scripts/deploy.sh sentinel start [DIR] [--owner PID|parent] [--ttl S] [--env FILE]
#       a master, two replicas and three sentinels monitoring it as "rlmaster" (quorum 2)
#   bash scripts/deploy.sh cluster start [DIR] [--owner PID|parent] [--ttl S] [--env FILE]
#       a Redis Cluster of 6 nodes: 3 masters, 3 replicas
#   bash scripts/deploy.sh [KIND] stop DIR|FILE   stop everything, remove DIR (and FILE)
#   bash scripts/deploy.sh wait DIR [SECONDS]     until healthy again (after a failover...)
#   bash scripts/deploy.sh status DIR             the environment and the current roles
#   bash scripts/deploy.sh kill DIR NODE          kill -9 a node (node0.., sentinel0..)
#   bash scripts/deploy.sh restart DIR NODE       kill -9 (if running) and start it again
#
# start creates DIR (default: a new /tmp/rl-deploy-KIND.XXXXXX), returns once the deployment
# is healthy and prints its environment (KEY=VALUE, also in DIR/deploy.env and FILE):
# DEPLOY_URL is redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/rlmaster or the
# cluster seed redis://127.0.0.1:P. A keeper process (setsid, its log in DIR/keeper.log) owns
# the servers: they get SIGKILL when it dies (PR_SET_PDEATHSIG via setpriv), and it stops them
# all and removes DIR (and the --env FILE) on `stop`, on SIGTERM/SIGINT/SIGHUP, when the
# --owner process exits ("parent": the process that ran start, e.g. ctest) and after --ttl
# seconds (default 3600 without an owner, none with one). Nodes keep no data on disk (save "", no AOF): a node
# restarted after kill -9 comes back empty, as in the library's own restart tests.
# Ports are picked at random in 20000-32767 (below Linux's ephemeral range) and the server
# itself is the probe: a node that cannot bind is started again on other ports.
set -u -o pipefail

REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_CLI=${REDIS_CLI:-redis-cli}
SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
MASTER_NAME=rlmaster
MARK=.redis-lock-deploy

die() { echo "deploy.sh: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
# at least 100 ms between polls of one server, with jitter
nap() { sleep "0.$((100 + RANDOM % 100))"; }
rcli() { local p=$1; shift; timeout 5 "$REDIS_CLI" -h 127.0.0.1 -p "$p" "$@" 2>/dev/null; }
info_field() { tr -d '\r' | sed -n "s/^$1://p"; }

usage() { sed -n '2,12p' "$SELF" | sed 's/^# \{0,1\}//'; exit 64; }

load_env() { # load_env DIR|FILE: DEPLOY_* variables
    local src=$1
    [ -d "$src" ] && src=$src/deploy.env
    [ -f "$src" ] || die "no deployment at $1 (no $src)"
    local line
    while IFS= read -r line; do
        case $line in DEPLOY_*=*) export "${line?}" ;; esac
    done <"$src"
    [ -n "${DEPLOY_DIR:-}" ] || die "$src names no DEPLOY_DIR"
}

node_port() { sed -n 's/^port //p' "$DEPLOY_DIR/$1/redis.conf"; }

# ---- health -------------------------------------------------------------------------------

# The data node that every sentinel names as the master (its port), or nothing.
sentinel_master_port() {
    local i p addr first=""
    for ((i = 0; i < DEPLOY_SENTINELS; i++)); do
        p=DEPLOY_SENTINEL${i}_PORT
        addr=$(rcli "${!p}" SENTINEL get-master-addr-by-name "$MASTER_NAME" | tr '\n' ':')
        [ -n "$addr" ] || return 1
        [ -z "$first" ] && first=$addr
        [ "$addr" = "$first" ] || return 1
    done
    case $first in 127.0.0.1:*:) first=${first#127.0.0.1:}; echo "${first%:}" ;; *) return 1 ;; esac
}

# key/value listing (redis-cli raw output of SENTINEL MASTER/REPLICAS/SENTINELS): VALUE of KEY
kv() { awk -v k="$1" 'NR % 2 == 1 { key = $0; next } key == k { print }'; }

sentinel_healthy() {
    local m i p out n flags links
    m=$(sentinel_master_port) || { WHY="sentinels do not agree on a master"; return 1; }
    [ "$(rcli "$m" ROLE | head -1)" = master ] || { WHY="127.0.0.1:$m is not a master"; return 1; }
    n=$(rcli "$m" INFO replication | info_field connected_slaves)
    [ "$n" = 2 ] || { WHY="master $m has ${n:-?} replicas connected"; return 1; }
    [ "$(rcli "$m" INFO replication | grep -c 'state=online')" = 2 ] ||
        { WHY="a replica of $m is still syncing"; return 1; }
    for ((i = 0; i < DEPLOY_NODES; i++)); do
        p=DEPLOY_NODE${i}_PORT
        [ "${!p}" = "$m" ] && continue
        out=$(rcli "${!p}" INFO replication)
        [ "$(info_field master_port <<<"$out")" = "$m" ] &&
            [ "$(info_field master_link_status <<<"$out")" = up ] &&
            [ "$(info_field master_sync_in_progress <<<"$out")" = 0 ] ||
            { WHY="node$i is not a synced replica of $m"; return 1; }
    done
    for ((i = 0; i < DEPLOY_SENTINELS; i++)); do
        p=DEPLOY_SENTINEL${i}_PORT
        flags=$(rcli "${!p}" SENTINEL MASTER "$MASTER_NAME" | kv flags)
        [ "$flags" = master ] || { WHY="sentinel$i: master flags $flags"; return 1; }
        # (not the replicas' master-link-status as the sentinels report it: they refresh it
        # only every 10 s; the replicas themselves were asked above)
        flags=$(rcli "${!p}" SENTINEL REPLICAS "$MASTER_NAME" | kv flags | sort | uniq -c |
            awk '{print $1 " " $2}')
        [ "$flags" = "2 slave" ] || { WHY="sentinel$i sees replicas: ${flags:-none}"; return 1; }
        n=$(rcli "${!p}" SENTINEL SENTINELS "$MASTER_NAME" | kv flags | grep -c '^sentinel$')
        [ "$n" = 2 ] || { WHY="sentinel$i sees $n other sentinels"; return 1; }
        rcli "${!p}" SENTINEL CKQUORUM "$MASTER_NAME" | grep -q '^OK' ||
            { WHY="sentinel$i: no quorum"; return 1; }
    done
}

cluster_healthy() {
    local i p out sig first="" masters replicas
    for ((i = 0; i < DEPLOY_NODES; i++)); do
        p=DEPLOY_NODE${i}_PORT
        out=$(rcli "${!p}" CLUSTER INFO)
        [ "$(info_field cluster_state <<<"$out")" = ok ] &&
            [ "$(info_field cluster_slots_ok <<<"$out")" = 16384 ] &&
            [ "$(info_field cluster_known_nodes <<<"$out")" = 6 ] ||
            { WHY="node$i: cluster_state $(info_field cluster_state <<<"$out"), slots ok $(info_field cluster_slots_ok <<<"$out")"; return 1; }
        out=$(rcli "${!p}" CLUSTER NODES)
        if awk '{ n = split($3, f, ","); for (j = 1; j <= n; j++)
                      if (f[j] ~ /^(fail|fail\?|handshake|noaddr)$/) bad = 1
                  if ($8 != "connected" || index($0, "[")) bad = 1 }
                END { exit !bad }' <<<"$out"; then
            WHY="node$i sees a failing, disconnected or migrating node"
            return 1
        fi
        # the same roles and slots, seen from every node
        sig=$(awk '{ f = $3; sub(/myself,/, "", f); s = ""; for (j = 9; j <= NF; j++) s = s " " $j
                     print $1, f, $4, s }' <<<"$out" | sort)
        [ -z "$first" ] && first=$sig
        [ "$sig" = "$first" ] || { WHY="node$i does not agree on the layout"; return 1; }
        out=$(rcli "${!p}" INFO replication)
        if [ "$(info_field role <<<"$out")" = slave ]; then
            [ "$(info_field master_link_status <<<"$out")" = up ] &&
                [ "$(info_field master_sync_in_progress <<<"$out")" = 0 ] ||
                { WHY="node$i: replica not synced"; return 1; }
        fi
    done
    masters=$(awk '$2 ~ /master/ && NF >= 4' <<<"$first" | wc -l)
    replicas=$(awk '$2 ~ /slave/' <<<"$first" | wc -l)
    [ "$masters" = 3 ] && [ "$replicas" = 3 ] ||
        { WHY="$masters masters with slots, $replicas replicas"; return 1; }
}

wait_healthy() { # wait_healthy SECONDS; DEPLOY_VERBOSE=1: print each reason for waiting
    local limit=$(($(now_ms) + $1 * 1000)) t0 last=""
    t0=$(now_ms)
    WHY=""
    while ! "${DEPLOY_KIND}_healthy"; do
        if [ -n "${DEPLOY_VERBOSE:-}" ] && [ "$WHY" != "$last" ]; then
            echo "deploy.sh: +$(($(now_ms) - t0)) ms: $WHY" >&2
            last=$WHY
        fi
        [ "$(now_ms)" -lt "$limit" ] || { echo "deploy.sh: not healthy after $1 s: $WHY" >&2; return 1; }
        nap
    done
}

roles() {
    local i p
    for ((i = 0; i < DEPLOY_NODES; i++)); do
        p=DEPLOY_NODE${i}_PORT
        echo "node$i 127.0.0.1:${!p} $(rcli "${!p}" ROLE | head -1)"
    done
}

# ---- the keeper ---------------------------------------------------------------------------

# launch NAME: start DIR/NAME's server as our child; it dies with us (PR_SET_PDEATHSIG).
launch() {
    local d=$DEPLOY_DIR/$1 extra=()
    [ -f "$d/sentinel" ] && extra=(--sentinel)
    setpriv --pdeathsig KILL -- "$REDIS_SERVER" "$d/redis.conf" "${extra[@]}" \
        </dev/null >>"$d/stdout.log" 2>&1 &
    echo $! >"$d/pid"
}

# up NAME: wait until it answers; 1 when it exited, 2 when it exited unable to bind.
# (Whoever answers on the port must be our process: another deployment's server may hold it.)
up() {
    local d=$DEPLOY_DIR/$1 pid port i
    pid=$(cat "$d/pid")
    port=$(node_port "$1")
    for ((i = 0; i < 300; i++)); do
        [ "$(rcli "$port" INFO server | info_field process_id)" = "$pid" ] && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            grep -qi 'address already in use' "$d/redis.log" "$d/stdout.log" 2>/dev/null && return 2
            return 1
        fi
        sleep 0.05
    done
    return 1
}

USED_PORTS=" "
pick_port() {
    local p
    while :; do
        p=$((20000 + (RANDOM * 32768 + RANDOM + $$) % 12768))
        case $USED_PORTS in *" $p "*) continue ;; esac
        USED_PORTS="$USED_PORTS$p "
        echo "$p"
        return
    done
}

# start_node NAME CONF_FUNCTION: write the config with fresh ports until the node binds them.
start_node() {
    local name=$1 conf=$2 try rc
    mkdir -p "$DEPLOY_DIR/$name"
    for ((try = 0; try < 20; try++)); do
        PORT=$(pick_port)
        BUS_PORT=$(pick_port)
        "$conf" "$name" >"$DEPLOY_DIR/$name/redis.conf"
        : >"$DEPLOY_DIR/$name/redis.log"
        rm -f "$DEPLOY_DIR/$name/nodes.conf" # (a failed try's, with the old ports)
        launch "$name"
        up "$name"
        rc=$?
        [ $rc = 0 ] && return 0
        [ $rc = 2 ] || { echo "$name did not start; its log:"; tail -20 "$DEPLOY_DIR/$name/redis.log"; return 1; }
        echo "$name: port $PORT or $BUS_PORT in use, trying others"
    done
    return 1
}

common_conf() {
    cat <<EOF
port $PORT
bind 127.0.0.1
daemonize no
dir $DEPLOY_DIR/$1
logfile $DEPLOY_DIR/$1/redis.log
save ""
appendonly no
enable-debug-command local
repl-diskless-sync yes
repl-diskless-sync-delay 0
EOF
}

data_conf() {
    common_conf "$1"
    echo "replica-announce-ip 127.0.0.1"
    [ "$1" = node0 ] || echo "replicaof 127.0.0.1 $DEPLOY_NODE0_PORT"
}

sentinel_conf() {
    cat <<EOF
port $PORT
bind 127.0.0.1
daemonize no
dir $DEPLOY_DIR/$1
logfile $DEPLOY_DIR/$1/redis.log
sentinel resolve-hostnames no
sentinel announce-hostnames no
sentinel announce-ip 127.0.0.1
sentinel announce-port $PORT
sentinel monitor $MASTER_NAME 127.0.0.1 $DEPLOY_NODE0_PORT 2
sentinel down-after-milliseconds $MASTER_NAME 1000
sentinel failover-timeout $MASTER_NAME 5000
sentinel parallel-syncs $MASTER_NAME 2
EOF
}

cluster_conf() {
    common_conf "$1"
    cat <<EOF
cluster-enabled yes
cluster-port $BUS_PORT
cluster-config-file nodes.conf
cluster-node-timeout 1000
cluster-announce-ip 127.0.0.1
cluster-allow-replica-migration no
replica-announce-ip 127.0.0.1
EOF
}

env_line() { echo "$1=$2" >>"$DEPLOY_DIR/deploy.env.tmp"; export "$1=$2"; }

setup_sentinel() {
    local i urls=""
    env_line DEPLOY_NODES 3
    for ((i = 0; i < 3; i++)); do
        start_node node$i data_conf || return 1
        env_line DEPLOY_NODE${i}_PORT "$PORT"
    done
    env_line DEPLOY_SENTINELS 3
    for ((i = 0; i < 3; i++)); do
        mkdir -p "$DEPLOY_DIR/sentinel$i"
        touch "$DEPLOY_DIR/sentinel$i/sentinel"
        start_node sentinel$i sentinel_conf || return 1
        env_line DEPLOY_SENTINEL${i}_PORT "$PORT"
        urls=$urls${urls:+,}127.0.0.1:$PORT
    done
    env_line DEPLOY_MASTER_NAME "$MASTER_NAME"
    env_line DEPLOY_URL "redis+sentinel://$urls/$MASTER_NAME"
    env_line DEPLOY_MASTER_URL "redis://127.0.0.1:$DEPLOY_NODE0_PORT"
}

setup_cluster() {
    local i addrs=() seeds=""
    env_line DEPLOY_NODES 6
    env_line DEPLOY_SENTINELS 0
    for ((i = 0; i < 6; i++)); do
        start_node node$i cluster_conf || return 1
        env_line DEPLOY_NODE${i}_PORT "$PORT"
        env_line DEPLOY_NODE${i}_BUS_PORT "$BUS_PORT"
        addrs+=("127.0.0.1:$PORT")
        [ $i -lt 3 ] && seeds=$seeds${seeds:+,}127.0.0.1:$PORT
    done
    timeout 60 "$REDIS_CLI" --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes ||
        { echo "redis-cli --cluster create failed"; return 1; }
    env_line DEPLOY_URL "redis://${addrs[0]}"
    env_line DEPLOY_SEEDS_URL "redis://$seeds"
}

keeper_stop() {
    trap - EXIT INT TERM HUP
    local f
    for f in "$DEPLOY_DIR"/*/pid; do
        [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
    done
    wait 2>/dev/null
    echo "[$(date +%T.%3N)] keeper: stopped ($1)"
    # the copy of deploy.env that start wrote (--env), when it still describes us
    if [ -f "$DEPLOY_DIR/envfile" ]; then
        f=$(cat "$DEPLOY_DIR/envfile")
        grep -qxF "DEPLOY_DIR=$DEPLOY_DIR" "$f" 2>/dev/null && rm -f "$f"
    fi
    [ -f "$DEPLOY_DIR/$MARK" ] && rm -rf "$DEPLOY_DIR"
    exit 0
}

keeper() { # keeper KIND DIR OWNER OWNER_START TTL
    local kind=$1 owner=$3 owner_start=$4 ttl=$5 t0 f name req started
    export DEPLOY_KIND=$kind DEPLOY_DIR=$2
    trap 'keeper_stop exit' EXIT
    trap 'keeper_stop signal' INT TERM HUP
    echo $$ >"$DEPLOY_DIR/keeper.pid"
    t0=$(now_ms)
    : >"$DEPLOY_DIR/deploy.env.tmp"
    env_line DEPLOY_KIND "$kind"
    env_line DEPLOY_DIR "$DEPLOY_DIR"
    env_line DEPLOY_KEEPER_PID $$
    if ! "setup_$kind" || ! wait_healthy 60; then
        echo "setup failed: ${WHY:-}"
        touch "$DEPLOY_DIR/failed"
        keeper_stop "setup failed"
    fi
    mv "$DEPLOY_DIR/deploy.env.tmp" "$DEPLOY_DIR/deploy.env"
    echo "[$(date +%T.%3N)] keeper: $kind ready in $(($(now_ms) - t0)) ms"
    touch "$DEPLOY_DIR/ready"
    started=$(now_ms)
    mkfifo "$DEPLOY_DIR/keeper.fifo"
    exec 9<>"$DEPLOY_DIR/keeper.fifo"
    while :; do
        read -r -t 0.1 -u 9 _ || true
        [ -f "$DEPLOY_DIR/$MARK" ] || keeper_stop "directory removed"
        [ -f "$DEPLOY_DIR/stop" ] && keeper_stop "stop requested"
        if [ "$owner" != 0 ] && [ "$(proc_start "$owner")" != "${owner_start:-none}" ]; then
            keeper_stop "owner $owner exited"
        fi
        if [ "$ttl" != 0 ] && [ $(($(now_ms) - started)) -gt $((ttl * 1000)) ]; then
            keeper_stop "ttl of $ttl s"
        fi
        # restart requests: DIR/NAME/restart (from `deploy.sh restart` and tests/deploy.c)
        for req in "$DEPLOY_DIR"/*/restart; do
            [ -f "$req" ] || continue
            f=${req%/restart}
            name=${f##*/}
            kill -9 "$(cat "$f/pid")" 2>/dev/null
            while kill -0 "$(cat "$f/pid")" 2>/dev/null; do sleep 0.01; done
            launch "$name"
            if up "$name"; then
                echo "[$(date +%T.%3N)] keeper: restarted $name"
                rm -f "$req"
            else
                echo "[$(date +%T.%3N)] keeper: $name did not restart"
                mv "$req" "$f/restart.failed"
            fi
        done
    done
}

# the start time of a process (field 22 of /proc/PID/stat), so a recycled pid is not taken
# for the owner
proc_start() {
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    s=${s##*) }
    set -- $s
    echo "${20}"
}

# ---- commands -----------------------------------------------------------------------------

cmd_start() {
    local kind=$1 dir="" owner=0 ttl="" envfile="" t0 i rc
    shift
    while [ $# -gt 0 ]; do
        case $1 in
        --owner) owner=$2; shift 2 ;;
        --ttl) ttl=$2; shift 2 ;;
        --env) envfile=$2; shift 2 ;;
        -*) die "unknown option $1" ;;
        *) dir=$1; shift ;;
        esac
    done
    command -v "$REDIS_SERVER" >/dev/null || die "no $REDIS_SERVER"
    command -v "$REDIS_CLI" >/dev/null || die "no $REDIS_CLI"
    command -v setpriv >/dev/null || die "no setpriv (util-linux)"
    [ "$owner" = parent ] && owner=$PPID
    case $owner in *[!0-9]*) die "--owner wants a pid or 'parent'" ;; esac
    [ "$owner" = 0 ] || [ -n "$(proc_start "$owner")" ] || die "no process $owner (--owner)"
    [ -z "$ttl" ] && { [ "$owner" = 0 ] && ttl=3600 || ttl=0; }
    case $ttl in *[!0-9]* | "") die "--ttl wants seconds" ;; esac
    if [ -z "$dir" ]; then
        dir=$(mktemp -d "/tmp/rl-deploy-$kind.XXXXXX") || die "mktemp failed"
    else
        [ -e "$dir" ] && [ -n "$(ls -A "$dir")" ] && die "$dir exists and is not empty"
        mkdir -p "$dir" || die "cannot create $dir"
        dir=$(cd "$dir" && pwd)
    fi
    touch "$dir/$MARK"
    t0=$(now_ms)
    setsid bash "$SELF" _keeper "$kind" "$dir" "$owner" "$(proc_start "$owner")" "$ttl" \
        </dev/null >"$dir/keeper.log" 2>&1 &
    for ((i = 0; i < 1200; i++)); do
        [ -f "$dir/ready" ] && break
        [ -f "$dir/failed" ] || [ ! -f "$dir/$MARK" ] && break
        sleep 0.1
    done
    if [ ! -f "$dir/ready" ]; then
        echo "deploy.sh: the $kind deployment did not come up; keeper log:" >&2
        cat "$dir/keeper.log" >&2
        for i in "$dir"/*/redis.log; do [ -f "$i" ] && { echo "== $i" >&2; tail -5 "$i" >&2; }; done
        cmd_stop "$dir" >/dev/null
        return 1
    fi
    if [ -n "$envfile" ]; then
        mkdir -p "$(dirname "$envfile")"
        cp "$dir/deploy.env" "$envfile.tmp" && mv "$envfile.tmp" "$envfile"
        envfile=$(cd "$(dirname "$envfile")" && pwd)/$(basename "$envfile")
        echo "$envfile" >"$dir/envfile"
    fi
    cat "$dir/deploy.env"
    echo "# $kind up in $(($(now_ms) - t0)) ms; stop: bash $SELF stop $dir" >&2
}

cmd_stop() {
    local src=$1 dir pid i rc=0
    [ -e "$src" ] || { echo "deploy.sh: nothing at $src (already stopped)" >&2; return 0; }
    [ -d "$src" ] && dir=$src || { load_env "$src"; dir=$DEPLOY_DIR; rm -f "$src"; }
    [ -d "$dir" ] || return 0
    [ -f "$dir/$MARK" ] || die "$dir is not a deployment directory"
    # a request file rather than a signal: bash may run a trap late (a keeper under ctest
    # was seen to take 5 s to act on SIGTERM)
    touch "$dir/stop"
    pid=$(cat "$dir/keeper.pid" 2>/dev/null)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        for ((i = 0; i < 200; i++)); do [ -d "$dir" ] || break; sleep 0.05; done
        [ -d "$dir" ] && kill -9 "$pid" 2>/dev/null
    fi
    # the keeper was gone (or stuck): its servers may not be
    for i in "$dir"/*/pid; do [ -f "$i" ] && kill -9 "$(cat "$i")" 2>/dev/null; done
    [ -d "$dir" ] && { rm -rf "$dir" || rc=1; }
    return $rc
}

cmd_restart() { # DIR NODE
    load_env "$1"
    local f=$DEPLOY_DIR/$2 i
    [ -f "$f/redis.conf" ] || die "no node $2 in $DEPLOY_DIR"
    rm -f "$f/restart.failed"
    touch "$f/restart"
    for ((i = 0; i < 300; i++)); do
        [ -f "$f/restart" ] || break
        sleep 0.05
    done
    [ ! -f "$f/restart" ] && [ ! -f "$f/restart.failed" ] || die "$2 did not restart (see $f/redis.log)"
}

cmd_kill() { # DIR NODE
    load_env "$1"
    local f=$DEPLOY_DIR/$2 pid i
    [ -f "$f/pid" ] || die "no node $2 in $DEPLOY_DIR"
    pid=$(cat "$f/pid")
    kill -9 "$pid" 2>/dev/null || die "$2 (pid $pid) is not running"
    for ((i = 0; i < 100; i++)); do
        rcli "$(node_port "$2")" PING | grep -q PONG || return 0
        sleep 0.05
    done
    die "$2 still answers"
}

case ${1:-} in
sentinel | cluster)
    kind=$1
    shift
    case ${1:-} in
    start) shift; cmd_start "$kind" "$@" ;;
    stop) [ $# = 2 ] || usage; cmd_stop "$2" ;;
    *) usage ;;
    esac
    ;;
stop) [ $# = 2 ] || usage; cmd_stop "$2" ;;
wait)
    [ $# -ge 2 ] || usage
    load_env "$2"
    t0=$(now_ms)
    wait_healthy "${3:-60}" && echo "healthy after $(($(now_ms) - t0)) ms"
    ;;
status)
    [ $# = 2 ] || usage
    load_env "$2"
    cat "$DEPLOY_DIR/deploy.env"
    roles
    ;;
kill) [ $# = 3 ] || usage; cmd_kill "$2" "$3" ;;
restart) [ $# = 3 ] || usage; cmd_restart "$2" "$3" ;;
_keeper) shift; keeper "$@" ;;
*) usage ;;
esac
