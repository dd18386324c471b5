#!/usr/bin/env bash
# Benchmark of the InstantDB HTTP adapter (`instant_api::http`) against the embedded engine
# served over HTTP with 50 ms of added latency per transact: sustained apply throughput for
# batch size B and concurrency C, reported against the ceiling B x C / 50 ms, and the
# adapter's per-app rate limit checked by counting the requests the server receives in every
# one-second window. Builds `crates/instant-local/examples/http_bench.rs` in release mode.
#
# Two runs:
#   1. limit above the demand (B=100, C=8 need 160 requests/s; limit 200/s): the throughput
#      figure (target: at least 80% of the ceiling) with the limit never exceeded;
#   2. limit below the demand (100/s): the limiter caps the rate at the configured value.
#
# Usage: bench/http.sh [seconds per run, default 10]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_PER_RUN="${1:-10}"

echo "== building http_bench (release)"
cargo build --release --quiet -p instant-local --example http_bench
BIN="$ROOT/target/release/examples/http_bench"

echo "== run 1: B=100 C=8 latency 50 ms, limit 200 requests/s"
"$BIN" --batch 100 --concurrency 8 --latency-ms 50 --rps 200 --seconds "$SECONDS_PER_RUN"
echo "== run 2: B=100 C=8 latency 50 ms, limit 100 requests/s (below the demand)"
"$BIN" --batch 100 --concurrency 8 --latency-ms 50 --rps 100 --seconds "$SECONDS_PER_RUN"
