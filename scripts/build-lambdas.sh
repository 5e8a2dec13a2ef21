#!/usr/bin/env bash
# Builds every function for Lambda (provided.al2023) with the pinned cargo-lambda and
# prints each bootstrap's size and the size of the zip Lambda is given (the bootstrap
# deflated, as `cargo lambda deploy` and `sam build` package it). Release builds use their
# own target dir, so they do not evict the test build's artifacts.
#
#   scripts/build-lambdas.sh [x86_64|arm64] [cargo lambda build options]
#
# The architecture is the template's `Architecture` parameter; the bootstraps land in
# $LAMBDA_TARGET_DIR/lambda-<architecture>/<function>/bootstrap.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
architecture=x86_64
case "${1:-}" in
  x86_64|arm64) architecture=$1; shift ;;
esac
scripts/python-env.sh
export PATH="$PWD/.venv/bin:$PATH"
export CARGO_TARGET_DIR="${LAMBDA_TARGET_DIR:-$HOME/.cache/symphony-lambda-target}"
if [[ $architecture == arm64 ]]; then
  arch_flag=--arm64
  # The standard library for the target; zig (pinned in requirements.txt) links it.
  rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
    || rustup target add aarch64-unknown-linux-gnu
else
  arch_flag=--x86-64
fi
lambda_dir="$CARGO_TARGET_DIR/lambda-$architecture"
started=$(date +%s)
# Every crate under functions/ is one Lambda; the test crate's binaries are not.
packages=()
for manifest in functions/*/Cargo.toml; do packages+=(--package "$(basename "$(dirname "$manifest")")"); done
cargo lambda build --release "$arch_flag" --lambda-dir "$lambda_dir" "${packages[@]}" "$@"
echo "built for $architecture in $(( $(date +%s) - started ))s"
printf '%-24s %12s %12s\n' function bootstrap zipped
for manifest in functions/*/Cargo.toml; do
  bootstrap="$lambda_dir/$(basename "$(dirname "$manifest")")/bootstrap"
  zipped=$(.venv/bin/python - "$bootstrap" <<'PY'
import io, sys, zipfile
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
    archive.write(sys.argv[1], "bootstrap")
print(len(buffer.getvalue()))
PY
)
  printf '%-24s %12s %12s\n' "$(basename "$(dirname "$bootstrap")")" "$(stat -c %s "$bootstrap")" "$zipped"
done
echo "(bytes)"
