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
# The web app's TypeScript client (clients/typescript): installed from its lockfile, built,
# and its own tests run against a moto server they start; the Rust end-to-end test
# (tests/tests/typescript_client.rs) then runs the built package.
(cd clients/typescript && npm ci --no-audit --no-fund --silent && npm test) 2>&1 | tee -a "$log"
# The plain binaries too (functions, CLI, dev-stack): cargo test builds a package's own
# binaries only for its integration tests, and the dev-stack test runs the functions'.
cargo build --workspace --bins --locked
# Every test binary runs even after one fails, so a red run lists every failure.
cargo test --workspace --all-targets --locked --no-fail-fast 2>&1 | tee -a "$log"
# One closing line for the whole run: cargo prints one per test binary.
awk '/^test result:/ { passed += $4; failed += $6 } /^# pass / { passed += $3 } /^# fail / { failed += $3 }
  END { printf "tests: %d passed, %d failed (Rust and TypeScript)\n", passed, failed }' "$log"
