#!/usr/bin/env bash
# Every test of the workspace, on a fresh Debian or Ubuntu machine that has only Rust: installs
# what the tests need when it is missing, then runs `cargo test --workspace` (arguments are passed
# on, e.g. `bash scripts/test.sh -p tests --test redis`).
#
# The Redis tests start their own redis-server processes on free loopback ports (and make TLS
# certificates with openssl); the protocol model is checked with spin; the dashboard's tests drive
# headless Chromium through chromedriver. None of them is skipped when a tool is missing: they
# fail with the install instruction instead.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v spin >/dev/null 2>&1 || need+=(spin)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
if ((${#need[@]})); then
  echo "installing ${need[*]} for the tests"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${need[@]}"
fi
redis-server --version

cargo test --workspace "$@"
