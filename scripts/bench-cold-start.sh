#!/usr/bin/env bash
# Cold start of every function against hello-world baselines and a Node.js peer, in one
# run (docs/benchmarks.md):  scripts/bench-cold-start.sh [runs]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/symphony-target}"
scripts/python-env.sh
(cd bench/peers && npm ci --no-audit --no-fund --silent)
cargo build --release --locked \
  -p process-email-queue -p handle-email -p process-campaigns -p handle-campaign \
  -p process-sms-drip -p handle-sms -p symphony-api >&2
cargo build --release --locked -p symphony-tests \
  --bin hello-lambda --bin hello-lambda-clients --bin bench-cold-start >&2
"$CARGO_TARGET_DIR/release/bench-cold-start" "${1:-9}"
