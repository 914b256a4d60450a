#!/usr/bin/env bash
# The Debian packages: build them with cpack, check their control fields and contents,
# unpack them into a scratch root (dpkg -x, nothing is installed on the machine), build
# examples/basic.c against what they contain (pkg-config and find_package) and run it and
# the packaged tool against a throwaway redis-server.
#   bash scripts/packages-check.sh BUILD_DIR
# BUILD_DIR: a build configured with -DCMAKE_INSTALL_PREFIX=/usr (scripts/lib-only-check.sh
# leaves one).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:?usage: packages-check.sh BUILD_DIR}")
ma=$(gcc -dumpmachine)
version=$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$build/CMakeCache.txt")
grep -q '^CMAKE_INSTALL_PREFIX:PATH=/usr$' "$build/CMakeCache.txt" ||
    { echo "packages: $build is not configured with -DCMAKE_INSTALL_PREFIX=/usr"; exit 1; }
fail() { echo "packages: FAIL: $*"; exit 1; }

rm -rf "$build/packages"
(cd "$build" && cpack -G DEB >/dev/null)
lib=$build/packages/libredislock1_${version}_$(dpkg --print-architecture).deb
dev=${lib/libredislock1_/libredislock-dev_}
tool=${lib/libredislock1_/redis-lock_}
for deb in "$lib" "$dev" "$tool"; do
    [ -f "$deb" ] || fail "$deb was not built"
done

# field FILE NAME: a control field
field() { dpkg-deb -f "$1" "$2"; }
# has FILE PATTERN...: the package's file list has a line matching each (grep -E)
has() {
    local deb=$1 list p
    shift
    list=$(dpkg-deb -c "$deb" | awk '{print $6}')
    for p in "$@"; do grep -qE "$p" <<<"$list" || fail "$(basename "$deb") has no file matching $p"; done
}
# lacks FILE PATTERN: no file matches
lacks() {
    ! grep -qE "$2" <<<"$(dpkg-deb -c "$1" | awk '{print $6}')" || fail "$(basename "$1") has files matching $2"
}
for deb in "$lib" "$dev" "$tool"; do
    echo "---- $(basename "$deb"): $(stat -c %s "$deb") bytes"
    dpkg-deb -f "$deb" Package Version Architecture Section Depends Maintainer | sed 's/^/    /'
    echo "    Description: $(field "$deb" Description | head -1)"
    dpkg-deb -c "$deb" | awk '$1 !~ /^d/ {print "    " $3 "\t" $6 ($7 ? " " $7 " " $8 : "")}'
    [ -n "$(field "$deb" Maintainer)" ] || fail "$(basename "$deb") has no Maintainer"
    [ "$(field "$deb" Version)" = "$version" ] || fail "$(basename "$deb") is not version $version"
    [ "$(field "$deb" Description | wc -l)" -ge 3 ] || fail "$(basename "$deb"): no extended Description"
done

[ "$(field "$lib" Package)" = libredislock1 ] && [ "$(field "$lib" Section)" = libs ] ||
    fail "libredislock1: Package/Section"
grep -q 'libhiredis0.14' <<<"$(field "$lib" Depends)" || fail "libredislock1 does not depend on libhiredis0.14"
grep -q 'libc6' <<<"$(field "$lib" Depends)" || fail "libredislock1 does not depend on libc6"
grep -q 'libssl3' <<<"$(field "$lib" Depends)" || fail "libredislock1 does not depend on libssl3 (TLS)"
has "$lib" "^\./usr/lib/$ma/libredislock\.so\.1$" "^\./usr/lib/$ma/libredislock\.so\.$version$"
lacks "$lib" '/include/|\.so$|\.a$|/bin/'
grep -q "^libredislock 1 libredislock1" <<<"$(dpkg-deb --ctrl-tarfile "$lib" | tar -xO ./shlibs)" ||
    fail "libredislock1 has no shlibs file"

[ "$(field "$dev" Section)" = libdevel ] || fail "libredislock-dev: Section"
for d in "libredislock1 (= $version)" libhiredis-dev libssl-dev; do
    grep -qF "$d" <<<"$(field "$dev" Depends)" || fail "libredislock-dev does not depend on $d"
done
has "$dev" '^\./usr/include/redis_lock\.h$' "^\./usr/lib/$ma/libredislock\.so$" \
    "^\./usr/lib/$ma/libredislock\.a$" "^\./usr/lib/$ma/pkgconfig/redis-lock\.pc$" \
    "^\./usr/lib/$ma/cmake/redis_lock/redis_lockConfig\.cmake$"
lacks "$dev" '\.so\.1'

[ "$(field "$tool" Section)" = utils ] || fail "redis-lock: Section"
grep -qF "libredislock1 (= $version)" <<<"$(field "$tool" Depends)" || fail "redis-lock does not depend on libredislock1"
has "$tool" '^\./usr/bin/redis-lock$' '^\./usr/share/man/man1/redis-lock\.1(\.gz)?$'
lacks "$tool" '/lib/'

# unpack into a scratch root and build against what the packages contain
tmp=$(mktemp -d /tmp/redis-lock-debroot.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
sysroot=$tmp/root
for deb in "$lib" "$dev" "$tool"; do dpkg -x "$deb" "$sysroot"; done
so=$sysroot/usr/lib/$ma/libredislock.so.1
grep -q 'ELF 64-bit LSB shared object' <<<"$(file -L "$so")" || fail "$(file -L "$so")"
[ "$(objdump -p "$so" | awk '/SONAME/ {print $2}')" = libredislock.so.1 ] || fail "SONAME of $so"
! grep -qE 'RPATH|RUNPATH' <<<"$(readelf -d "$sysroot/usr/bin/redis-lock")" || fail "the packaged tool has an RPATH"

# pkg-config: the packaged .pc finds its prefix from where it lies (${pcfiledir}), so the
# flags point into the scratch root; hiredis.pc comes from the system (libhiredis-dev).
export PKG_CONFIG_PATH=$sysroot/usr/lib/$ma/pkgconfig
flags=$(pkg-config --cflags --libs redis-lock)
echo "packages: pkg-config --cflags --libs redis-lock: $flags"
inc=$(realpath -m "$(pkg-config --variable=includedir redis-lock)")
libdir=$(realpath -m "$(pkg-config --variable=libdir redis-lock)")
[ "$inc" = "$sysroot/usr/include" ] && [ "$libdir" = "$sysroot/usr/lib/$ma" ] ||
    fail "pkg-config's includedir $inc and libdir $libdir are not in the unpacked packages"
cc -std=c11 -Wall -Werror "$root/examples/basic.c" $flags -o "$tmp/basic"
# find_package: the installed CMake package is relocatable too
cmake -S "$root/examples" -B "$tmp/examples" -DCMAKE_PREFIX_PATH="$sysroot/usr" >/dev/null
cmake --build "$tmp/examples" >/dev/null
export LD_LIBRARY_PATH=$sysroot/usr/lib/$ma
[[ $(ldd "$tmp/basic") == *"$so"* ]] || fail "basic does not load the packaged library"
[[ $(ldd "$tmp/examples/turns") == *"$so"* ]] || fail "turns does not load the packaged library"
echo "packages: examples built against the unpacked packages (pkg-config and find_package)"
(
    unset REDIS_URL
    . "$root/scripts/redis-tmp.sh"
    "$tmp/basic"
    "$tmp/examples/turns" 2 1 >/dev/null
    "$sysroot/usr/bin/redis-lock" --version
    out=$("$sysroot/usr/bin/redis-lock" run -x 5 packages-check -- sh -c 'echo "held by $REDIS_LOCK_ID"')
    echo "packaged redis-lock run: $out"
    grep -q '^held by ' <<<"$out" || fail "the packaged tool did not run its command"
    [ "$(redis-cli -s "${REDIS_URL#unix://}" exists lock:packages-check)" = 0 ] ||
        fail "the packaged tool left its lock"
)
man -l "$sysroot/usr/share/man/man1/redis-lock.1"* >/dev/null 2>&1 || true
echo "packages: all checks passed"
