#!/usr/bin/env bash
# Interpolate a video (or a folder of videos / frames) with LDF-VFI.
# Edit the variables below, or set them in the environment: DATA=my.mp4 bash quick_start/generate.sh
# Without MODEL_PATH the no-weights optical-flow backend runs (CPU is fine).
set -euo pipefail
cd "$(dirname "$0")/.."

DATA=${DATA:-assets/demo.mp4}                    # a video, a folder of frames, or a folder of videos
TEMPORAL_SF=${TEMPORAL_SF:-8}                    # frame-rate multiplier, 1..16
TARGET_FPS=${TARGET_FPS:-}                       # or an output rate, e.g. 60 or 60000/1001 (replaces TEMPORAL_SF)
OUTPUT_DIR=${OUTPUT_DIR:-runs/generate}          # results: $OUTPUT_DIR/<name>/pred.mp4
MODEL_PATH=${MODEL_PATH:-}                       # folder with transformer/ (released LDF-VFI weights); empty = flow backend
VAE_PATH=${VAE_PATH:-}                           # Wan2.1_VAE_cond_v2.pth (with MODEL_PATH)
SAMPLING_STEPS=${SAMPLING_STEPS:-16}
T_SHIFT=${T_SHIFT:-8}
SP_SIZE=${SP_SIZE:-1}                            # sequence parallel group size: 1, 2 or 4
NUM_PROCESSES=${NUM_PROCESSES:-1}                # processes (GPUs) per machine; videos are spread over them
LAUNCHER=${LAUNCHER:-accelerate}                 # accelerate or torchrun (multi-node: NUM_MACHINES, MACHINE_RANK,
                                                 # MAIN_PROCESS_IP, MAIN_PROCESS_PORT, see launcher.sh)
EXTRA_ARGS=${EXTRA_ARGS:-}                       # anything else, e.g. "--save_lq --no_audio"

rate_args=(--temporal_sf "$TEMPORAL_SF")
if [ -n "$TARGET_FPS" ]; then
  rate_args=(--target_fps "$TARGET_FPS")
fi
model_args=()
if [ -n "$MODEL_PATH" ]; then
  model_args=(--model_path "$MODEL_PATH" --vae_path "$VAE_PATH")
fi
source quick_start/launcher.sh

# shellcheck disable=SC2086
"${launcher[@]}" generate.py \
  --data "$DATA" \
  "${rate_args[@]}" \
  --output_dir "$OUTPUT_DIR" \
  --sampling_steps "$SAMPLING_STEPS" \
  --t_shift "$T_SHIFT" \
  --sp_size "$SP_SIZE" \
  --tile_min_h 256 --tile_min_w 256 --tile_stride_h 192 --tile_stride_w 192 --tile_min_t 20 \
  "${model_args[@]}" $EXTRA_ARGS
