#!/usr/bin/env bash
# README command one: runs the email queue end to end on this machine (moto + SMTP on
# loopback, the real functions), then stops everything it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/symphony-target}"
scripts/python-env.sh
cargo run --quiet -p symphony-tests --bin local-run
