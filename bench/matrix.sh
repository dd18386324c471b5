#!/usr/bin/env bash
# Benchmark of `threadmig matrix` on a fleet of N organisations (default 500) generated with
# `threadmig gen` into an embedded workspace (smallest data: one context_event per org, lean
# content), planning builtin:thread-v1 for every org:
#   1. in process (the workspace's engine in this process), pool of --concurrency workers;
#   2. over HTTP: `threadmig serve --workspace DIR --fault-latency-ms 100` (100 ms added to
#      every request), the same pool, then with one worker for comparison.
# Each run prints its wall time, orgs per second and the pool size; the issue's target is
# under 30 s for 500 orgs in both setups. Builds threadmig in release mode.
#
# Usage: bench/matrix.sh [ORGS]
#   BENCH_CONCURRENCY [16]  the pool size (--concurrency)
#   BENCH_SERIAL      [1]   0: skip the one-worker HTTP run (it takes ~ORGS x 0.1 s)
#   BENCH_KEEP        [0]   1: keep the workspace and reports
set -euo pipefail

ORGS="${1:-500}"
CONCURRENCY="${BENCH_CONCURRENCY:-16}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/threadmig-matrix-bench.XXXXXX")"
SERVE_PID=""
cleanup() {
  if [[ -n "$SERVE_PID" ]]; then kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; fi
  if [[ "${BENCH_KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT

now_ns() { date +%s%N; }
ms_since() { echo $(( ($(now_ns) - $1) / 1000000 )); }

cd "$ROOT"
echo "== building threadmig (release)"
cargo build --release --quiet -p threadmig
BIN="$ROOT/target/release/threadmig"
cd "$WORK"

echo "== gen: $ORGS orgs, 1 context_event each, lean content"
start=$(now_ns)
"$BIN" gen --preset small --seed 1 --orgs "$ORGS" --events "$ORGS" --content lean \
  --roles clean,schema-conflict,conversation-orphan,missing-credentials \
  --workspace ws --out gen >/dev/null
echo "gen: $(ms_since "$start") ms"

# One matrix run: prints wall time, rate, and the summary counts.
run_matrix() {
  local label="$1"; shift
  local start ms code=0
  start=$(now_ns)
  "$BIN" --json matrix --workspace ws --artifacts "out-$label" "$@" >"summary-$label.json" || code=$?
  ms=$(ms_since "$start")
  if [[ "$code" -gt 1 ]]; then echo "matrix ($label) failed with exit $code" >&2; exit 1; fi
  python3 - "$label" "$ms" "summary-$label.json" <<'EOF'
import json, sys
label, ms, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = json.load(open(path))
n = s["summary"]["totalOrgs"]
print(f"{label}: {n} orgs in {ms/1000:.2f} s ({n/(ms/1000):.0f} orgs/s), pool {s['concurrency']}, "
      f"safe {s['summary']['safe']}, blocked {s['summary']['blocked']}, "
      f"failed {s['summary']['plannedFailed']}, without credentials {s['summary']['missingInstantCredentials']}")
EOF
}

echo "== matrix in process"
run_matrix in-process --concurrency "$CONCURRENCY"

echo "== matrix over HTTP, 100 ms added per request"
"$BIN" serve --workspace ws --port 0 --quiet --fault-latency-ms 100 >serve.out 2>serve.err &
SERVE_PID=$!
for _ in $(seq 1 100); do [[ -s serve.out ]] && break; sleep 0.1; done
URL="$(head -n 1 serve.out)"
[[ -n "$URL" ]] || { echo "serve did not start: $(cat serve.err)" >&2; exit 1; }
run_matrix http --concurrency "$CONCURRENCY" --instant-api-uri "$URL"
if [[ "${BENCH_SERIAL:-1}" == 1 ]]; then
  run_matrix http-serial --concurrency 1 --instant-api-uri "$URL"
fi
