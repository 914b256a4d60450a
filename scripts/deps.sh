#!/usr/bin/env bash
# Install the Debian 12 packages that building, testing and the demo need (as root).
# Only touches apt when something is missing.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libhiredis-dev libssl-dev openssl libcmocka-dev
      redis-server redis-tools python3-redis valgrind
      abigail-tools dpkg-dev file) # the ABI check; cpack -G DEB (dpkg-shlibdeps)
pkgs+=("$@")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
