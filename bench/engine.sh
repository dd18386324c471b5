#!/usr/bin/env bash
# Benchmark of the embedded engine through the InstantApi port, in-process, on a file-backed
# workspace (SQLite, WAL): batched transact throughput, indexed-query latency over a large
# namespace, and peak RSS. Builds `crates/instant-local/examples/engine_bench.rs` in release
# mode and runs it.
#
# Usage: bench/engine.sh
# Sizes (environment, defaults in brackets):
#   BENCH_WRITE_ENTITIES [200000]  entities written into a fresh app (throughput figure)
#   BENCH_QUERY_ENTITIES [1000000] namespace size for the query figure
#   BENCH_QUERIES        [200]     queries by the indexed attribute
#   BENCH_BATCH          [500]     update steps per transact
#   BENCH_DIR            [temp]    keep the workspace there instead of a temporary directory
#   BENCH_SQLITE_PRAGMAS [none]    extra PRAGMAs on the engine connection (tuning experiments)
#   BENCH_PAGE_SIZE      [4096]    create the database with another page size (tuning experiments)
#   BENCH_SEQUENTIAL_IDS [0]       1: entity ids grow with insertion order (measures B-tree scatter)
# Besides the wall-clock rate (request building included), the write figure shows the rate
# inside `transact` and the writer thread's CPU time and wait for a CPU: on a shared machine
# the wall-clock rate moves with the load, so compare runs made at the same time.
# Quick run: BENCH_WRITE_ENTITIES=20000 BENCH_QUERY_ENTITIES=50000 bench/engine.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

echo "== building engine_bench (release)"
cargo build --release --quiet -p instant-local --example engine_bench
BIN="$ROOT/target/release/examples/engine_bench"

echo "== running: writes ${BENCH_WRITE_ENTITIES:-200000}, namespace ${BENCH_QUERY_ENTITIES:-1000000}, queries ${BENCH_QUERIES:-200}, batch ${BENCH_BATCH:-500}"
"$BIN"
