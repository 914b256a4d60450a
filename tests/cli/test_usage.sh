#!/usr/bin/env bash
# Usage errors exit 64 with one line on stderr (and a hint), before any connection is
# tried; --help and --version exit 0. REDIS_URL points nowhere, so a tool that tried to
# connect would exit 69 instead.
. "$(dirname "$0")/lib.sh"
export REDIS_URL=unix://$T/nothing-listens-here.sock

usage() { # usage DESC ARGS...: exit 64, one line with the 'try' hint
    local desc=$1
    shift
    expect 64 "$desc" "$RL" "$@"
    one_line_error "try 'redis-lock( [a-z-]+)? --help'" "$desc: one-line message with hint"
}

usage "no command"
usage "unknown command" frobnicate x
usage "unknown global option" --bogus run x -- true
usage "-u without a value" -u
usage "run: unknown option" run --bogus x -- true
usage "run: unknown short option" run -Z x -- true
usage "run: missing NAME" run
usage "run: missing NAME before --" run -- true
usage "run: missing --" run x
usage "run: command without --" run x true
usage "run: missing command after --" run x --
usage "run: empty NAME" run "" -- true
usage "run: -w not a number" run -w abc x -- true
usage "run: -w negative" run -w -1 x -- true
usage "run: -w exponent" run -w 1e3 x -- true
usage "run: -w empty" run -w "" x -- true
usage "run: -x not a number" run -x 10s x -- true
usage "run: -x negative" run -x -5 x -- true
usage "run: --grace not a number" run --grace soon x -- true
usage "run: -E out of range" run -E 300 x -- true
usage "run: -E not a number" run -E one x -- true
usage "run: -n with -w" run -n -w 1 x -- true
usage "run: --fencing takes no value" run --fencing=1 x -- true
usage "run: option value missing at the end" run x -w
usage "run: empty -i" run -i "" x -- true
usage "acquire: missing NAME" acquire -x 5
usage "acquire: two names" acquire a b
usage "acquire: -w not a number" acquire -w 0.5.1 x
usage "acquire: --json is not its option" acquire --json x
usage "release: missing -i" release x
usage "release: missing NAME" release -i abc
usage "extend: missing -x" extend -i abc x
usage "extend: -x 0" extend -i abc -x 0 x
usage "extend: missing -i" extend -x 5 x
usage "status: missing NAME" status
usage "status: two names" status a b
usage "status: unknown option" status --yes x
usage "reset: missing NAME" reset
usage "reset-all: takes no NAME" reset-all --yes x
usage "cache: missing -t" cache k -- echo hi
usage "cache: -t 0" cache -t 0 k -- echo hi
usage "cache: -t negative" cache -t -3 k -- echo hi
usage "cache: missing KEY" cache -t 5 -- echo hi
usage "cache: missing --" cache -t 5 k echo hi
usage "cache: missing command" cache -t 5 k --

# A bad URL is a usage error too (one line, no hint needed).
expect 64 "bad URL scheme" "$RL" -u http://localhost/ status x
one_line_error "bad URL" "bad URL message"
expect 64 "bad URL in REDIS_URL" env REDIS_URL=redis://host:notaport/0 "$RL" status x
one_line_error "port" "bad port message"

# reset-all on a terminal without --yes (script(1) gives it a pty)
if command -v script >/dev/null; then
    script -qec "$RL reset-all" /dev/null >"$T/tty.out" 2>&1 </dev/null
    rc=$?
    if [ "$rc" = 64 ] && grep -q -- '--yes' "$T/tty.out"; then
        ok "reset-all on a terminal needs --yes"
    else
        fail "reset-all on a terminal: exit $rc: $(cat "$T/tty.out")"
    fi
else
    fail "script(1) is missing (util-linux): cannot check reset-all on a terminal"
fi

# Help and version
for sub in run acquire release extend status reset reset-all cache; do
    expect 0 "$sub --help" "$RL" "$sub" --help
    check "$sub --help prints its usage" grep -q "^usage: redis-lock $sub" "$T/out"
    expect 0 "$sub -h (after other options)" "$RL" "$sub" -v -h
done
expect 0 "--help" "$RL" --help
check "--help lists every command" bash -c "for c in run acquire release extend status reset reset-all cache; do grep -q \"^  \$c \" '$T/out' || exit 1; done"
expect 0 "help" "$RL" help
expect 0 "--version" "$RL" --version
check "--version prints a version" grep -qE '^redis-lock [0-9]+\.[0-9]+\.[0-9]+' "$T/out"
expect 74 "--help to a full device" bash -c "'$RL' --help >/dev/full"

finish
