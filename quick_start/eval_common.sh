#!/usr/bin/env bash
# Shared tail of quick_start/eval_snu_film.sh and eval_x4k.sh (sourced, not run): turns the variables those
# scripts set (DATASET, DATA_DIR, TASK, ...) into evaluate.py flags and launches it with accelerate, on every
# GPU of every machine (or on the CPU when there is no GPU), appending the log to $OUTPUT_DIR/log.txt.

args=(--dataset "$DATASET" --data_dir "$DATA_DIR" --task "$TASK" --temporal_sf "$TEMPORAL_SF"
      --output_dir "$OUTPUT_DIR" --backend "$BACKEND" --metrics "$METRICS"
      --sampling_steps "$SAMPLING_STEPS" --t_shift "$T_SHIFT" --sp_size "$SP_SIZE")
[ -n "$RESOLUTION" ] && args+=(--resolution "$RESOLUTION")
[ -n "$MODEL_PATH" ] && args+=(--model_path "$MODEL_PATH" --vae_path "$VAE_PATH")
[ -d "$WEIGHTS_DIR" ] && args+=(--weights_dir "$WEIGHTS_DIR")

launcher=(accelerate launch --num_processes "$((NUM_PROCESSES * NUM_MACHINES))" --num_machines "$NUM_MACHINES"
          --machine_rank "$MACHINE_RANK" --main_process_ip "$MAIN_PROCESS_IP" --main_process_port "$MAIN_PROCESS_PORT"
          --mixed_precision no --dynamo_backend no)
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  launcher+=(--cpu --num_cpu_threads_per_process "$(nproc)")
elif [ "$((NUM_PROCESSES * NUM_MACHINES))" -gt 1 ]; then
  launcher+=(--multi_gpu)
fi

mkdir -p "$OUTPUT_DIR"
# shellcheck disable=SC2086
"${launcher[@]}" evaluate.py "${args[@]}" $EXTRA_ARGS 2>&1 | tee -a "$OUTPUT_DIR/log.txt"
