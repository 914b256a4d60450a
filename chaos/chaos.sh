#!/bin/sh
# Drive rl_chaos (chaos/chaos.c): the faults mode, then the restarts mode.
#
#   chaos/chaos.sh --short          # ~1 minute: faults 40 s + restarts 20 s (ctest: chaos_short)
#   chaos/chaos.sh --long           # 10 minutes: faults 480 s + restarts 120 s
#   chaos/chaos.sh [--workers N] [--faults SEC] [--restarts SEC] [--seed S] [--report FILE]
#
# The binary: $RL_CHAOS, else the newest build*/chaos/rl_chaos under the source tree. Every run gets
# its own redis-server on a unix socket in a fresh /tmp/rl-chaos-* dir (removed after).
# Exit status: 0 when both modes pass their checks, 1 otherwise.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${RL_CHAOS:-}
if [ -z "$bin" ]; then
  bin=$(ls -t "$here"/../build*/chaos/rl_chaos 2>/dev/null | head -n 1)
fi
[ -n "$bin" ] && [ -x "$bin" ] || { echo "chaos.sh: rl_chaos not found (set RL_CHAOS)" >&2; exit 2; }

workers=20 faults=40 restarts=20 seed=$(date +%s) report=
while [ $# -gt 0 ]; do
  case $1 in
    --short) faults=40 restarts=20 ;;
    --long) faults=480 restarts=120 ;;
    --workers) workers=$2; shift ;;
    --faults) faults=$2; shift ;;
    --restarts) restarts=$2; shift ;;
    --seed) seed=$2; shift ;;
    --report) report=$2; shift ;;
    *) echo "chaos.sh: unknown option $1" >&2; exit 64 ;;
  esac
  shift
done

status=0
for mode in faults restarts; do
  eval secs=\$$mode
  [ "$secs" -gt 0 ] || continue
  echo "== $bin --mode $mode --workers $workers --duration $secs --seed $seed"
  if [ -n "$report" ]; then
    "$bin" --mode "$mode" --workers "$workers" --duration "$secs" --seed "$seed" --report "$report" || status=1
  else
    "$bin" --mode "$mode" --workers "$workers" --duration "$secs" --seed "$seed" || status=1
  fi
done
exit $status
