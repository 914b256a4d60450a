#!/usr/bin/env bash
# labels: sentinel cluster
# The shared deployments as a shell test sees them, with redis-cli only: the Sentinel URL
# and master, a write replicated to both replicas; the Cluster seed, a key set and read
# through other nodes (redirections followed by redis-cli -c), every slot covered.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/deploy_lib.sh"

deploy_load sentinel
check "sentinel URL: $DEPLOY_URL" \
    grep -qE '^redis\+sentinel://127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+/rlmaster$' <<<"$DEPLOY_URL"
m=$(deploy_master_port)
check "the sentinels name a master ($m)" test -n "$m"
check "it is a master" test "$("$REDIS_CLI" -p "$m" ROLE | head -1)" = master
"$REDIS_CLI" -p "$m" SET deploy:shell yes >/dev/null
check "a write reaches both replicas" test "$("$REDIS_CLI" -p "$m" WAIT 2 5000)" = 2

deploy_load cluster
check "cluster seed URL: $DEPLOY_URL" grep -qE '^redis://127\.0\.0\.1:[0-9]+$' <<<"$DEPLOY_URL"
check "cluster_state:ok" grep -q 'cluster_state:ok' <<<"$("$REDIS_CLI" -p "$DEPLOY_NODE0_PORT" CLUSTER INFO)"
for k in a b c d e f; do
    "$REDIS_CLI" -c -p "$DEPLOY_NODE0_PORT" SET "deploy:shell:$k" "v$k" >/dev/null
done
ok_all=1
for k in a b c d e f; do
    [ "$("$REDIS_CLI" -c -p "$DEPLOY_NODE1_PORT" GET "deploy:shell:$k")" = "v$k" ] || ok_all=0
done
check "keys set through one node read through another" test $ok_all = 1
check "wait reports healthy" deploy wait "$DEPLOY_DIR" 10
finish
