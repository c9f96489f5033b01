#!/usr/bin/env bash
# Shared tail of quick_start/eval_snu_film.sh and eval_x4k.sh (sourced, not run): turns the variables those
# scripts set (DATASET, DATA_DIR, TASK, ...) into evaluate.py flags and launches it (LAUNCHER=accelerate or
# torchrun, see launcher.sh) on every GPU of every machine (or the CPU), appending the log to $OUTPUT_DIR/log.txt.

if [ -z "$OUTPUT_DIR" ]; then  # evaluate.py's default: runs/eval_<dataset>[-<task>]-<sf>x-<backend>
    backend=$BACKEND
    if [ "$backend" = auto ]; then backend=$([ -n "$MODEL_PATH" ] && echo ldf || echo flow); fi
    default_task=$([ "$DATASET" = x4k ] && echo 1k || echo entire)
    task_part=$([ "$TASK" = "$default_task" ] || echo "-$TASK")
    OUTPUT_DIR="runs/eval_${DATASET}${task_part}-${TEMPORAL_SF}x-${backend}"
fi

args=(--dataset "$DATASET" --data_dir "$DATA_DIR" --task "$TASK" --temporal_sf "$TEMPORAL_SF"
      --output_dir "$OUTPUT_DIR" --backend "$BACKEND" --metrics "$METRICS" --weights_dir "$WEIGHTS_DIR"
      --averaging "$AVERAGING" --fvd_mode "$FVD_MODE"
      --sampling_steps "$SAMPLING_STEPS" --t_shift "$T_SHIFT" --sp_size "$SP_SIZE")
[ -n "$RESOLUTION" ] && args+=(--resolution "$RESOLUTION")
[ -n "$MODEL_PATH" ] && args+=(--model_path "$MODEL_PATH" --vae_path "$VAE_PATH")

source "$(dirname "${BASH_SOURCE[0]}")/launcher.sh"

mkdir -p "$OUTPUT_DIR"
# shellcheck disable=SC2086
"${launcher[@]}" evaluate.py "${args[@]}" $EXTRA_ARGS 2>&1 | tee -a "$OUTPUT_DIR/log.txt"
