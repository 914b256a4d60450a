#!/usr/bin/env bash
# A library-only build needs neither cmocka nor redis-server: configure, build and install
# with -DBUILD_TESTING=OFF where they do not exist.
#   bash scripts/lib-only-check.sh BUILD_DIR
# BUILD_DIR is configured with the prefix /usr (as the Debian packages are built from it;
# scripts/packages-check.sh takes it next) and installed into a scratch prefix.
#
# As root, it runs in a private mount namespace where /usr is an overlay that whites out
# every file of the cmocka and redis-server packages, so they are absent, not just unused;
# a configure with BUILD_TESTING=ON there must fail (the control that shows the hiding
# works). Everywhere, cmake's trace of the configure must not mention cmocka or
# redis-server at all.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:?usage: lib-only-check.sh BUILD_DIR}
[ "$build" = --inside ] || build=$(realpath -m "$build")

# the files to hide: those of cmocka and of the Redis server and tools
hidden_files() {
    local p
    for p in libcmocka-dev libcmocka0 redis-server redis-tools; do
        dpkg-query -W "$p" >/dev/null 2>&1 || continue
        dpkg -L "$p" | while read -r f; do
            case $f in /usr/share/doc/* | /usr/share/man/*) continue ;; esac
            [ -f "$f" ] || [ -L "$f" ] && [ ! -d "$f" ] && echo "$f"
        done
    done
    echo /usr/bin/redis-server # a symlink that some versions create from a maintainer script
}

check() {
    local tmp=$1 masked=$2
    if [ "$masked" = 1 ]; then
        if command -v redis-server >/dev/null || pkg-config --exists cmocka ||
            [ -e /usr/include/cmocka.h ]; then
            echo "lib-only: FAIL: cmocka or redis-server still visible in the namespace"
            exit 1
        fi
        echo "lib-only: redis-server, redis-cli and cmocka (header, .pc, CMake package, library) are absent here"
        # the control: the tests cannot configure here
        if cmake -S "$root" -B "$tmp/control" -DBUILD_TESTING=ON >"$tmp/control.log" 2>&1; then
            echo "lib-only: FAIL: a configure with tests succeeded without cmocka/redis-server"
            exit 1
        fi
        echo "lib-only: control: with BUILD_TESTING=ON the configure fails here:"
        grep -i -E "not found|could not find" "$tmp/control.log" | sed 's/^ */    /'
    fi
    rm -rf "$build"
    cmake -S "$root" -B "$build" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_INSTALL_PREFIX=/usr -DREDIS_LOCK_WERROR=ON \
        --trace-expand --trace-redirect="$tmp/trace.log" >"$tmp/configure.log"
    local hits
    hits=$(grep -n -i -E "cmocka|redis-server" "$tmp/trace.log" || true)
    if [ -n "$hits" ]; then
        sed -n 1,5p <<<"$hits"
        echo "lib-only: FAIL: the configure looked for cmocka or redis-server (above)"
        exit 1
    fi
    echo "lib-only: configure trace: $(wc -l <"$tmp/trace.log") lines, none about cmocka or redis-server"
    cmake --build "$build" -j"$(nproc)" >"$tmp/build.log" || { tail -30 "$tmp/build.log"; exit 1; }
    [ ! -e "$build/tests" ] || { echo "lib-only: FAIL: tests were configured"; exit 1; }
    cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
    local ma f
    ma=$(gcc -dumpmachine)
    for f in include/redis_lock.h lib/$ma/libredislock.so.1 lib/$ma/libredislock.so lib/$ma/libredislock.a \
        lib/$ma/pkgconfig/redis-lock.pc lib/$ma/cmake/redis_lock/redis_lockConfig.cmake \
        bin/redis-lock share/man/man1/redis-lock.1; do
        [ -e "$tmp/prefix/$f" ] || { echo "lib-only: FAIL: $f not installed"; exit 1; }
    done
    echo "lib-only: installed $(find "$tmp/prefix" -type f -o -type l | wc -l) files: library, header, .pc, CMake package, tool, man page"
    PKG_CONFIG_PATH=$tmp/prefix/lib/$ma/pkgconfig \
        cc -std=c11 -Wall -Werror "$root/examples/basic.c" $(PKG_CONFIG_PATH=$tmp/prefix/lib/$ma/pkgconfig \
        pkg-config --cflags --libs redis-lock) -o "$tmp/basic"
    echo "lib-only: examples/basic.c builds against the install (pkg-config)"
}

if [ "${1:-}" = --inside ]; then # in the namespace: $2 build dir, $3 scratch dir
    build=$2
    check "$3" 1
    exit 0
fi

tmp=$(mktemp -d /tmp/redis-lock-libonly.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ "$(id -u)" = 0 ] && unshare -m --propagation private true 2>/dev/null; then
    mkdir -p "$tmp/upper" "$tmp/work"
    n=0
    while read -r f; do
        rel=${f#/usr/}
        [ "$rel" != "$f" ] || continue
        mkdir -p "$tmp/upper/$(dirname "$rel")"
        [ -e "$tmp/upper/$rel" ] || { mknod "$tmp/upper/$rel" c 0 0; n=$((n + 1)); } # whiteout
    done < <(hidden_files | sort -u)
    echo "lib-only: hiding $n files of cmocka and redis in a private mount namespace"
    unshare -m --propagation private bash -c '
        mount -t overlay overlay -o lowerdir=/usr,upperdir="$1/upper",workdir="$1/work" /usr &&
        exec bash "$2" --inside "$3" "$1"' _ "$tmp" "$root/scripts/lib-only-check.sh" "$build"
else
    echo "lib-only: no mount namespace here (needs root): cmocka and redis-server stay installed;"
    echo "lib-only: the configure trace is the evidence that they are not looked for"
    check "$tmp" 0
fi
