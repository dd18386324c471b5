#!/usr/bin/env bash
# Reliability figures of `threadmig migrate` (issue 9) on the first org (role `clean`) of a
# generated `medium` fleet, release build:
#   1. uninterrupted reference: gen, scan, model-plan, matrix, migrate --dry-run, then
#      migrate --approve <sha> in process; the content digest of the six thread namespaces;
#   2. faults: the same over `threadmig serve` injecting about 20% faults (6% 429 with
#      Retry-After, 6% 500/503, 4% connections dropped before the request took effect, 4% after):
#      wall time, requests and faults (each fault costs the client one retry), final status,
#      invariants, and whether the thread data equal the reference's;
#   3. SIGKILL: migrate --approve killed at 10 seeded points during apply (one per tenth of the
#      plan's batches, each after 0-3 ms), re-run with the same --run-id until it finishes:
#      kills, runs, time, and whether the thread data equal the reference's. The journal is
#      checked to hold each batch exactly once.
#
# The scenarios are the ones `cargo test -p threadmig --test it migrate` runs on a small org
# (crates/threadmig/tests/it/migrate.rs); this script runs its ignored `figures` test.
#
# Usage: bench/migrate.sh
# Environment (defaults in brackets):
#   MIGRATE_BENCH_PRESET      [medium] gen preset of the fleet
#   MIGRATE_BENCH_SEED        [11]     gen seed
#   MIGRATE_BENCH_KILLS       [10]     SIGKILLs during apply
#   MIGRATE_BENCH_BATCH       [500]    --batch-size (steps per transaction)
#   MIGRATE_BENCH_RETRY_AFTER [1]      Retry-After seconds of the injected 429s
# Quick run: MIGRATE_BENCH_PRESET=small MIGRATE_BENCH_BATCH=50 bench/migrate.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

echo "== building the threadmig binary and its integration tests (release)"
cargo build --release --quiet -p threadmig --bin threadmig
cargo test --release --quiet -p threadmig --test it --no-run

echo "== running: preset ${MIGRATE_BENCH_PRESET:-medium}, seed ${MIGRATE_BENCH_SEED:-11}, ${MIGRATE_BENCH_KILLS:-10} kills, batch size ${MIGRATE_BENCH_BATCH:-500}"
START=$(date +%s)
cargo test --release --quiet -p threadmig --test it migrate::figures -- --ignored --exact \
  --nocapture --test-threads 1
echo "== total $(( $(date +%s) - START )) s"
