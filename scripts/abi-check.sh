#!/usr/bin/env bash
# Is a built libredislock.so.1 compatible with release 1.0? Compares it with the stored
# ABI of 1.0 (abi/libredislock-1.0.abi, see abi/README.md) using abidiff.
#   bash scripts/abi-check.sh build/libredislock.so.1
# Prints abidiff's full report (added functions and grown options structs are fine), then
# fails on:
#   - what abidiff itself calls incompatible (exit bit 8: a function or variable removed);
#   - any other change left once additions and options structs grown at their end
#     (abi/options-growth.suppr) are set aside: a changed function signature, a field
#     moved or retyped in a struct a caller fills (abidiff reports those with bit 4 only).
# The library needs debug info (a Debug or RelWithDebInfo build) and no sanitizer.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lib=${1:?usage: abi-check.sh path/to/libredislock.so.1}
ref=$root/abi/libredislock-1.0.abi
supp=$root/abi/options-growth.suppr
command -v abidiff >/dev/null || { echo "abi-check: abidiff not found (apt-get install abigail-tools)"; exit 1; }
[ -f "$lib" ] || { echo "abi-check: no library at $lib"; exit 1; }
grep -q '\.debug_info' <<<"$(readelf -S "$lib")" ||
    { echo "abi-check: $lib has no debug info (build with -g: Debug or RelWithDebInfo)"; exit 1; }

echo "abi-check: $lib against $ref"
abidiff --headers-dir2 "$root/include" --drop-private-types "$ref" "$lib"
full=$?
if ((full & 3)); then echo "abi-check: abidiff failed (exit $full)"; exit 1; fi
if ((full & 8)); then echo "abi-check: FAIL: incompatible with 1.0 (abidiff exit $full)"; exit 1; fi

out=$(abidiff --headers-dir2 "$root/include" --drop-private-types --suppressions "$supp" \
    --no-added-syms "$ref" "$lib")
strict=$?
if ((strict != 0)); then
    echo "abi-check: FAIL: changes other than additions and options structs grown at their end:"
    echo "$out"
    exit 1
fi
echo "abi-check: compatible with 1.0 (abidiff exit $full: $( ((full & 4)) && echo "additions only" || echo "no change"))"
