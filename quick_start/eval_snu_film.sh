#!/usr/bin/env bash
# Evaluate on SNU-FILM-entire with the LDF-VFI protocol: inputs GT[::8] of every whole sequence, the frames
# between inputs scored (PSNR, SSIM, LPIPS, FloLPIPS), FVD over 16-frame sequences of every GT frame. One command
# does what the reference's three did (generate, calculate_metrics, calculate_fvd) and, by default, reports the
# numbers as those report them (AVERAGING=paper, FVD_MODE=paper); rerun it to resume.
# Edit the variables below, or set them in the environment:
#   DATA_DIR=/data/SNU-FILM NUM_PROCESSES=8 bash quick_start/eval_snu_film.sh
# Without MODEL_PATH the no-weights optical-flow backend is evaluated.
set -euo pipefail
cd "$(dirname "$0")/.."

DATA_DIR=${DATA_DIR:-data/SNU-FILM}              # holds test/GOPRO_test/<clip>/*.png and test/YouTube_test/<clip>/*.png
TASK=${TASK:-entire}                             # entire, or a triplet level test-easy|test-medium|test-hard|test-extreme (with TEMPORAL_SF=2)
TEMPORAL_SF=${TEMPORAL_SF:-8}                    # inputs are GT[::TEMPORAL_SF]
RESOLUTION=${RESOLUTION:-}                       # optional top-left crop HEIGHTxWIDTH, e.g. 720x1280
BACKEND=${BACKEND:-auto}                         # auto (ldf with MODEL_PATH, else flow), flow, ldf, repeat, blend
MODEL_PATH=${MODEL_PATH:-}                       # folder with transformer/ (released LDF-VFI weights)
VAE_PATH=${VAE_PATH:-}                           # Wan2.1_VAE_cond_v2.pth (with MODEL_PATH)
OUTPUT_DIR=${OUTPUT_DIR:-}                       # default runs/eval_snu_film-<TEMPORAL_SF>x-<backend>
SAMPLING_STEPS=${SAMPLING_STEPS:-16}
T_SHIFT=${T_SHIFT:-8}
SP_SIZE=${SP_SIZE:-1}                            # sequence parallel group size: 1, 2 or 4 (ldf backend)
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

DATASET=snu_film
# shellcheck source=quick_start/eval_common.sh
source quick_start/eval_common.sh
