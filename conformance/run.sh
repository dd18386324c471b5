#!/usr/bin/env bash
# Conformance suite: the official @instantdb/admin and @instantdb/platform clients (pinned in
# the root package-lock.json; install them with `npm ci`) against `threadmig serve`.
# Builds the debug binary unless THREADMIG_BIN names one, then runs every conformance/*.test.mjs
# with node's test runner. Extra arguments go to `node --test` (e.g. --test-name-pattern=order).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${THREADMIG_BIN:-}" ]; then
  cargo build -p threadmig --locked
  # Where cargo put it: CARGO_TARGET_DIR when set, else ./target.
  export THREADMIG_BIN="${CARGO_TARGET_DIR:-target}/debug/threadmig"
fi

# TAP whatever the terminal: one line per case, failure diagnostics, and the closing
# `# pass N` / `# fail N` summary lines.
exec node --test --test-reporter=tap "$@" conformance/
