#!/usr/bin/env bash
# The main job: data -> tokenizer -> token shards -> AR model -> CFG samples -> judged report, on the
# real handwritten digits bundled with scikit-learn, on the CPU, in minutes (configs/digits.yaml).
# The photos demo: VQ_DEMO_CONFIG=apps/vq-pipeline/configs/demo.yaml bash scripts/demo.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
cd "$root"
config="${VQ_DEMO_CONFIG:-apps/vq-pipeline/configs/digits.yaml}"
name="$(basename "$config" .yaml)"
exec "$root/.venv/bin/vq-pipeline" run "$config" --out "${VQ_DEMO_OUT:-runs/$name}" "$@"
