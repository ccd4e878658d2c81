#!/usr/bin/env bash
# martdb's coupon reservations (embedded and over the wire) vs redis-server 7 + Lua with
# appendfsync always and everysec, in one run (benches/coupons.rs).
# Usage: scripts/bench-coupons.sh [--seconds S] [--callers 1,16,64] [--batch 1000] [--check-stock 500] [--data DIR] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v redis-server >/dev/null; then
  echo "bench-coupons: installing redis-server (Debian)" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
cargo bench --bench coupons -- "$@"
