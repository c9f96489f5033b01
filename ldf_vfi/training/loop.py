"""What both trainers share: the accelerate setup, the data stream, seeding, logging, checkpoints and resume.

:class:`TrainingRun` owns everything around the optimisation step; :mod:`~ldf_vfi.training.dit` and
:mod:`~ldf_vfi.training.vae` own their models and steps. Design points that make runs reproducible and
resumable to the bit (tested: N steps straight equal N/2 steps, kill, resume, N/2 steps):

* ``accelerate.utils.set_seed(--seed)`` before any model is built (the reference never seeded: bug 18);
* clips come from the position-keyed stream of :class:`~ldf_vfi.data.clips.ClipOrder`, restarted at the
  checkpoint's ``data_position``;
* every random draw of a step (noise, noise levels, the VAE's reparameterisation) comes from a generator keyed
  by ``(seed, sample position, purpose)`` (:meth:`TrainingRun.sample_generators`), not from a global RNG whose
  state depends on what ran before; so a sample also gets the same noise whatever the number of processes,
  ``--batch_gpu`` or accumulation steps, and the ranks of an SP group draw identical noise;
* a checkpoint holds ``accelerator.save_state`` (weights, optimizer moments, RNG states), ``state.json`` and
  the fp32 EMA copies, and is renamed into place only when complete.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..config import save_effective_config
from ..data.clips import ClipDataset, ClipOptions, ClipOrder, clip_loader
from ..data.lavib import read_index
from ..data.registry import DatasetConfig, is_dataset_config, load_dataset_config, train_records
from ..distributed import process_info
from ..distributed.sequence_parallel import init_sequence_parallel
from ..errors import InputError
from ..io import VIDEO_EXTENSIONS
from .args import gradient_accumulation_steps, temporal_sf_list
from .checkpoint import STATE_FILE, RunState, checkpoint_path, prune_checkpoints, resolve_resume
from .schedule import learning_rate

__all__ = ["TrainingRun", "gather_lq", "keyed_generator", "to_unit"]

logger = logging.getLogger("ldf_vfi.training")

LOG_FILE = "log.jsonl"


def load_training_records(data: str):
    """The clips to train on: a dataset entry (``configs/datasets/*.yaml``, its ``train`` split), an index
    written by ``data_tools.py`` (its folder or its ``index.jsonl``) or one video file (e.g. the demo clip)."""
    if is_dataset_config(data):
        return train_records(load_dataset_config(data), "train")
    if Path(data).is_file() and Path(data).suffix.lower() in VIDEO_EXTENSIONS:
        return train_records(DatasetConfig(type="video_folder", root=str(data), source=str(data)), "train")
    return read_index(data)


def to_unit(frames: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """uint8 pixels -> [-1, 1] computed in ``dtype`` (``x / 127.5 - 1``, bf16 arithmetic under bf16, as the
    reference's trainers and sampler do)."""
    return frames.to(dtype).div(127.5).sub(1)


def gather_lq(gt: torch.Tensor, lq_source: torch.Tensor) -> torch.Tensor:
    """The nearest-upsampled low-frame-rate clip: ``lq[b, :, k] = gt[b, :, lq_source[b, k]]``.

    ``gt`` is ``(B, C, T, H, W)`` (any dtype), ``lq_source`` ``(B, T)`` slot indices from the data pipeline.
    """
    index = lq_source[:, None, :, None, None].expand(-1, gt.shape[1], -1, *gt.shape[-2:])
    return torch.gather(gt, 2, index)


def keyed_generator(*key: int, device: torch.device | str | None = None) -> torch.Generator:
    """A torch generator seeded by a tuple of integers (hashed with numpy's SeedSequence): the same draws for the
    same key in a straight or a resumed run and on every rank, whatever was drawn before."""
    seed = np.random.SeedSequence([int(k) % (1 << 64) for k in key]).generate_state(1, np.uint64)[0]
    generator = torch.Generator(device=device or "cpu")
    generator.manual_seed(int(seed))
    return generator


def _has_accelerator_device() -> bool:
    xpu = getattr(torch, "xpu", None)
    return torch.cuda.is_available() or bool(xpu is not None and xpu.is_available())


def _deepspeed_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() in ("1", "true", "yes")


def available_cores() -> int:
    """CPU cores this process may run on: its affinity mask, capped by a cgroup v2 CPU quota (containers)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cores


def training_threads(local_processes: int, data_workers: int, cores: int | None = None) -> int:
    """Intra-op threads for one training process: its share of the machine's cores, less one per DataLoader
    worker (they decode while the step runs) and one for everything else (the launcher, the loader's and the
    decoders' own threads, the system), at least 1.

    OpenMP threads that outnumber the free cores spin in every parallel region's barrier. On the 2-core
    development machine a tiny DiT step (benchmark in the report of issue 13) took 29.5 s with torch's default
    of 2 threads and 2 data workers, 19.2 s with 2 threads and none, 1.2 s with 1 thread either way.
    """
    share = (cores or available_cores()) // max(1, local_processes)
    return max(1, share - data_workers - 1)


def limit_threads(data_workers: int) -> int:
    """Lower torch's intra-op threads to :func:`training_threads` (never raise them: a smaller
    ``OMP_NUM_THREADS`` set by the user or the launcher stands). Returns the number in use."""
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)
    threads = min(torch.get_num_threads(), training_threads(local_processes, data_workers))
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    return threads


def _tracker_config(args: argparse.Namespace) -> dict:
    """Flags as tensorboard hparams accept them (scalars and strings only)."""
    return {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in vars(args).items()}


class TrainingRun:
    """One training process: accelerate, the parallel layout, the run state and its bookkeeping.

    Typical use by a trainer::

        run = TrainingRun(args, name="train_dit")
        ...build models on run.device...
        model, optimizer = run.accelerator.prepare(model, optimizer)
        run.resume(load_extra)          # accelerator.load_state + the trainer's own files
        run.batches(dataset)
        while not run.done:
            ...one optimizer step using run.next_batch(), run.sample_generators(batch, purpose)...
            run.end_step(metrics, save_extra)
        run.finish()
    """

    def __init__(self, args: argparse.Namespace, name: str) -> None:
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration, set_seed

        self.args = args
        self.name = name
        threads = limit_threads(args.dataloader_num_workers)
        # DDP compares each gradient's strides with its bucket view's, size-1 dimensions included. Weights with
        # size-1 kernel dimensions (the VAE's 1x1x1 conv1/conv2 and zero convolutions, the DiT's 1x2x2 patch
        # embedding) can get gradients that differ from the parameter only in the strides of those dimensions
        # (cuDNN's channels-last kernels): the same memory order, copied into the bucket all the same.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        info = process_info()
        self.gas = gradient_accumulation_steps(
            args.batch_size, args.batch_gpu, info.world_size // args.sp_size
        )
        self.output_dir = Path(args.output_dir)
        project = ProjectConfiguration(
            project_dir=str(self.output_dir), logging_dir=str(self.output_dir / args.logging_dir)
        )
        self.accelerator = Accelerator(
            # Under torchrun with no accelerator device, accelerate runs one process unless told to use CPUs
            # (not with DeepSpeed, which brings its own CPU communication and would otherwise be dropped).
            cpu=info.world_size > 1 and not _has_accelerator_device() and not _deepspeed_requested(),
            gradient_accumulation_steps=self.gas,
            log_with=None if args.logger == "none" else args.logger,
            project_config=project,
        )
        acc = self.accelerator
        if acc.num_processes != info.world_size:
            hint = " (DeepSpeed over several processes needs GPUs; use configs/accelerate/ddp.yaml on CPUs)"
            raise InputError(
                f"launcher reports {info.world_size} processes but accelerate sees {acc.num_processes}"
                + (hint if _deepspeed_requested() else "")
            )
        # Consecutive ranks form a sequence-parallel group sharing one data-parallel rank (spec 6): its ranks
        # load the same clips (same stream positions) and draw the same noise.
        self.sp = init_sequence_parallel(args.sp_size)
        self.dp_size = acc.num_processes // args.sp_size
        self.dp_rank = acc.process_index // args.sp_size
        self.device = acc.device
        self.weight_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
            acc.mixed_precision, torch.float32
        )
        set_seed(args.seed)
        self._configure_deepspeed()

        self.resume_dir = resolve_resume(args.resume_from_checkpoint, self.output_dir)
        if self.resume_dir is not None:
            self.state = RunState.load(self.resume_dir)
        else:
            self.state = RunState()
            if args.start_step:
                self.state = RunState(
                    args.start_step, args.start_step * args.batch_size, args.start_step * args.batch_size
                )
        self.lr_offset = args.start_step * args.batch_size if args.reset_lr and args.start_step else 0
        self.total_steps = 0
        self.progress = None
        self._batches: Iterator | None = None
        self._timer = time.perf_counter()
        self.data_time = 0.0
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_effective_config(args, self.output_dir / "args.json")  # --config args.json repeats the run
        logger.info(
            "process %d/%d (dp rank %d of %d, sp %d), %d micro-batches of %d per step, %s, %s, %d torch threads",
            acc.process_index, acc.num_processes, self.dp_rank, self.dp_size, args.sp_size,
            self.gas, args.batch_gpu, self.device, self.weight_dtype, threads,
        )  # fmt: skip

    # -- DeepSpeed --------------------------------------------------------------------------------------

    @property
    def deepspeed_config(self) -> dict | None:
        plugin = self.accelerator.state.deepspeed_plugin
        return plugin.deepspeed_config if plugin is not None else None

    @property
    def zero_stage(self) -> int:
        config = self.deepspeed_config
        return int(config.get("zero_optimization", {}).get("stage", 0)) if config else 0

    def _configure_deepspeed(self) -> None:
        """Fill what accelerate cannot infer without a prepared DataLoader, and refuse an optimizer block."""
        config = self.deepspeed_config
        if config is None:
            return
        if "optimizer" in config:
            raise InputError(
                "the DeepSpeed config has an 'optimizer' block: remove it (configs/deepspeed/*.json) so that the "
                "Adam flags (--adam_beta1, --adam_beta2, --adam_epsilon, --adam_weight_decay) are the ones used"
            )
        config["train_micro_batch_size_per_gpu"] = self.args.batch_gpu
        config["gradient_accumulation_steps"] = self.gas
        config["train_batch_size"] = self.args.batch_gpu * self.gas * self.accelerator.num_processes
        clip = config.get("gradient_clipping")
        if clip not in (None, "auto") and float(clip) != self.args.max_grad_norm:
            logger.warning(
                "DeepSpeed clips gradients at %s (its JSON), not --max_grad_norm %s",
                clip,
                self.args.max_grad_norm,
            )

    def adam(self, params: Iterable, weight_decay: float, decoupled: bool = True) -> torch.optim.Optimizer:
        """Adam(W) with the command line's betas, epsilon and weight decay, really applied under every launch
        config (the reference's ZeRO config silently replaced its flags with DeepSpeed's defaults: bug 21; those
        defaults, which trained the released DiT, are now the flags' defaults). lr is set every step by the
        schedule. The DeepSpeed JSONs carry no optimizer block, so accelerate hands this optimizer to DeepSpeed.

        With ZeRO-Offload the DeepSpeed CPU Adam is built here with the same values (accelerate's automatic
        conversion keeps only lr and weight decay), which is why the offload config sets
        ``zero_force_ds_cpu_optimizer: false``.
        """
        args = self.args
        params = [p for p in params if p.requires_grad]
        hyper = dict(
            lr=0.0, betas=(args.adam_beta1, args.adam_beta2), eps=args.adam_epsilon, weight_decay=weight_decay
        )
        offload = (self.deepspeed_config or {}).get("zero_optimization", {}).get("offload_optimizer", {})
        if offload.get("device", "none") not in ("none", None):
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            optimizer = DeepSpeedCPUAdam(params, adamw_mode=decoupled, **hyper)
        else:
            optimizer = (torch.optim.AdamW if decoupled else torch.optim.Adam)(params, **hyper)
        logger.info(
            "%s over %d tensors: betas %s, eps %g, weight decay %g",
            type(optimizer).__name__, len(params), hyper["betas"], hyper["eps"], weight_decay,
        )  # fmt: skip
        return optimizer

    # -- data -------------------------------------------------------------------------------------------

    def dataset(self) -> ClipDataset:
        args = self.args
        options = ClipOptions(
            num_frames=args.num_frames,
            pn=args.pn,
            dynamic_res=args.dynamic_res,
            no_bicubic=args.no_bicubic,
            p_vflip=args.p_vflip,
            p_hflip=args.p_hflip,
            p_transpose=args.p_transpose,
            temporal_sf=tuple(temporal_sf_list(args.temporal_sf)),
            seed=args.seed,
            backend=args.video_backend,
        )
        dataset = ClipDataset(load_training_records(args.data), options)
        samples = round(len(dataset) * args.num_epochs)
        self.total_steps = args.max_train_steps or max(1, math.ceil(samples / args.batch_size))
        return dataset

    def batches(self, dataset: ClipDataset) -> None:
        """Start this rank's share of the stream at the run's ``data_position``."""
        workers = self.args.dataloader_num_workers
        order = ClipOrder(
            len(dataset),
            seed=self.args.seed,
            start=self.state.data_position,
            rank=self.dp_rank,
            num_replicas=self.dp_size,
        )
        loader = clip_loader(
            dataset, order, self.args.batch_gpu, workers, pin_memory=self.device.type == "cuda"
        )
        self._batches = iter(loader)

    def next_batch(self) -> dict:
        """The next micro-batch of this rank, on the device (uint8 frames stay uint8)."""
        start = time.perf_counter()
        batch = next(self._batches)
        self.state.data_position += self.args.batch_gpu * self.dp_size
        batch = {
            k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
        }
        self.data_time += time.perf_counter() - start
        return batch

    # -- randomness and schedule ------------------------------------------------------------------------

    def sample_generators(self, batch: dict, purpose: int) -> list[torch.Generator]:
        """One generator per sample of ``batch``, keyed by ``(seed, stream position, purpose)``: a sample gets
        the same noise whatever the number of processes, ``--batch_gpu`` or accumulation steps."""
        return [
            keyed_generator(self.args.seed, position, purpose, device=self.device)
            for position in batch["position"].tolist()
        ]

    def lr(self, ref_lr: float) -> float:
        args = self.args
        return learning_rate(
            self.state.cur_nsample - self.lr_offset,
            args.batch_size,
            ref_lr,
            args.ref_batches,
            args.rampup_Msample,
        )

    def clip_gradients(self, model) -> float | None:
        """At a synchronising micro-step, clip to ``--max_grad_norm`` (0: off); returns the global gradient norm
        before clipping when the backend reports it (DeepSpeed clips inside its step, from its JSON)."""
        if not self.accelerator.sync_gradients or self.args.max_grad_norm <= 0:
            return None
        norm = self.accelerator.clip_grad_norm_(model.parameters(), self.args.max_grad_norm)
        return None if norm is None else float(norm)

    @staticmethod
    def set_lr(optimizer, lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr

    # -- the loop ---------------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.state.global_step >= self.total_steps

    def start(self) -> None:
        """Open the trackers and the progress bar (after :meth:`dataset` set the run length)."""
        from tqdm.auto import tqdm

        acc = self.accelerator
        if acc.is_main_process and self.args.logger != "none":
            acc.init_trackers(self.name, config=_tracker_config(self.args))
        self.progress = tqdm(
            total=self.total_steps,
            initial=self.state.global_step,
            disable=not acc.is_main_process,
            unit="step",
            desc=self.name,
            dynamic_ncols=True,
        )
        self._timer = time.perf_counter()

    def resume(self, load_extra: Callable[[Path], None]) -> None:
        """Restore ``accelerator`` state (call after ``prepare``) and the trainer's files from the checkpoint."""
        if self.resume_dir is None:
            if self.args.resume_from_checkpoint == "latest":
                logger.info("no checkpoint in %s: starting a new run", self.output_dir)
            return
        logger.info("resuming from %s (step %d)", self.resume_dir, self.state.global_step)
        self.accelerator.load_state(str(self.resume_dir))
        load_extra(self.resume_dir)

    def reduce_mean(self, value: float) -> float:
        """Mean of a per-rank scalar over all ranks."""
        tensor = torch.tensor([value], device=self.device, dtype=torch.float64)
        return self.accelerator.reduce(tensor, reduction="mean").item()

    def end_step(self, metrics: dict, save_extra: Callable[[Path], None]) -> None:
        """Count the step, log it (log.jsonl, tracker, progress bar) and save a checkpoint when due."""
        args, state = self.args, self.state
        state.global_step += 1
        state.cur_nsample += args.batch_size
        now = time.perf_counter()
        metrics = {**metrics, "time/step": now - self._timer, "time/data": self.data_time}
        self._timer, self.data_time = now, 0.0
        state.metrics = metrics
        if self.accelerator.is_main_process:
            record = {"step": state.global_step, "samples": state.cur_nsample, **metrics}
            with (self.output_dir / LOG_FILE).open("a") as handle:
                handle.write(json.dumps(record) + "\n")
            if self.args.logger != "none":
                self.accelerator.log(metrics, step=state.cur_nsample)
        self.progress.set_postfix({k: f"{v:.4g}" for k, v in metrics.items() if k in ("loss", "lr")})
        self.progress.update(1)
        if state.global_step % args.checkpointing_steps == 0 or self.done:
            self.save(save_extra)

    def save(self, save_extra: Callable[[Path], None]) -> Path:
        """Write ``checkpoint-<step>`` atomically: ``save_state`` on every rank into a ``.partial`` folder, then
        the trainer's files and ``state.json`` on the main process, then the rename."""
        acc = self.accelerator
        final = checkpoint_path(self.output_dir, self.state.global_step)
        partial = final.with_name(final.name + ".partial")
        if acc.is_main_process and partial.exists():
            shutil.rmtree(partial)
        acc.wait_for_everyone()
        acc.save_state(str(partial))
        acc.wait_for_everyone()
        if acc.is_main_process:
            save_extra(partial)
            (partial / STATE_FILE).write_text(self.state.to_json())
            if final.exists():
                shutil.rmtree(final)
            os.replace(partial, final)
            for path in prune_checkpoints(self.output_dir, self.args.checkpoints_total_limit):
                logger.info("removed old checkpoint %s", path)
        acc.wait_for_everyone()
        return final

    def finish(self) -> None:
        """Close trackers and the progress bar. The process group is destroyed only on CUDA: with gloo on CPU,
        destroying it at exit aborts a fraction of runs (ENVIRONMENT.md)."""
        if self.progress is not None:
            self.progress.close()
        self.accelerator.wait_for_everyone()
        if self.device.type == "cuda":
            self.accelerator.end_training()
        else:
            for tracker in self.accelerator.trackers:
                tracker.finish()
