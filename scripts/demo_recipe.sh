#!/usr/bin/env bash
# The bundled demo model, end to end, on a CPU. Every step is resumable: run it again after an
# interruption and it continues where it stopped. Outputs go to runs/demo/ (not committed).
#   bash scripts/demo_recipe.sh            (or: make demo-model)
set -euo pipefail
cd "$(dirname "$0")/.."
LV="${LV:-.venv/bin/lumina-video}"
DATA=runs/demo/data

# 1. the synthetic dataset: 128 px clips of 20 frames at 8 fps, still images, ground truth per record
if [ ! -f "$DATA/manifest.jsonl" ]; then
  "$LV" synth "$DATA" --n 3000 --size 128 --frames 20 --fps 8 --seed 0
fi

# 2. the VAE (configs/demo_vae.yaml)
"$LV" train-vae configs/demo_vae.yaml --no-progress

# 3. motion scores with the same tool as real data (not from the ground truth)
"$LV" motion "$DATA/manifest.jsonl"
