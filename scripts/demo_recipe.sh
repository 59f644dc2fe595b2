#!/usr/bin/env bash
# The bundled demo model, end to end, on a CPU. Every step is resumable: run it again after an
# interruption and it continues where it stopped. Outputs go to runs/demo/ (not committed).
#   bash scripts/demo_recipe.sh            (or: make demo-model)
set -euo pipefail
cd "$(dirname "$0")/.."
LV="${LV:-.venv/bin/lumina-video}"
DATA=runs/demo/data
# (colour, shape) pairs the DiT never sees: the held-out evaluation asks for them (written once, in
# lumina_video/demo/experiments.py)
HOLDOUT="$("$LV" demo holdout)"

# 1. the synthetic dataset: 128 px clips of 20 frames at 8 fps and still images, ground truth per
#    record; items with a held-out pair are listed in heldout.jsonl instead of manifest.jsonl
if [ ! -f "$DATA/heldout.jsonl" ]; then
  "$LV" synth "$DATA" --n 3000 --size 128 --frames 20 --fps 8 --seed 0 --holdout "$HOLDOUT"
fi

# 2. the VAE (configs/demo_vae.yaml); a finished run only re-exports
"$LV" train-vae configs/demo_vae.yaml --no-progress

# 2b. the VAE's decoder fine-tuned on whole frames, encoder frozen (configs/demo_vae_decoder.yaml): the
#     latents below are the same with either VAE; the pipeline ships this one, whose colours are truer
"$LV" train-vae configs/demo_vae_decoder.yaml --no-progress

# 3. motion scores with the same tool as real data (not from the ground truth); resumable
"$LV" motion "$DATA/manifest.jsonl"

# 4. latents once per stage size: 17 frames (5 latent frames; training drops the first) and images
for size in 64 128; do
  "$LV" extract-latents "$DATA/manifest.jsonl" --vae runs/demo/vae/final --fps 8 --size "$size" \
      --max-frames 17 --out "$DATA/latents$size.jsonl" --no-progress
done

# 5. the Multi-scale Next-DiT: three progressive stages (configs/demo.yaml); resumes from its checkpoints
"$LV" train configs/demo.yaml --no-progress

# 6. ship it: copy RUN/final into the package (lumina_video/demo_model, <= 30 MB) and record the
#    checksum of every file in lumina_video/demo/demo_model.sha256 (`lumina-video demo verify` and
#    tests/test_demo_model.py check them)
"$LV" demo install runs/demo/dit/final
