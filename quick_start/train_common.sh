#!/usr/bin/env bash
# Shared tail of quick_start/train_dit.sh and train_vae.sh (sourced, not run): launches $SCRIPT with "${args[@]}"
# on NUM_PROCESSES processes per machine x NUM_MACHINES machines, appending the log to $OUTPUT_DIR/log.txt.
#   LAUNCHER=accelerate  accelerate launch --config_file $ACCELERATE_CONFIG (DDP or DeepSpeed ZeRO-1/2/3)
#   LAUNCHER=torchrun    torchrun; the same config reaches accelerate through its environment variables
# Run the script on every machine with its own MACHINE_RANK (0 .. NUM_MACHINES-1) and the same MAIN_PROCESS_IP.

world=$((NUM_PROCESSES * NUM_MACHINES))
config_value() {  # config_value KEY: a top-level value (or deepspeed_config_file) of $ACCELERATE_CONFIG
  python - "$ACCELERATE_CONFIG" "$1" <<'PY'
import sys, yaml
config = yaml.safe_load(open(sys.argv[1])) or {}
value = (config.get("deepspeed_config") or {}).get(sys.argv[2], config.get(sys.argv[2], ""))
print("" if value is None else value)
PY
}

case "$LAUNCHER" in
  accelerate)
    launcher=(accelerate launch --config_file "$ACCELERATE_CONFIG" --num_machines "$NUM_MACHINES"
              --num_processes "$world" --machine_rank "$MACHINE_RANK"
              --main_process_ip "$MAIN_PROCESS_IP" --main_process_port "$MAIN_PROCESS_PORT")
    [ -n "$MIXED_PRECISION" ] && launcher+=(--mixed_precision "$MIXED_PRECISION")
    ;;
  torchrun)
    deepspeed_config=$(config_value deepspeed_config_file)
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

mkdir -p "$OUTPUT_DIR"
echo "output_dir: $OUTPUT_DIR"
# shellcheck disable=SC2086
"${launcher[@]}" "$SCRIPT" "${args[@]}" $EXTRA_ARGS 2>&1 | tee -a "$OUTPUT_DIR/log.txt"
