#!/usr/bin/env bash
# deps.sh — install every Debian package sluice needs to build, test and benchmark.
# Idempotent: skips apt-get entirely when everything is already installed.
set -euo pipefail
PKGS=(build-essential cmake pkg-config clang-14 clang-format libclang-rt-14-dev
      libuv1-dev libcurl4-openssl-dev libhttp-parser-dev libjansson-dev libcmocka-dev
      libyaml-dev libhiredis-dev redis-server curl ca-certificates python3 procps jq)
# Node.js runs the peer benchmarks and the SDK compatibility tests; the machine may
# already carry its own build (which conflicts with Debian's npm), so only add it if absent.
command -v node >/dev/null 2>&1 || PKGS+=(nodejs npm)
[ "${SL_BENCH_DEPS:-0}" = 1 ] && PKGS+=(nginx-light wrk python3-httpx python3-aiohttp hyperfine time)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    echo "deps: installing ${missing[*]}" >&2
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
