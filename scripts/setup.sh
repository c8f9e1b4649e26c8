#!/usr/bin/env bash
# Create (or refresh) the project virtualenv in .venv: all packages editable, pinned torch, test deps.
# Idempotent: skips pip when nothing that affects the install changed since the last run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
venv="$root/.venv"
stamp="$venv/.vq-install-stamp"
want=$(cat constraints.txt requirements-test.txt packages/*/pyproject.toml apps/*/pyproject.toml | sha256sum | cut -d' ' -f1)

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi
echo "setup: installing into $venv (first run takes a few minutes)" >&2
"$venv/bin/python" -m pip install --quiet --upgrade pip setuptools wheel
"$venv/bin/python" -m pip install --quiet --constraint constraints.txt \
  torch==2.14.1 torchvision==0.29.1
"$venv/bin/python" -m pip install --quiet --constraint constraints.txt \
  -e packages/vq-core -e packages/vq-data -e packages/vq-tokenizers -e packages/vq-ar -e packages/vq-eval \
  -e apps/vq-pipeline -r requirements-test.txt
echo "$want" > "$stamp"
