#!/usr/bin/env bash
# Creates (or refreshes) the project-local venv with the pinned Python tools.
# Idempotent and safe to call concurrently: a lock serialises installs, and a stamp of
# the requirements file skips the install when nothing changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
req="$root/scripts/requirements.txt"
stamp="$venv/.requirements.sha256"
mkdir -p "$root/.local"
exec 9>"$root/.local/python-env.lock"
flock 9
want="$(sha256sum "$req" | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
echo "$want" >"$stamp"
echo "python-env: installed the pinned tools of scripts/requirements.txt into .venv" >&2
