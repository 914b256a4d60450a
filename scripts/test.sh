#!/usr/bin/env bash
# The whole check, as CI runs it: install packages, build with warnings as errors, run the
# suite, install and build outside programs against the installed library (pkg-config and
# find_package), a library-only build where cmocka and redis-server do not exist, the
# Debian packages (built, checked, unpacked and built against), the ABI check against
# release 1.0, then the suite under ASan+UBSan, the threaded tests under TSan, and the
# single-process tests under valgrind memcheck.
#   bash scripts/test.sh            everything
#   bash scripts/test.sh --quick    build + suite only
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
quick=0
[ "${1:-}" = "--quick" ] && quick=1
bash scripts/deps.sh
jobs=$(nproc)
stages=0
stage_name=
stage_done() { [ -z "$stage_name" ] || printf '==== %s: %d s\n' "$stage_name" $((SECONDS - stage_t0)); }
stage() {
    stage_done
    stage_name=$*
    stage_t0=$SECONDS
    printf '\n==== %s (%s)\n' "$*" "$(date +%T)"
    stages=$((stages + 1))
}

stage "build (warnings are errors)"
cmake -S . -B build-ci -DCMAKE_BUILD_TYPE=RelWithDebInfo -DREDIS_LOCK_WERROR=ON >/dev/null
cmake --build build-ci -j"$jobs"

stage "test suite"
(cd build-ci && ctest --output-on-failure -j"$jobs")
if [ $quick = 1 ]; then stage_done; echo "stages: 2 passed, 0 failed"; exit 0; fi

stage "install; outside programs via pkg-config and find_package"
prefix=$(mktemp -d /tmp/redis-lock-prefix.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install build-ci --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig:$prefix/lib/$(gcc -dumpmachine)/pkgconfig"
cc -std=c11 -Wall -Werror examples/basic.c $(pkg-config --cflags --libs redis-lock) -o "$prefix/basic"
cmake -S examples -B "$prefix/build-examples" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/build-examples" >/dev/null
(
    unset REDIS_URL
    . scripts/redis-tmp.sh
    LD_LIBRARY_PATH="$prefix/lib:$prefix/lib/$(gcc -dumpmachine)" "$prefix/basic"
    LD_LIBRARY_PATH="$prefix/lib:$prefix/lib/$(gcc -dumpmachine)" "$prefix/build-examples/turns" 3 2
)
[ -f "$prefix/share/man/man1/redis-lock.1" ] && man -l "$prefix/share/man/man1/redis-lock.1" >/dev/null 2>&1 || true

stage "library-only build (BUILD_TESTING=OFF) where cmocka and redis-server do not exist"
bash scripts/lib-only-check.sh build-deb

stage "Debian packages: cpack, dpkg-deb -I/-c, dpkg -x, examples built and run against them"
bash scripts/packages-check.sh build-deb

stage "ABI: compatible with release 1.0 (abidiff; a program built against the 1.0 header)"
# the stored 1.0 header is the released one (when the history is at hand)
if git rev-parse -q --verify e678b02^{commit} >/dev/null 2>&1; then
    git show e678b02:include/redis_lock.h | cmp - tests/abi/redis_lock_1_0.h
fi
bash scripts/abi-check.sh build-ci/libredislock.so.1
(cd build-ci && ctest --output-on-failure -L abi)

stage "ASan + UBSan: the whole suite"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DREDIS_LOCK_WERROR=ON -DREDIS_LOCK_SANITIZE=address >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --output-on-failure -j"$jobs" -LE chaos)

stage "TSan: the threaded tests"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DREDIS_LOCK_WERROR=ON -DREDIS_LOCK_SANITIZE=thread >/dev/null
cmake --build build-tsan -j"$jobs" >/dev/null
(cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ctest --output-on-failure -L threaded)

# Forking tests are left out: a forked child holds memory of threads that were not copied
# (the parent's renewal thread), which memcheck reports as lost at the child's exit.
stage "valgrind memcheck: the single-process tests"
fails=0
for t in $(cd build-ci && ctest -N -LE 'forks|chaos' | awk '/Test +#/ {print $3}'); do
    # tls_NAME is test_NAME run over TLS (the harness reads RL_TEST_TRANSPORT)
    transport=unix
    bin=build-ci/tests/$t
    if [[ $t == tls_* ]]; then transport=tls; bin=build-ci/tests/test_${t#tls_}; fi
    [ -x "$bin" ] && cmp -s -n 4 "$bin" <(printf '\177ELF') || continue
    if RL_TEST_TRANSPORT=$transport valgrind -q --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        --track-fds=no "$bin" >"build-ci/$t.valgrind.log" 2>&1; then
        echo "valgrind $t: 0 errors, 0 leaks"
    else
        echo "valgrind $t: FAILED"; tail -40 "build-ci/$t.valgrind.log"; fails=$((fails + 1))
    fi
done
[ $fails = 0 ] || { echo "valgrind: $fails test programs failed"; exit 1; }
stage_done
printf '\n==== all checks passed (%s, %d s)\nstages: %d passed, 0 failed\n' "$(date +%T)" "$SECONDS" "$stages"
