#!/usr/bin/env bash
# Train the LDF-VFI diffusion transformer with the released recipe (REFERENCE_SPEC 7): Wan2.1-T2V-1.3B widened to
# 36 inputs, LAVIB clips of 60 frames at 512x512, temporal factors 2-16, per-chunk noise levels (temporal
# forcing, shift 5), global batch 256, lr 5e-5 after a 0.5M-sample ramp, AdamW with DeepSpeed's defaults (what
# the reference's ZeRO config made of its flags), clipping 1.0, EMAs 0.995/0.999, ZeRO-1 (DDP without DeepSpeed).
# The reference ran 4 machines x 8 GPUs. Edit the variables below, or set them in the environment:
#   MODEL_PATH=/ckpt/Wan2.1-T2V-1.3B-Diffusers/transformer VAE_PATH=/ckpt/Wan2.1_VAE.pth \
#   NUM_MACHINES=4 MACHINE_RANK=0 MAIN_PROCESS_IP=10.0.0.1 bash quick_start/train_dit.sh
# Rerunning the same command resumes from the newest complete checkpoint in OUTPUT_DIR.
# Index LAVIB first: python data_tools.py --src /path/to/LAVIB --dst data/lavib-hf
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL_PATH=${MODEL_PATH-/path/to/Wan2.1-T2V-1.3B-Diffusers/transformer}  # or an LDF transformer folder; empty: --model_config in EXTRA_ARGS
VAE_PATH=${VAE_PATH-/path/to/Wan2.1_VAE.pth}      # empty: --vae_config in EXTRA_ARGS (a random VAE)
DATA=${DATA:-data/lavib-hf}                      # the --dst of data_tools.py
OUTPUT_DIR=${OUTPUT_DIR:-runs/train_dit}         # checkpoint-N/ (with ema-<decay>/transformer/), log.jsonl, logs/

BATCH_SIZE=${BATCH_SIZE:-256}                    # global batch; accumulation fills what the GPUs do not hold
BATCH_GPU=${BATCH_GPU:-8}                        # clips per GPU per forward (80 GB GPUs, gradient checkpointing)
REF_LR=${REF_LR:-5e-5}
RAMPUP_MSAMPLE=${RAMPUP_MSAMPLE:-0.5}
NUM_EPOCHS=${NUM_EPOCHS:-20}
EMA_DECAY=${EMA_DECAY:-0.995,0.999}
TEMPORAL_SF=${TEMPORAL_SF:-2-16}
PN=${PN:-0.25M}                                  # crop: 0.25M = 512x512
SP_SIZE=${SP_SIZE:-1}                            # sequence-parallel group size
CHECKPOINTING_STEPS=${CHECKPOINTING_STEPS:-100}

NUM_PROCESSES=${NUM_PROCESSES:-$(python -c "import torch; print(max(1, torch.cuda.device_count()))")}  # per machine (default: its GPUs)
NUM_MACHINES=${NUM_MACHINES:-1}
MACHINE_RANK=${MACHINE_RANK:-0}
MAIN_PROCESS_IP=${MAIN_PROCESS_IP:-127.0.0.1}
MAIN_PROCESS_PORT=${MAIN_PROCESS_PORT:-29500}
LAUNCHER=${LAUNCHER:-accelerate}                 # accelerate or torchrun
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-}         # empty: zero1 with DeepSpeed installed, else ddp; or zero2, zero3
MIXED_PRECISION=${MIXED_PRECISION:-}             # empty: the config's (bf16)
EXTRA_ARGS=${EXTRA_ARGS:-}                       # anything else, e.g. "--max_train_steps 1000 --logger wandb"

args=(--data "$DATA" --output_dir "$OUTPUT_DIR"
      --vae_type wan2_1
      --attention_type slide_chunk_all_block_2x1x1 --diffusion_forcing temporal --t_shift 5
      --num_frames 60 --pn "$PN" --no_bicubic --temporal_sf "$TEMPORAL_SF" --temporal_upsample nearest
      --tile_min_h 256 --tile_min_w 256 --tile_stride_h 192 --tile_stride_w 192 --tile_min_t 20 --vae_batch_size 16
      --batch_size "$BATCH_SIZE" --batch_gpu "$BATCH_GPU" --sp_size "$SP_SIZE" --grad_checkpoint
      --ref_lr "$REF_LR" --rampup_Msample "$RAMPUP_MSAMPLE" --num_epochs "$NUM_EPOCHS" --ema_decay "$EMA_DECAY"
      --checkpointing_steps "$CHECKPOINTING_STEPS" --resume_from_checkpoint latest)
[ -n "$MODEL_PATH" ] && args+=(--model_path "$MODEL_PATH")
[ -n "$VAE_PATH" ] && args+=(--vae_path "$VAE_PATH")

SCRIPT=train.py
# shellcheck source=quick_start/train_common.sh
source quick_start/train_common.sh
