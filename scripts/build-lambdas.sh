#!/usr/bin/env bash
# Builds every function for Lambda (provided.al2023, x86_64) with the pinned cargo-lambda
# and prints each bootstrap's size. Release builds use their own target dir, so they do
# not evict the test build's artifacts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/python-env.sh
export PATH="$PWD/.venv/bin:$PATH"
export CARGO_TARGET_DIR="${LAMBDA_TARGET_DIR:-$HOME/.cache/symphony-lambda-target}"
started=$(date +%s)
# Every crate under functions/ is one Lambda; the test crate's binaries are not.
packages=()
for manifest in functions/*/Cargo.toml; do packages+=(--package "$(basename "$(dirname "$manifest")")"); done
cargo lambda build --release "${packages[@]}" "$@"
echo "built in $(( $(date +%s) - started ))s"
for manifest in functions/*/Cargo.toml; do
  bootstrap="$CARGO_TARGET_DIR/lambda/$(basename "$(dirname "$manifest")")/bootstrap"
  printf '%-24s %s bytes\n' "$(basename "$(dirname "$bootstrap")")" "$(stat -c %s "$bootstrap")"
done
