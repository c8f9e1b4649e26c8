#!/usr/bin/env bash
# The main job: data -> tokenizer -> token shards -> AR model -> samples -> evaluation report,
# on the images bundled with scikit-image/scikit-learn, on the CPU, in minutes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
exec "$root/.venv/bin/vq-pipeline" run apps/vq-pipeline/configs/demo.yaml --out "${VQ_DEMO_OUT:-runs/demo}" "$@"
