#!/usr/bin/env bash
# Evaluate on X4K1000FPS (X-TEST) with the LDF-VFI protocol: every Type1-3 clip brought to the --task resolution,
# inputs GT[::16], the frames between inputs scored (PSNR, SSIM, LPIPS, FloLPIPS), FVD over 16-frame sequences of
# every GT frame. One command does what the reference's three did (generate, calculate_metrics, calculate_fvd) and,
# by default, reports the numbers as those report them (AVERAGING=paper, FVD_MODE=paper); rerun it to resume.
# Edit the variables below, or set them in the environment:
#   DATA_DIR=/data/X4K1000FPS NUM_PROCESSES=8 bash quick_start/eval_x4k.sh
# Without MODEL_PATH the no-weights optical-flow backend is evaluated.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR=${DATA_DIR:-data/X4K1000FPS}            # holds test/Type1/<clip>/*.png, Type2, Type3 (decoded with mp4_decoding.py)
TASK=${TASK:-4k}                                 # 4k (native, as the paper), 2k (1080x2048) or 1k (540x1024), area-downscaled
TEMPORAL_SF=${TEMPORAL_SF:-16}                   # inputs are GT[::TEMPORAL_SF]; 8 is the other published setting
RESOLUTION=${RESOLUTION:-}                       # optional top-left crop HEIGHTxWIDTH after the resize
BACKEND=${BACKEND:-auto}                         # auto (ldf with MODEL_PATH, else flow), flow, ldf, repeat, blend
MODEL_PATH=${MODEL_PATH:-}                       # folder with transformer/ (released LDF-VFI weights)
VAE_PATH=${VAE_PATH:-}                           # Wan2.1_VAE_cond_v2.pth (with MODEL_PATH)
OUTPUT_DIR=${OUTPUT_DIR:-}                       # default runs/eval_x4k-<TASK>-<TEMPORAL_SF>x-<backend>
SAMPLING_STEPS=${SAMPLING_STEPS:-16}
T_SHIFT=${T_SHIFT:-8}
SP_SIZE=${SP_SIZE:-1}                            # sequence parallel group size: 1, 2 or 4 (ldf backend; 4K needs 2-4 on 80 GB GPUs)
WEIGHTS_DIR=${WEIGHTS_DIR:-weights}              # lpips_alexnet.safetensors, i3d_pretrained_400.pt, network-default.pytorch
METRICS=${METRICS:-psnr,ssim,lpips,flolpips,fvd} # metrics whose weights are missing are skipped with a note
AVERAGING=${AVERAGING:-paper}                    # paper: per-video means as the reference's calculate_metrics.py on 8 processes; frame: plain mean
FVD_MODE=${FVD_MODE:-paper}                      # paper: every GT frame, as calculate_fvd.py; interpolated: frames 0..(N-1)*sf
LAUNCHER=${LAUNCHER:-accelerate}                 # accelerate or torchrun (see launcher.sh)
NUM_PROCESSES=${NUM_PROCESSES:-1}                # processes (GPUs) per machine; clips are spread over all of them
NUM_MACHINES=${NUM_MACHINES:-1}
MACHINE_RANK=${MACHINE_RANK:-0}
MAIN_PROCESS_IP=${MAIN_PROCESS_IP:-127.0.0.1}
MAIN_PROCESS_PORT=${MAIN_PROCESS_PORT:-29500}
EXTRA_ARGS=${EXTRA_ARGS:-}                       # anything else, e.g. "--save_pred --save_lq --max_videos 2"

DATASET=x4k
# shellcheck source=quick_start/eval_common.sh
source quick_start/eval_common.sh
