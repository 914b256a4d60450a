#!/usr/bin/env bash
# The demo: installs what it needs, builds, and shows processes taking turns on one lock,
# through the library and through the redis-lock tool. Uses $REDIS_URL when set, else a
# throwaway redis-server that it starts and stops itself.
#   bash scripts/demo.sh --tls    the same over TLS (rediss://), against its own TLS server
#                                 with a throwaway CA (ignores $REDIS_URL)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--tls" ]; then
    unset REDIS_URL
    export RL_TMP_REDIS_TLS=1
fi
bash scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
. scripts/redis-tmp.sh

echo
echo "== the library: 4 processes take turns on one lock (examples/turns.c)"
build/examples/turns 4 3

if [ -x build/tools/redis-lock ]; then
    rl=build/tools/redis-lock
    echo
    echo "== the tool: 3 shell jobs share one lock with 'redis-lock run'"
    for i in 1 2 3; do
        "$rl" run -w 10 demo:cli -- sh -c 'echo "  job '"$i"' starts (holder $REDIS_LOCK_ID)"; sleep 0.3; echo "  job '"$i"' ends"' &
    done
    wait
    echo
    echo "== 'redis-lock acquire' in one step, 'status', 'release' in another"
    id=$("$rl" acquire -x 60 demo:steps)
    echo "  acquired as $id"
    "$rl" status demo:steps | sed 's/^/  status: /'
    "$rl" release -i "$id" demo:steps
    "$rl" status demo:steps | sed 's/^/  status: /' || true
    echo
    echo "== 'redis-lock cache': 5 callers, one computation"
    for i in 1 2 3 4 5; do
        "$rl" cache -t 60 demo:answer -- sh -c 'sleep 0.5; echo "computed once, by pid $$"' &
    done
    wait
fi
echo
echo "== dogpile-safe cache from C (examples/cache.c): 3 callers"
for i in 1 2 3; do build/examples/cache demo:c-cache & done
wait
