# Sourced after lib.sh by a tools test that needs a Sentinel set or a Redis Cluster. Mark the
# script with a line "# labels: sentinel" (or cluster, or both) so that ctest gives it the
# shared deployment (tests/deploy.cmake) and runs it alone among that deployment's tests.
#   deploy_load KIND   the deployment's DEPLOY_* variables (scripts/deploy.sh lists them:
#                      DEPLOY_URL, DEPLOY_DIR, DEPLOY_NODE<i>_PORT, DEPLOY_SENTINEL<i>_PORT...),
#                      from the ctest fixture, or from a private deployment started now that
#                      stops when this shell exits; waits until it is healthy
#   deploy ARGS        scripts/deploy.sh: deploy wait "$DEPLOY_DIR", deploy kill "$DEPLOY_DIR" node1,
#                      deploy restart "$DEPLOY_DIR" node1
#   deploy_master_port the port of the data node the sentinels name as master
# A test leaves the deployment healthy (deploy wait) and uses key names of its own.
RL_DEPLOY_SCRIPT=${REDIS_LOCK_DEPLOY_SCRIPT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/deploy.sh}

deploy() { bash "$RL_DEPLOY_SCRIPT" "$@"; }

deploy_load() {
    local kind=$1 var file line
    var=REDIS_LOCK_DEPLOY_${kind^^}
    file=${!var:-}
    if [ -z "$file" ]; then
        file=$T/deploy-$kind.env
        if [ ! -f "$file" ]; then
            deploy "$kind" start --owner $$ --env "$file" >/dev/null ||
                { echo "FAIL - could not start a $kind deployment"; exit 1; }
        fi
    fi
    [ -f "$file" ] || { echo "FAIL - no $kind deployment: $file is missing"; exit 1; }
    for var in ${!DEPLOY_@}; do unset "$var"; done
    while IFS= read -r line; do
        case $line in DEPLOY_*=*) export "${line?}" ;; esac
    done <"$file"
    [ "${DEPLOY_KIND:-}" = "$kind" ] || { echo "FAIL - $file holds no $kind deployment"; exit 1; }
    deploy wait "$DEPLOY_DIR" 60 >/dev/null || { echo "FAIL - the $kind deployment is not healthy"; exit 1; }
}

deploy_master_port() {
    "$REDIS_CLI" -p "$DEPLOY_SENTINEL0_PORT" SENTINEL get-master-addr-by-name "$DEPLOY_MASTER_NAME" | tail -1
}
