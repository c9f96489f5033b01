#!/usr/bin/env bash
# Sourced by the inference scripts (generate.sh, eval_*.sh): sets the array "launcher" from
#   LAUNCHER=accelerate (default) | torchrun, NUM_PROCESSES per machine, NUM_MACHINES, MACHINE_RANK,
#   MAIN_PROCESS_IP, MAIN_PROCESS_PORT.
# Either way the package reads RANK / WORLD_SIZE / LOCAL_RANK from the environment: one code path.
LAUNCHER=${LAUNCHER:-accelerate}
NUM_PROCESSES=${NUM_PROCESSES:-1}
NUM_MACHINES=${NUM_MACHINES:-1}
MACHINE_RANK=${MACHINE_RANK:-0}
MAIN_PROCESS_IP=${MAIN_PROCESS_IP:-127.0.0.1}
MAIN_PROCESS_PORT=${MAIN_PROCESS_PORT:-29500}

has_gpu() { python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; }

case "$LAUNCHER" in
  accelerate)
    launcher=(accelerate launch --num_processes "$((NUM_PROCESSES * NUM_MACHINES))" --num_machines "$NUM_MACHINES"
              --machine_rank "$MACHINE_RANK" --main_process_ip "$MAIN_PROCESS_IP"
              --main_process_port "$MAIN_PROCESS_PORT" --mixed_precision no --dynamo_backend no)
    if ! has_gpu; then  # each process its share of the cores, not all of them (oversubscribed threads spin)
      threads=$(($(nproc) / NUM_PROCESSES))
      launcher+=(--cpu --num_cpu_threads_per_process "$((threads > 0 ? threads : 1))")
    elif [ "$((NUM_PROCESSES * NUM_MACHINES))" -gt 1 ]; then
      launcher+=(--multi_gpu)
    fi
    ;;
  torchrun)
    launcher=(torchrun --nnodes "$NUM_MACHINES" --nproc_per_node "$NUM_PROCESSES" --node_rank "$MACHINE_RANK"
              --master_addr "$MAIN_PROCESS_IP" --master_port "$MAIN_PROCESS_PORT")
    ;;
  *)
    echo "error: LAUNCHER must be accelerate or torchrun, got '$LAUNCHER'" >&2
    exit 2
    ;;
esac
