#!/usr/bin/env bash
# The V2A demo model (video -> soundtrack), end to end, on a CPU. Every step is resumable: run it again after an
# interruption and it continues where it stopped. Outputs go to runs/v2a_demo/ (not committed).
#   bash scripts/v2a_demo_recipe.sh            (or: make v2a-demo-model)
# Knobs (environment): AUDIO_VAE=DIR uses that audio VAE instead of training step 2's; V2A_RUN=DIR and
# V2A_STEPS=N train the V2A model into another run folder / for another number of steps (a pilot);
# EVAL_N=N scores only the first N held-out clips (default: all of them); JOBS=N soundtrack calls at a time (2).
# Each step's wall time is added to runs/v2a_demo/compute.tsv (step, seconds, when it ended; a resumed step adds
# another line), and the end prints the training and evaluation totals.
set -euo pipefail
cd "$(dirname "$0")/.."
LV="${LV:-.venv/bin/lumina-video}"
PY="${PY:-.venv/bin/python}"
ROOT=runs/v2a_demo
DATA=$ROOT/data
V2A_RUN="${V2A_RUN:-$ROOT/v2a_onepass}"
V2A_ARGS=(run_dir="$V2A_RUN")
[ -n "${V2A_STEPS:-}" ] && V2A_ARGS+=(steps="$V2A_STEPS")
mkdir -p "$ROOT"
COMPUTE=$ROOT/compute.tsv
timed() {  # STEP_NAME command...: run it and add its wall time to $COMPUTE
  local name=$1 start=$SECONDS
  shift
  "$@"
  printf '%s\t%d\t%s\n' "$name" $((SECONDS - start)) "$(date -u +%FT%TZ)" >> "$COMPUTE"
}
# (colour, shape) pairs the V2A model never hears: the video demo's held-out pairs (lumina_video/demo/experiments.py)
HOLDOUT="$("$LV" demo holdout)"

# 1. the synthetic audio-visual dataset: 128 px clips of 2-4 s at 16 fps with their exact sound and impact times,
#    15% still (silent) clips, 25% with two objects; clips with a held-out pair (about 1 in 4: 4 of the 18
#    pairs) go to heldout.jsonl (the evaluation set, >= 200 clips) instead of manifest.jsonl
if [ ! -f "$DATA/manifest.jsonl" ]; then
  timed data "$LV" synth-av "$DATA" --n 1200 --size 128 --seed 0 --holdout "$HOLDOUT" --no-progress
fi

# 1b. the training clips: the same generator and seed, 3000 clips, so the first 1200 are step 1's (hard-linked, not
#    rendered again; 2195 for training) and the held-out pairs stay in data_big/heldout.jsonl, unused
if [ ! -f "$ROOT/data_big/manifest.jsonl" ]; then
  mkdir -p "$ROOT/data_big"
  [ -d "$ROOT/data_big/clips" ] || cp -al "$DATA/clips" "$ROOT/data_big/clips"
  timed data_big "$LV" synth-av "$ROOT/data_big" --n 3000 --size 128 --seed 0 --holdout "$HOLDOUT" --no-progress
fi

# 2. the audio VAE (configs/audio_vae_demo.yaml) on the training clips; a finished run only re-exports
if [ -z "${AUDIO_VAE:-}" ]; then
  timed audio_vae "$LV" train-audio-vae configs/audio_vae_demo.yaml --no-progress
  AUDIO_VAE=$ROOT/audio_vae/final
fi

# 3. the V2A-S denoiser and the sync encoder trained together in one run from scratch (configs/v2a_demo_onepass.yaml,
#    8000 steps of batch 8, bf16): the model's own sync envelope head predicting the sound's onset strength,
#    loudness and log-mel bands (its prediction conditions the audio tokens of its frequency row), the harmonic head
#    and the sync encoder's colour-blind timbre branch, timbre swaps, and sync frames mirrored and flickered
if [ -n "${V2A_STEPS:-}" ] || [ ! -f "$V2A_RUN/final/v2a_components.json" ]; then
  timed v2a "$LV" train-v2a configs/v2a_demo_onepass.yaml encoders.audio_vae="$AUDIO_VAE" "${V2A_ARGS[@]}" --no-progress
fi

# 4. the pipeline folder: the trained parts, the frozen encoders the features were made with, Griffin-Lim
PIPE=$V2A_RUN/pipeline
if [ ! -f "$PIPE/model_index.json" ] || [ "$V2A_RUN/final/v2a_components.json" -nt "$PIPE/model_index.json" ]; then
  timed export "$PY" -m lumina_video.training.v2a_export configs/v2a_demo_onepass.yaml "$PIPE" encoders.audio_vae="$AUDIO_VAE" \
      "${V2A_ARGS[@]}"
fi

# 5. ship it: the pipeline into the package (lumina_video/demo_v2a_model, transformer and sync encoder in fp16,
#    <= 20 MB) with the checksum of every file in lumina_video/demo/demo_v2a_model.sha256 (`lumina-video demo verify`
#    and tests/test_demo_v2a_model.py check them); the scores below are the bundled model's
"$LV" demo install --v2a "$PIPE"

# 6. soundtracks for the held-out clips by the bundled model, twice: from the video alone (heldout_audio/), and
#    with each clip's caption as the text condition (heldout_audio_text/, --captions); 20 videos per call on one
#    thread, JOBS calls at a time (default 2: one per core; 2-3 s a clip; one call on two threads was ~10x slower on
#    a shared machine); a rerun does only the clips without a NAME.json (written last); each NAME.json records its
#    seed and text, and the share of the clip the voicing gate silenced (the pipeline's defaults: the video encoded
#    over whole seconds, `pad_seconds` 1, and the gate at 0.5, `voicing_gate`)
soundtracks() {  # OUT_DIR [v2a options]
  local gen=$1 s pid line
  shift
  mkdir -p "$gen"
  mapfile -t todo < <("$PY" - "$DATA/heldout.jsonl" "$gen" "${EVAL_N:-0}" <<'EOF'
import json, sys
from pathlib import Path
manifest, gen, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
records = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
for r in records[:n or None]:
    if not (gen / (Path(r["path"]).stem + ".json")).is_file():
        print(int(Path(r["path"]).stem), manifest.parent / r["path"])
EOF
  )
  pids=()
  for ((s = 0; s < ${#todo[@]}; s += 20)); do
    videos=()
    for line in "${todo[@]:s:20}"; do videos+=("${line#* }"); done
    OMP_NUM_THREADS=1 "$LV" v2a "${videos[@]}" --out "$gen" --seed $((1000 + ${todo[s]%% *})) --overwrite \
        --no-progress "$@" &
    pids+=($!)
    if ((${#pids[@]} >= ${JOBS:-2})); then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi  # a failed call stops here
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
}

# 7. the scores (onsets, sync, pitch, timbre, silence, loudness) next to the ground-truth ceiling, the audio VAE ->
#    Griffin-Lim ceiling and the shuffled control, of each set (eval/ and eval_text/)
scores() {  # SOUNDTRACK_DIR REPORT_DIR
  "$LV" eval-audio "$1"/*.wav --manifest "$DATA/heldout.jsonl" --out "$2" --reconstruct griffin-lim \
      --audio-vae "$AUDIO_VAE" --no-progress
}

# 8. the same checks on videos the bundled text-to-video model makes from 40 prompts of its vocabulary: the pitch of
#    the colour the prompt names, silence when it says "staying still"; with the prompt as the V2A model's text too
#    (what `generate --audio` does) and from the frames alone
prompts() {  # REPORT_DIR [eval-audio-prompts options]
  OMP_NUM_THREADS=1 "$LV" eval-audio-prompts --out "$1" --device cpu --no-progress "${@:2}"
}

# the order: what the results table needs first (from the video alone, and the prompts with their text, which is
# what `generate --audio` does), then the same with captions and from the frames alone
# (a finished evaluation, one with its report.md, is not run again)
if [ ! -f "$V2A_RUN/eval/report.md" ]; then
  timed eval_soundtracks soundtracks "$V2A_RUN/heldout_audio"
  timed eval_scores scores "$V2A_RUN/heldout_audio" "$V2A_RUN/eval"
fi
[ -f "$V2A_RUN/prompts_text/report.md" ] || timed eval_prompts_text prompts "$V2A_RUN/prompts_text" --v2a-prompt
if [ ! -f "$V2A_RUN/eval_text/report.md" ]; then
  timed eval_soundtracks_text soundtracks "$V2A_RUN/heldout_audio_text" --captions "$DATA/heldout.jsonl"
  timed eval_scores_text scores "$V2A_RUN/heldout_audio_text" "$V2A_RUN/eval_text"
fi
[ -f "$V2A_RUN/prompts/report.md" ] || timed eval_prompts prompts "$V2A_RUN/prompts"

# the compute: every line of compute.tsv, training (steps 1-4) and evaluation (6-8) apart
awk -F '\t' '{ s[$1 ~ /^eval/ ? "evaluation" : "training"] += $2 }
  END { for (k in s) printf "%s: %d min (%.2f h)\n", k, s[k] / 60, s[k] / 3600 }' "$COMPUTE"
