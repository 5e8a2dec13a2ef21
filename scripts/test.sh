#!/usr/bin/env bash
# README command two: every check and every test. CI runs exactly this.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/symphony-target}"
scripts/python-env.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
# Every test binary runs even after one fails, so a red run lists every failure.
cargo test --workspace --all-targets --locked --no-fail-fast 2>&1 | tee "$log"
# One closing line for the whole run: cargo prints one per test binary.
awk '/^test result:/ { passed += $4; failed += $6 } END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
