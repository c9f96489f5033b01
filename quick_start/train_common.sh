#!/usr/bin/env bash
# Shared tail of quick_start/train_dit.sh and train_vae.sh (sourced, not run): checks the flags once, then launches
# $SCRIPT with "${args[@]}" on NUM_PROCESSES processes per machine x NUM_MACHINES machines, appending the log to
# $OUTPUT_DIR/log.txt.
#   LAUNCHER=accelerate  accelerate launch --config_file $ACCELERATE_CONFIG (DDP or DeepSpeed ZeRO-1/2/3)
#   LAUNCHER=torchrun    torchrun; the same config reaches accelerate through its environment variables
#   ACCELERATE_CONFIG empty: ZeRO-1 (configs/accelerate/zero1.yaml) when DeepSpeed is installed and there is a
#                        GPU, else DDP (configs/accelerate/ddp.yaml) with a one-line notice
# Run the script on every machine with its own MACHINE_RANK (0 .. NUM_MACHINES-1) and the same MAIN_PROCESS_IP.

world=$((NUM_PROCESSES * NUM_MACHINES))
deepspeed_installed() {
  python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('deepspeed') is None)"
}
has_gpu() { python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; }
config_value() {  # config_value KEY: a top-level value (or deepspeed_config_file) of $ACCELERATE_CONFIG
  python - "$ACCELERATE_CONFIG" "$1" <<'PY'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1])) or {}
value = (config.get("deepspeed_config") or {}).get(sys.argv[2], config.get(sys.argv[2], ""))
print("" if value is None else value)
PY
}

if [ -z "$ACCELERATE_CONFIG" ]; then
  if ! deepspeed_installed; then
    echo "notice: DeepSpeed is not installed (pip install deepspeed==0.19.8), so DDP (configs/accelerate/ddp.yaml) runs instead of ZeRO-1: same optimizer and clipping, more GPU memory" >&2
    ACCELERATE_CONFIG=configs/accelerate/ddp.yaml
  elif ! has_gpu; then
    echo "notice: no GPU, so DDP (configs/accelerate/ddp.yaml) runs instead of ZeRO-1" >&2
    ACCELERATE_CONFIG=configs/accelerate/ddp.yaml
  else
    ACCELERATE_CONFIG=configs/accelerate/zero1.yaml
  fi
fi
if [ ! -f "$ACCELERATE_CONFIG" ]; then
  echo "error: ACCELERATE_CONFIG not found: '$ACCELERATE_CONFIG'" >&2
  exit 2
fi
deepspeed_config=$(config_value deepspeed_config_file)
if [ -n "$deepspeed_config" ] && ! deepspeed_installed; then
  echo "error: $ACCELERATE_CONFIG needs DeepSpeed, which is not installed: pip install deepspeed==0.19.8, or ACCELERATE_CONFIG=configs/accelerate/ddp.yaml" >&2
  exit 2
fi
# Each process gets its share of the cores (the trainers then leave one per DataLoader worker and one for the
# rest); a value set by the user stands. Neither launcher does this by itself: torchrun gives 1 thread to each of
# several processes, accelerate 1 unless --cpu.
if [ -z "${OMP_NUM_THREADS:-}" ]; then
  OMP_NUM_THREADS=$(($(nproc) / NUM_PROCESSES))
  export OMP_NUM_THREADS=$((OMP_NUM_THREADS > 0 ? OMP_NUM_THREADS : 1))
fi

case "$LAUNCHER" in
  accelerate)
    launcher=(accelerate launch --config_file "$ACCELERATE_CONFIG" --num_machines "$NUM_MACHINES"
              --num_processes "$world" --machine_rank "$MACHINE_RANK" --num_cpu_threads_per_process "$OMP_NUM_THREADS"
              --main_process_ip "$MAIN_PROCESS_IP" --main_process_port "$MAIN_PROCESS_PORT")
    [ -n "$MIXED_PRECISION" ] && launcher+=(--mixed_precision "$MIXED_PRECISION")
    ;;
  torchrun)
    if [ -n "$deepspeed_config" ]; then
      export ACCELERATE_USE_DEEPSPEED=true ACCELERATE_DEEPSPEED_CONFIG_FILE="$deepspeed_config"
    fi
    export ACCELERATE_MIXED_PRECISION="${MIXED_PRECISION:-$(config_value mixed_precision)}"
    [ -z "$ACCELERATE_MIXED_PRECISION" ] && unset ACCELERATE_MIXED_PRECISION
    launcher=(torchrun --nnodes "$NUM_MACHINES" --nproc_per_node "$NUM_PROCESSES" --node_rank "$MACHINE_RANK"
              --master_addr "$MAIN_PROCESS_IP" --master_port "$MAIN_PROCESS_PORT")
    ;;
  *)
    echo "error: LAUNCHER must be accelerate or torchrun, got '$LAUNCHER'" >&2
    exit 2
    ;;
esac

# The flags are checked once, here: a bad one is one error line, not one per process under the launcher.
# shellcheck disable=SC2086
WORLD_SIZE=$world python "$SCRIPT" "${args[@]}" $EXTRA_ARGS --validate_only

mkdir -p "$OUTPUT_DIR"
echo "output_dir: $OUTPUT_DIR, $ACCELERATE_CONFIG, $world process(es), OMP_NUM_THREADS=$OMP_NUM_THREADS"
# shellcheck disable=SC2086
"${launcher[@]}" "$SCRIPT" "${args[@]}" $EXTRA_ARGS 2>&1 | tee -a "$OUTPUT_DIR/log.txt"
