#!/usr/bin/env bash
# Shared tail of quick_start/eval_snu_film.sh and eval_x4k.sh (sourced, not run): turns the variables those
# scripts set (DATASET, DATA_DIR, TASK, ...) into evaluate.py flags and launches it (LAUNCHER=accelerate or
# torchrun, see launcher.sh) on every GPU of every machine (or the CPU), appending the log to $OUTPUT_DIR/log.txt.

args=(--dataset "$DATASET" --data_dir "$DATA_DIR" --task "$TASK" --temporal_sf "$TEMPORAL_SF"
      --output_dir "$OUTPUT_DIR" --backend "$BACKEND" --metrics "$METRICS"
      --sampling_steps "$SAMPLING_STEPS" --t_shift "$T_SHIFT" --sp_size "$SP_SIZE")
[ -n "$RESOLUTION" ] && args+=(--resolution "$RESOLUTION")
[ -n "$MODEL_PATH" ] && args+=(--model_path "$MODEL_PATH" --vae_path "$VAE_PATH")
[ -d "$WEIGHTS_DIR" ] && args+=(--weights_dir "$WEIGHTS_DIR")

source "$(dirname "${BASH_SOURCE[0]}")/launcher.sh"

mkdir -p "$OUTPUT_DIR"
# shellcheck disable=SC2086
"${launcher[@]}" evaluate.py "${args[@]}" $EXTRA_ARGS 2>&1 | tee -a "$OUTPUT_DIR/log.txt"
