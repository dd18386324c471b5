#!/usr/bin/env bash
# End-to-end figures of the migration core (issue 6) on the embedded engine, release build:
# gen into a workspace, then for every org extract -> transform -> tx-plan -> target schema
# push -> apply (approved) -> verify, each stage a `threadmig` process. Prints each stage's
# time summed over the orgs and the whole; fails unless every org verifies.
#
# Usage: bench/e2e.sh
# Environment (defaults in brackets):
#   E2E_PRESET [medium]  gen preset (medium: ~100k context_events over 12 orgs)
#   E2E_ORGS   [preset]  number of orgs (1: the whole preset in one app)
#   E2E_EVENTS [preset]  fleet-wide number of context_events
#   E2E_BATCH  [500]     steps per transaction
#   E2E_KEEP   [unset]   set: keep the workspace and run folders (the path is printed)
#   E2E_KEEP_BEFORE_APPLY [unset] set: also keep a copy of the workspace as each apply finds it
# Quick run: E2E_PRESET=small bench/e2e.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
echo "== building the threadmig binary and its integration tests (release)"
cargo build --release --quiet -p threadmig --bin threadmig
cargo test --release --quiet -p threadmig --test it --no-run
echo "== running: preset ${E2E_PRESET:-medium}, orgs ${E2E_ORGS:-preset}, batch ${E2E_BATCH:-500}"
/usr/bin/time -f "== peak RSS of the test process %M KB" \
  cargo test --release --quiet -p threadmig --test it apply::figures_end_to_end -- --ignored \
  --exact --nocapture --test-threads 1
