#!/usr/bin/env bash
# The worker path against its floor and its peers, in one run (docs/benchmarks.md):
#   scripts/bench.sh [records] [rounds]
# Installs the peers from pinned versions (bench/peers: npm ci; Powertools for Python in
# the project venv), builds the bench in release, and prints one table.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/symphony-target}"
records="${1:-10000}"
rounds="${2:-25}"
scripts/python-env.sh
(cd bench/peers && npm ci --no-audit --no-fund --silent)
cargo build --release --locked -p symphony-tests --bin bench-batch >&2
"$CARGO_TARGET_DIR/release/bench-batch" "$records" "$rounds" \
  --peer "node loop=node bench/peers/node-loop.mjs {event} {rounds}" \
  --peer "Powertools TS=node bench/peers/powertools-ts.mjs {event} {rounds}" \
  --peer "Powertools Python=.venv/bin/python bench/peers/powertools_py.py {event} {rounds}"
