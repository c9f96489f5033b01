#!/usr/bin/env bash
# Train the conditional VAE decoder of LDF-VFI (REFERENCE_SPEC 8). The reference ships no launch script for it, so
# the values below are its train_vae.py defaults: Wan2.1 VAE with a fresh condition encoder, encoder trained too,
# L1 + LPIPS + KL, PatchGAN hinge loss from step 50001 (the discriminator steps every iteration), Adam
# betas (0.95, 0.999), lr 1e-4 (discriminator 1e-4), no ramp, global batch 2048 at 512x512, temporal factor 4,
# DDP in bf16. Clips are 5 frames (one group, as the sampler decodes; the reference's 60 cannot run).
# Edit the variables below, or set them in the environment:
#   VAE_PATH=/ckpt/Wan2.1_VAE.pth LPIPS_WEIGHTS=weights/lpips_alexnet.safetensors bash quick_start/train_vae.sh
# LPIPS needs the ImageNet AlexNet trunk by path (nothing is downloaded): tools/convert_lpips_weights.py makes
# weights/lpips_alexnet.safetensors offline. EMAs (EMA_DECAY, e.g. 0.999) land in checkpoint-N/ema-<decay>.pth,
# usable as the sampler's --vae_path. Rerunning the same command resumes from the newest complete checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."

VAE_PATH=${VAE_PATH-/path/to/Wan2.1_VAE.pth}      # or a conditional v2 checkpoint to continue
LPIPS_WEIGHTS=${LPIPS_WEIGHTS:-weights/lpips_alexnet.safetensors}
DATA=${DATA:-data/lavib-hf}                       # the --dst of data_tools.py
OUTPUT_DIR=${OUTPUT_DIR:-runs/train_vae}

BATCH_SIZE=${BATCH_SIZE:-2048}                    # global batch; accumulation fills what the GPUs do not hold
BATCH_GPU=${BATCH_GPU:-16}
REF_LR=${REF_LR:-1e-4}
DISC_LR=${DISC_LR:-1e-4}
DISC_START=${DISC_START:-50001}                   # first step with the adversarial loss
RAMPUP_MSAMPLE=${RAMPUP_MSAMPLE:-0}
NUM_EPOCHS=${NUM_EPOCHS:-100}
EMA_DECAY=${EMA_DECAY:-}                          # e.g. 0.999,0.9995 (the reference keeps none by default)
NUM_FRAMES=${NUM_FRAMES:-5}                       # 1 + 4k frames
TEMPORAL_SF=${TEMPORAL_SF:-4}
PN=${PN:-0.25M}                                   # crop: 0.25M = 512x512
CHECKPOINTING_STEPS=${CHECKPOINTING_STEPS:-500}

NUM_PROCESSES=${NUM_PROCESSES:-$(python -c "import torch; print(max(1, torch.cuda.device_count()))")}  # per machine (default: its GPUs)
NUM_MACHINES=${NUM_MACHINES:-1}
MACHINE_RANK=${MACHINE_RANK:-0}
MAIN_PROCESS_IP=${MAIN_PROCESS_IP:-127.0.0.1}
MAIN_PROCESS_PORT=${MAIN_PROCESS_PORT:-29500}
LAUNCHER=${LAUNCHER:-accelerate}                  # accelerate or torchrun
ACCELERATE_CONFIG=${ACCELERATE_CONFIG:-configs/accelerate/ddp.yaml}  # DDP only: two models, two optimizers
MIXED_PRECISION=${MIXED_PRECISION:-}              # empty: the config's (bf16)
EXTRA_ARGS=${EXTRA_ARGS:-}                        # anything else, e.g. "--freeze_encoder --max_train_steps 100"

args=(--data "$DATA" --output_dir "$OUTPUT_DIR"
      --vae_type wan2_1_cond_v2 --lpips_weights "$LPIPS_WEIGHTS"
      --perceptual_weight 1.0 --kl_weight 1e-6 --disc_weight 0.5 --disc_start "$DISC_START" --disc_lr "$DISC_LR"
      --num_frames "$NUM_FRAMES" --pn "$PN" --temporal_sf "$TEMPORAL_SF" --temporal_upsample nearest
      --batch_size "$BATCH_SIZE" --batch_gpu "$BATCH_GPU" --ref_lr "$REF_LR" --rampup_Msample "$RAMPUP_MSAMPLE"
      --num_epochs "$NUM_EPOCHS" --ema_decay "$EMA_DECAY"
      --checkpointing_steps "$CHECKPOINTING_STEPS" --resume_from_checkpoint latest)
[ -n "$VAE_PATH" ] && args+=(--vae_path "$VAE_PATH")

SCRIPT=train_vae.py
# shellcheck source=quick_start/train_common.sh
source quick_start/train_common.sh
