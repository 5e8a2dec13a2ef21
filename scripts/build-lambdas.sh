#!/usr/bin/env bash
# Builds every function for Lambda (provided.al2023, x86_64) with the pinned cargo-lambda
# and prints each bootstrap's size and the size of the zip Lambda is given (the bootstrap
# deflated, as `cargo lambda deploy` and `sam build` package it). Release builds use their
# own target dir, so they do not evict the test build's artifacts.
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
printf '%-24s %12s %12s\n' function bootstrap zipped
for manifest in functions/*/Cargo.toml; do
  bootstrap="$CARGO_TARGET_DIR/lambda/$(basename "$(dirname "$manifest")")/bootstrap"
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
