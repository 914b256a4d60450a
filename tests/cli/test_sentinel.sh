#!/usr/bin/env bash
# labels: sentinel
# The tool through a redis+sentinel:// URL on the shared Sentinel deployment: acquire,
# status (text, --json with the node that answered, -v), release, run, reset-all, a name the
# sentinels do not know (exit 69), min_replicas with the replicas stopped (EREPLICA: 69) and
# run across SENTINEL FAILOVER (the lock's key follows the new master).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/deploy_lib.sh"

deploy_load sentinel
export REDIS_URL=$DEPLOY_URL
m=$(deploy_master_port)
rm_cli() { "$REDIS_CLI" -p "$(deploy_master_port)" "$@"; }

expect 0 "acquire through the sentinels" "$RL" acquire -x 30 cli:sentinel
id=$(cat "$T/out")
check "the key is on the master ($m)" test "$("$REDIS_CLI" -p "$m" GET lock:cli:sentinel)" = "$id"
expect 0 "status" "$RL" status cli:sentinel
check "status: held by the id" grep -q "held by $id" "$T/out"
expect 0 "status --json" "$RL" status --json cli:sentinel
check "json: node is the master" python3 -c "
import json; d=json.load(open('$T/out'))
assert d['held'] is True and d['owner']=='$id' and d['node']=='127.0.0.1:$m', d"
expect 0 "status -v" "$RL" -v status cli:sentinel
check "-v logs the resolution" grep -q "master $DEPLOY_MASTER_NAME is at 127.0.0.1:$m" "$T/err"
expect 0 "release" "$RL" release -i "$id" cli:sentinel
expect 1 "status after release: free" "$RL" status cli:sentinel
expect 0 "run" "$RL" run -n cli:sentinel -- sh -c 'test -n "$REDIS_LOCK_ID"'
"$RL" acquire cli:sentinel:a >/dev/null && "$RL" acquire cli:sentinel:b >/dev/null
expect 0 "reset-all" "$RL" reset-all --yes
check "reset-all cleared the master" test "$(rm_cli EXISTS lock:cli:sentinel:a lock:cli:sentinel:b)" = 0

bad=${DEPLOY_URL%/*}/nosuchmaster
expect 69 "a master the sentinels do not know: 69" "$RL" -u "$bad" status x
one_line_error "nosuchmaster"

# min_replicas=1 with both replicas stopped: EREPLICA (69), the key given back
pids=()
for i in 0 1 2; do
    p=DEPLOY_NODE${i}_PORT
    [ "${!p}" = "$m" ] && continue
    pid=$("$REDIS_CLI" -p "${!p}" INFO server | tr -d '\r' | sed -n 's/^process_id://p')
    kill -STOP "$pid" && pids+=("$pid")
done
expect 69 "min_replicas=1, replicas stopped: 69" "$RL" -u "$DEPLOY_URL?min_replicas=1&replica_timeout_ms=300" acquire -n cli:sentinel:acked
one_line_error "too few replicas acknowledged"
check "the key was given back" test "$("$REDIS_CLI" -p "$m" EXISTS lock:cli:sentinel:acked)" = 0
kill -CONT "${pids[@]}"
expect 0 "min_replicas=1, replicas running" "$RL" -u "$DEPLOY_URL?min_replicas=1" acquire -w 10 cli:sentinel:acked
expect 0 "reset" "$RL" reset cli:sentinel:acked
check "healthy again" deploy wait "$DEPLOY_DIR" 60

# run across SENTINEL FAILOVER: the renewal follows the new master
bg "$RL" -v run -x 6 cli:sentinel:fo -- sleep 10 2>"$T/run.err"
has_key() { test -n "$("$REDIS_CLI" -p "$m" GET lock:cli:sentinel:fo)"; }
master_moved() { test "$(deploy_master_port)" != "$m"; }
wait_until 10 has_key
# replicated before the switch (without min_replicas a key written just before a failover
# may be lost with it, and run would then report the loss: exit 75)
"$REDIS_CLI" -p "$m" WAIT 2 2000 >/dev/null
check "SENTINEL FAILOVER accepted" test "$("$REDIS_CLI" -p "$DEPLOY_SENTINEL0_PORT" SENTINEL FAILOVER "$DEPLOY_MASTER_NAME")" = OK
check "a new master" wait_until 20 master_moved
sleep 5
check "the key is alive on the new master ($(deploy_master_port))" test -n "$(rm_cli GET lock:cli:sentinel:fo)"
wait "$BG"
rc=$?
check "run exits 0 (the lock was never lost)" test "$rc" = 0
[ "$rc" = 0 ] || sed "s/^/  run: /" "$T/run.err"
check "-v logged the switch" grep -q "master $DEPLOY_MASTER_NAME moved from 127.0.0.1:$m" "$T/run.err"
check "healthy again" deploy wait "$DEPLOY_DIR" 60
finish
