"""One command that checks and measures the LDF backend on a GPU, and rehearses itself on the CPU.

    python benchmarks/gpu_check.py --out OUT_DIR              # one H100/H200: about 7.5 minutes, compiles included
    python benchmarks/gpu_check.py --out OUT_DIR --dry-run    # every stage on the CPU, tiny configs, ~1-2 min

Stages (each under its own time guard; a stage that fails or runs out of time records why, the next runs):

1. ``correctness``: the tests marked ``cuda`` (``pytest -m cuda``, in a subprocess, while the next check runs)
   and compiled FlexAttention against a dense masked-softmax reference on a real window (12 heads x 128, the
   released ``slide_chunk_all_block_2x1x1`` mask, the token count of a 60-frame 720p window), bf16 and fp32.
2. ``model``: the real-size DiT (Wan2.1-T2V-1.3B with 36 inputs, random weights) in bf16, one window forward at
   480p, 720p and 1080p, and the attention kernel alone on the same windows: seconds, peak memory, TFLOP/s
   over the FLOPs the mask keeps, and the fraction of the device's dense bf16 peak.
3. ``vae``: the real-size conditional VAE (random weights), tiled encode and decode of one 1080p window.
4. ``sampler``: the sampler end to end at 720p (2 and 16 steps): seconds per output frame, peak memory, and
   the peak for a 2-window and a 4-window video, which must be equal.
5. ``sp``: with two GPUs, the 720p window split over two processes (sp=2): time, memory, equality with sp=1.

The JSON (``OUT_DIR/gpu_check.json``) and the markdown table (``OUT_DIR/gpu_check.md``, also printed) are
rewritten after every stage, so an interrupted run keeps what it measured. ``--dry-run`` builds only tiny
models (the real ones exist there only on the meta device, for the plan's parameter and FLOP counts), so the
real sizes are never allocated on the CPU; a test runs it in CI. Exit status 0 when every stage that ran
passed its checks, 1 otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import inspect
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.measure import (  # noqa: E402
    GIB,
    dit_forward_flops,
    mask_density,
    masked_attention_flops,
    peak_memory_gib,
    peak_rss_bytes,
    reset_peak_memory,
    sync,
)
from benchmarks.sampler import DIT_PARAMS, RESOLUTIONS, VAE_PARAMS  # noqa: E402
from ldf_vfi.errors import first_line  # noqa: E402
from ldf_vfi.models.attention import ChunkGrid, Mask, block_masks, window_attention  # noqa: E402
from ldf_vfi.models.tiling import TilingConfig, chunk_grid, chunked_to_stitched, decode_spans  # noqa: E402
from ldf_vfi.models.transformer import (  # noqa: E402
    RELEASE_ATTENTION_TYPE,
    LDFTransformer3DModel,
    tiny_config,
)
from ldf_vfi.models.vae import WanVAE  # noqa: E402
from ldf_vfi.models.vae import tiny_config as vae_tiny_config  # noqa: E402

# Dense (no 2:4 sparsity) bf16 tensor-core peaks in TFLOP/s, first matching name wins. Source: NVIDIA's
# datasheets, which print the sparse figure (twice these): H100 SXM 1,979 / PCIe 1,513 / NVL 1,671
# (nvidia.com/en-us/data-center/h100, datasheet 2023); H200 SXM 1,979 / NVL 1,671 (nvidia.com/en-us/
# data-center/h200); A100 312 dense (A100 datasheet); L40S 733 sparse (L40S datasheet). An unknown device
# gets no fraction (or pass --peak-tflops).
DEVICE_PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200 NVL", 835.0),
    ("H200", 989.0),
    ("H100 NVL", 835.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # "NVIDIA H100 80GB HBM3" is the SXM part
    ("A100", 312.0),
    ("L40S", 362.0),
)

REPORT_NAME = "gpu_check"
CUDA_MARKER = "cuda"


def device_peak_tflops(name: str) -> float | None:
    """Dense bf16 peak of a device by its ``torch.cuda.get_device_name``; None when not in the table."""
    for pattern, tflops in DEVICE_PEAK_BF16_TFLOPS:
        if pattern.lower() in name.lower():
            return tflops
    return None


# ---------------------------------------------------------------------------------------------------------
# What runs where: the real sizes on a GPU, tiny stand-ins for the CPU rehearsal


@dataclass(frozen=True)
class Profile:
    """Everything a stage allocates is sized here; the dry-run profile holds only tiny configs."""

    name: str
    device: torch.device
    dtype: torch.dtype
    transformer: dict[str, Any]
    vae: dict[str, Any]
    tiling: TilingConfig
    num_frames: int
    model_resolutions: dict[str, tuple[int, int]]  # stage 2
    attention_resolution: str  # stage 1: the window whose token count the FlexAttention check uses
    vae_resolution: str  # stage 3
    sampler_resolution: str  # stages 4 and 5
    temporal_sf: int
    sampler_steps: tuple[int, int]  # (few, many): the 2-/4-window memory runs use the first
    budgets_s: dict[str, float]
    repeats: int = 1  # timed calls per measurement after the first (the best is reported), time permitting

    def size(self, name: str) -> tuple[int, int]:
        return {**RESOLUTIONS, **self.model_resolutions}[name]


def real_profile() -> Profile:
    return Profile(
        name="real",
        device=torch.device("cuda"),
        dtype=torch.bfloat16,
        transformer={"attention_type": RELEASE_ATTENTION_TYPE},
        vae={"conditional": True},
        tiling=TilingConfig(),
        num_frames=60,
        model_resolutions={k: RESOLUTIONS[k] for k in ("480p", "720p", "1080p")},
        attention_resolution="720p",
        vae_resolution="1080p",
        sampler_resolution="720p",
        temporal_sf=4,
        sampler_steps=(2, 16),
        # On one H100/H200: 440 s of guards plus about 25 s of start-up, under 8 minutes (the sp stage runs
        # only with two GPUs). Expected: compiles ~15-25 s per new window shape; a 720p DiT forward ~3 s.
        budgets_s={"correctness": 110, "model": 90, "vae": 70, "sampler": 170, "sp": 100},
    )


def dry_profile() -> Profile:
    sizes = {"tiny 32x32": (32, 32), "tiny 64x64": (64, 64), "tiny 96x128": (96, 128)}
    return Profile(
        name="dry-run",
        device=torch.device("cpu"),
        dtype=torch.float32,
        transformer=tiny_config(),
        vae=vae_tiny_config(conditional=True),
        tiling=TilingConfig(48, 48, 32, 32, 10, 8),
        num_frames=30,
        model_resolutions=sizes,
        attention_resolution="tiny 96x128",
        vae_resolution="tiny 64x64",
        sampler_resolution="tiny 32x32",
        temporal_sf=4,
        sampler_steps=(1, 2),
        # tiny work, but a busy CI machine can take minutes just to import torch in the subprocesses
        budgets_s=dict.fromkeys(("correctness", "model", "vae", "sampler", "sp"), 300.0),
    )


def window_grid(profile: Profile, height: int, width: int) -> ChunkGrid:
    """The DiT token grid of one window of ``num_frames`` frames at ``height x width``."""
    tiling = profile.tiling
    pt, ph, pw = profile_model_config(profile)["patch_size"]
    latent_t = tiling.tile_min_t // 5 * 2
    lh, lw = tiling.latent_stride
    chunks = chunk_grid(profile.num_frames, height, width, tiling)
    return ChunkGrid(chunks, (latent_t // pt, lh // ph, lw // pw))


def profile_model_config(profile: Profile) -> dict[str, Any]:
    """The transformer's full config (constructor defaults plus the profile's values), without building it."""
    params = inspect.signature(LDFTransformer3DModel.__init__).parameters
    return {**{k: p.default for k, p in params.items() if k != "self"}, **profile.transformer}


def release_mask(attention_type: str, num_layers: int) -> Mask:
    """The one mask every block of the release type uses (both attentions)."""
    masks = {m for pair in block_masks(attention_type, num_layers) for m in pair}
    if len(masks) != 1:
        raise ValueError(f"{attention_type} uses {len(masks)} different masks; the check expects one")
    return masks.pop()


# ---------------------------------------------------------------------------------------------------------
# Time guards and the report


class StageTimeout(BaseException):
    """A stage ran past its time guard (a BaseException, so no ``except Exception`` on the way swallows it)."""


class StageSkipped(Exception):
    """A stage cannot run here (e.g. one GPU for sp=2); the message is the recorded reason."""


@contextmanager
def time_guard(seconds: float) -> Iterator[Callable[[], float]]:
    """Raise :class:`StageTimeout` in the main thread after ``seconds``; yields a "seconds left" function."""
    deadline = time.monotonic() + seconds

    def on_alarm(signum, frame):
        raise StageTimeout(f"time guard of {seconds:.3g} s reached")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1e-3))
    try:
        yield lambda: deadline - time.monotonic()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Context:
    """What the stages share: the profile, the output folder, the report, models built once."""

    profile: Profile
    out_dir: Path
    report: dict[str, Any]
    peak_tflops: float | None
    seconds_left: Callable[[], float] = lambda: math.inf
    _models: dict[str, nn.Module] = field(default_factory=dict)

    def transformer(self) -> LDFTransformer3DModel:
        return self._model("transformer", LDFTransformer3DModel, self.profile.transformer, seed=0)

    def vae(self) -> WanVAE:
        return self._model("vae", WanVAE, self.profile.vae, seed=1)

    def _model(self, key: str, cls: type[nn.Module], config: dict[str, Any], seed: int) -> Any:
        """Built once, with random weights, directly on the profile's device, in its dtype, for inference."""
        if key not in self._models:
            torch.manual_seed(seed)
            with torch.device(self.profile.device):
                model = cls(**config)
            # nn.Module.to: diffusers' ModelMixin.to warns on every dtype cast about fp32 modules (none here)
            self._models[key] = nn.Module.to(model, dtype=self.profile.dtype).eval().requires_grad_(False)
        return self._models[key]

    def tflops_row(self, flops: float, seconds: float) -> dict[str, float]:
        """``tflops`` and, on a device with a known peak, ``fraction_of_peak``."""
        row = {"tflop": flops / 1e12, "tflops": flops / seconds / 1e12}
        if self.peak_tflops:
            row["fraction_of_peak"] = row["tflops"] / self.peak_tflops
        return row


def write_report(ctx: Context) -> None:
    """Write the JSON and the markdown table atomically (a reader never sees a half-written file)."""
    ctx.report["process_peak_rss_gib"] = peak_rss_bytes() / GIB
    for suffix, text in (
        (".json", json.dumps(ctx.report, indent=2, default=str)),
        (".md", markdown(ctx.report)),
    ):
        path = ctx.out_dir / (REPORT_NAME + suffix)
        tmp = path.with_suffix(suffix + ".tmp")
        tmp.write_text(text + "\n")
        os.replace(tmp, path)


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def markdown(report: dict[str, Any]) -> str:
    """The report as one markdown table (a row per measurement) with the machine above it."""
    m = report["machine"]
    lines = [
        f"`benchmarks/gpu_check.py` ({report['profile']}), {report['started']}: {m['device']}"
        f" (x{m['device_count']}), torch {m['torch']}, CUDA {m['cuda']}, diffusers {m['diffusers']};"
        f" dense bf16 peak {_fmt(report['peak_bf16_tflops'], '.0f') or 'unknown'} TFLOP/s",
        "",
        "| stage | measurement | s | peak GiB | TFLOP/s | of peak | check / note |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, stage in report["stages"].items():
        status = stage["status"] + (f" ({stage['seconds']:.0f} s)" if "seconds" in stage else "")
        reason = stage.get("error") or stage.get("reason")
        lines.append(f"| **{name}** | {status} | | | | | {reason or ''} |")
        for row in stage.get("rows", []):
            lines.append(
                f"| | {row['what']} | {_fmt(row.get('seconds'), '.3g')} | {_fmt(row.get('peak_gib'), '.2f')} |"
                f" {_fmt(row.get('tflops'), '.3g')} | {_fmt(row.get('fraction_of_peak'), '.0%')} |"
                f" {row.get('check', '')} |"
            )
    return "\n".join(lines)


def machine_info(profile: Profile) -> dict[str, Any]:
    import diffusers

    cuda = profile.device.type == "cuda"
    return {
        "device": torch.cuda.get_device_name(0)
        if cuda
        else f"CPU ({platform.processor() or platform.machine()})",
        "device_count": torch.cuda.device_count() if cuda else 1,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "diffusers": diffusers.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "commit": _git_commit(),
    }


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


@dataclass(frozen=True)
class Stage:
    name: str
    title: str
    run: Callable[[Context, dict[str, Any]], None]  # fills the stage's record in place (rows, details)


def run_stages(ctx: Context, stages: list[Stage], budget_scale: float = 1.0) -> bool:
    """Run the stages in order under their time guards, writing the report after each; True if all passed.

    A stage's status: ``ok``, ``check failed`` (it ran, some row's check did not hold), ``error`` (an
    exception; the traceback's last lines are kept), ``timeout``, or ``skipped`` (with the reason).
    """
    all_ok = True
    for stage in stages:
        budget = ctx.profile.budgets_s.get(stage.name, 60.0) * budget_scale
        record: dict[str, Any] = {"title": stage.title, "status": "running", "budget_s": budget, "rows": []}
        ctx.report["stages"][stage.name] = record
        write_report(ctx)
        print(f"== {stage.name}: {stage.title} (guard {budget:.3g} s)", flush=True)
        start = time.monotonic()
        try:
            with time_guard(budget) as seconds_left:
                ctx.seconds_left = seconds_left
                stage.run(ctx, record)
            errors = [f"{row['what']}: {row['error']}" for row in record["rows"] if "error" in row]
            failed = [row["what"] for row in record["rows"] if row.get("ok") is False and "error" not in row]
            record["status"] = "error" if errors else "check failed" if failed else "ok"
            if errors or failed:
                record["error"] = "; ".join(errors + [f"check failed: {what}" for what in failed])
        except StageSkipped as exc:
            record.update(status="skipped", reason=str(exc))
        except StageTimeout as exc:
            record.update(status="timeout", error=str(exc))
        except Exception as exc:  # a failing stage must not stop the others
            record.update(status="error", error=f"{type(exc).__name__}: {first_line(exc)}")
            record["traceback"] = traceback.format_exc().splitlines()[-12:]
        finally:
            ctx.seconds_left = lambda: math.inf
            record["seconds"] = time.monotonic() - start
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            write_report(ctx)
        all_ok &= record["status"] in ("ok", "skipped")
        print(f"   {record['status']} in {record['seconds']:.1f} s {record.get('error', '')}", flush=True)
    return all_ok


# ---------------------------------------------------------------------------------------------------------
# Measuring


@contextmanager
def row_guard(row: dict[str, Any]) -> Iterator[None]:
    """Record an exception of one measurement on its row (``error``, ``ok: False``) and carry on with the
    stage's next one; a time-out still ends the stage."""
    try:
        yield
    except Exception as exc:
        row.update(ok=False, error=f"{type(exc).__name__}: {first_line(exc)}")
        row["traceback"] = traceback.format_exc().splitlines()[-8:]
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Wall-clock seconds of ``fn()`` with the device's queue drained before and after."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


def measure(fn: Callable[[], Any], ctx: Context, repeats: int | None = None) -> tuple[dict[str, Any], Any]:
    """Run ``fn`` once (first call: compiles, caches), then up to ``repeats`` more while the guard leaves
    time for them. Returns the best time and the peak memory of the timed calls, and the last output."""
    device = ctx.profile.device
    first, out = timed(fn, device)
    times = []
    del out
    reset_peak_memory(device)
    base = torch.cuda.memory_allocated(device) / GIB if device.type == "cuda" else None
    for _ in range(ctx.profile.repeats if repeats is None else repeats):
        if times and ctx.seconds_left() < 3 * min(times) + 5:
            break
        seconds, out = timed(fn, device)
        times.append(seconds)
    stats = {"first_seconds": first, "seconds": min(times), "calls": len(times) + 1}
    stats["peak_gib"] = peak_memory_gib(device)
    if base is not None:
        stats["extra_gib"] = stats["peak_gib"] - base
    return stats, out


def forward(model: LDFTransformer3DModel, latent: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
    return model(latent, timestep).sample


def vae_roundtrip(vae: WanVAE, video: torch.Tensor, tiling: TilingConfig, mask: torch.Tensor) -> torch.Tensor:
    """Tiled encode then conditional tiled decode, as the sampler does for one window."""
    return vae.tiled_decode(
        chunked_to_stitched(vae.tiled_encode(video, tiling)), tiling, condition=video, mask=mask
    )


def _qkv(grid: ChunkGrid, heads: int, head_dim: int, ctx: Context, dtype: torch.dtype, seed: int = 0):
    """Random q, k, v ``(1, H, S, hd)`` laid out as the model passes them (token-major, transposed views),
    so the compiled kernel of a shape serves the model forward too."""
    g = torch.Generator(device=ctx.profile.device).manual_seed(seed)
    shape = (1, grid.seq_len, heads, head_dim)
    return [
        torch.randn(shape, generator=g, device=ctx.profile.device, dtype=dtype).transpose(1, 2)
        for _ in range(3)
    ]


def dense_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Mask, grid: ChunkGrid, max_bytes: int = 4 * GIB
) -> torch.Tensor:
    """``softmax(q k^T / sqrt(hd) + mask) v`` in float32 with the explicit token mask (the dense backend's
    rule), a block of query rows at a time so a real window fits: the reference FlexAttention must match."""
    b, heads, s, hd = q.shape
    labels = mask.token_labels(grid, q.device) if mask is not None else None
    qf, kf, vf = (x.float() for x in (q, k, v))
    rows = max(1, max_bytes // (b * heads * s * 4 * 2))
    out = torch.empty(b, heads, s, hd, device=q.device, dtype=torch.float32)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # a true fp32 reference
    try:
        for start in range(0, s, rows):
            stop = min(s, start + rows)
            scores = qf[:, :, start:stop] @ kf.transpose(-1, -2) / math.sqrt(hd)
            if labels is not None:
                allowed = mask.allows(labels[start:stop, None, :], labels[None, :, :])
                scores.masked_fill_(~allowed, float("-inf"))
            out[:, :, start:stop] = scores.softmax(dim=-1) @ vf
            del scores
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return out


# ---------------------------------------------------------------------------------------------------------
# Stage 1: correctness on the device


def cuda_test_files() -> list[str]:
    """Test files that hold a test marked ``cuda``."""
    marker = f"pytest.mark.{CUDA_MARKER}"
    return sorted(
        str(p.relative_to(REPO_ROOT))
        for p in (REPO_ROOT / "tests").glob("test_*.py")
        if marker in p.read_text()
    )


def _pytest_counts(text: str) -> dict[str, int]:
    """``{"passed": 3, "skipped": 1, ...}`` from pytest's summary line."""
    summary = [line for line in text.splitlines() if re.search(r"\b(passed|failed|skipped|error)", line)]
    counts: dict[str, int] = {}
    if summary:
        for number, word in re.findall(
            r"(\d+) (passed|failed|skipped|errors?|deselected|xfailed)", summary[-1]
        ):
            counts[word.rstrip("s") if word.startswith("error") else word] = int(number)
    return counts


def stage_correctness(ctx: Context, record: dict[str, Any]) -> None:
    profile = ctx.profile
    files = cuda_test_files()
    log = ctx.out_dir / "cuda_tests.log"
    tests_row: dict[str, Any] = {"what": f"pytest -m {CUDA_MARKER} ({len(files)} files)", "files": files}
    record["rows"].append(tests_row)
    # The tests run in their own process while this one checks FlexAttention: compiling is CPU-bound and
    # the tests are small, so the two overlap; timings are only taken in later stages.
    with open(log, "w") as handle:
        tests = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-m", CUDA_MARKER, "-p", "no:cacheprovider", *files],
            cwd=REPO_ROOT,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    start = time.monotonic()
    try:
        _flex_check(ctx, record)
        tests.wait(timeout=max(1.0, ctx.seconds_left() - 1))
    except subprocess.TimeoutExpired:
        tests_row.update(ok=False, check="timed out")
    finally:
        if tests.poll() is None:
            tests.kill()
            tests.wait()
        tests_row["seconds"] = time.monotonic() - start
    text = log.read_text(errors="replace")
    counts = _pytest_counts(text)
    tests_row.update(returncode=tests.returncode, counts=counts, log=str(log))
    if "ok" not in tests_row:
        ran = counts.get("passed", 0) + counts.get("failed", 0) + counts.get("error", 0)
        expected_to_run = profile.device.type == "cuda"
        tests_row["ok"] = tests.returncode == 0 and (ran > 0 or not expected_to_run)
        tests_row["check"] = ", ".join(f"{n} {w}" for w, n in counts.items()) or f"exit {tests.returncode}"
        if not tests_row["ok"]:
            tests_row["tail"] = text.splitlines()[-30:]


# Largest |flex - reference| / max |reference| accepted: fp32 must agree to rounding; bf16 inputs and
# outputs carry 8 bits of mantissa (2**-8 = 0.4%) plus the kernel's bf16 probabilities.
FLEX_TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2}


def _flex_check(ctx: Context, record: dict[str, Any]) -> None:
    profile = ctx.profile
    config = profile_model_config(profile)
    name = profile.attention_resolution
    grid = window_grid(profile, *profile.size(name))
    mask = release_mask(config["attention_type"], config["num_layers"])
    heads, head_dim = config["num_attention_heads"], config["attention_head_dim"]
    record["flex_window"] = {
        "resolution": name,
        "heads": heads,
        "head_dim": head_dim,
        "chunks": grid.chunks,
        "chunk_tokens": grid.chunk_tokens,
        "tokens": grid.seq_len,
        "mask": config["attention_type"],
        "mask_density": mask_density(mask, grid),
    }
    for dtype in (torch.bfloat16, torch.float32):
        row: dict[str, Any] = {
            "what": f"flex vs dense, {name} window ({grid.seq_len} tokens), {_name(dtype)}"
        }
        record["rows"].append(row)
        with row_guard(row):
            _flex_versus_dense(ctx, row, mask, grid, heads, head_dim, dtype)


def _flex_versus_dense(ctx: Context, row: dict[str, Any], mask: Mask, grid: ChunkGrid, heads: int,
                       head_dim: int, dtype: torch.dtype) -> None:  # fmt: skip
    q, k, v = _qkv(grid, heads, head_dim, ctx, dtype)
    with torch.no_grad():
        row["first_seconds"], out = timed(
            partial(window_attention, q, k, v, mask, grid, "flex"), ctx.profile.device
        )
        ref = dense_reference(q, k, v, mask, grid)
    err = (out.float() - ref).abs()
    scale = float(ref.abs().max())
    row.update(max_abs_err=float(err.max()), mean_abs_err=float(err.mean()), ref_max_abs=scale)
    row["ok"] = bool(torch.isfinite(out).all()) and row["max_abs_err"] <= FLEX_TOLERANCE[dtype] * scale
    compiled = "incl. compile " if ctx.profile.device.type == "cuda" else ""
    row["check"] = (
        f"max {row['max_abs_err']:.2e}, mean {row['mean_abs_err']:.2e} (|ref| <= {scale:.2f}; "
        f"first call {compiled}{row['first_seconds']:.1f} s)"
    )


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.").replace("bfloat16", "bf16").replace("float32", "fp32")


# ---------------------------------------------------------------------------------------------------------
# Stage 2: the DiT at real sizes


def stage_model(ctx: Context, record: dict[str, Any]) -> None:
    profile = ctx.profile
    build, model = timed(ctx.transformer, profile.device)
    record["build_seconds"] = build
    record["parameters"] = sum(p.numel() for p in model.parameters())
    record["weights_gib"] = sum(p.numel() * p.element_size() for p in model.parameters()) / GIB
    for name, size in profile.model_resolutions.items():
        grid = window_grid(profile, *size)
        density = mask_density(release_mask(model.config.attention_type, model.config.num_layers), grid)
        # attention alone first: it compiles the kernel for this window, which the forward then reuses
        attention = {"what": f"attention alone, {name} ({grid.seq_len} tokens, mask keeps {density:.1%})"}
        record["rows"].append(attention)
        with row_guard(attention):
            _attention_alone(ctx, attention, model.config, grid)
        chunks = "x".join(map(str, grid.chunks))
        row: dict[str, Any] = {"what": f"DiT forward, {name} window ({chunks} chunks, {grid.seq_len} tokens)"}
        record["rows"].append(row)
        with row_guard(row):
            _dit_forward(ctx, row, model, grid)


def _attention_alone(ctx: Context, row: dict[str, Any], cfg: Any, grid: ChunkGrid) -> None:
    mask = release_mask(cfg.attention_type, cfg.num_layers)
    q, k, v = _qkv(grid, cfg.num_attention_heads, cfg.attention_head_dim, ctx, ctx.profile.dtype)
    with torch.no_grad():
        stats, _ = measure(partial(window_attention, q, k, v, mask, grid, "auto"), ctx, repeats=3)
    flops = masked_attention_flops(mask, grid, cfg.num_attention_heads * cfg.attention_head_dim)
    row.update(stats, **ctx.tflops_row(flops, stats["seconds"]))


def _dit_forward(ctx: Context, row: dict[str, Any], model: LDFTransformer3DModel, grid: ChunkGrid) -> None:
    profile, cfg = ctx.profile, model.config
    t, h, w = (n * p for n, p in zip(grid.chunk_tokens, cfg.patch_size))
    g = torch.Generator(device=profile.device).manual_seed(0)
    shape = (1, *grid.chunks, cfg.in_channels, t, h, w)
    latent = torch.randn(shape, generator=g, device=profile.device, dtype=profile.dtype)
    timestep = torch.randint(0, 1000, (1, *grid.chunks), generator=g, device=profile.device)
    with torch.no_grad():
        stats, out = measure(partial(forward, model, latent, timestep), ctx)
    row.update(stats, **ctx.tflops_row(dit_forward_flops(cfg, grid), stats["seconds"]))
    finite = "" if bool(torch.isfinite(out).all()) else "; non-finite output (random weights)"
    row["check"] = f"first call {row['first_seconds']:.2f} s{finite}"


# ---------------------------------------------------------------------------------------------------------
# Stage 3: the conditional VAE at real sizes


def vae_group_flops(vae_config: dict[str, Any], tiling: TilingConfig) -> tuple[float, float]:
    """FLOPs to encode one 5-frame full tile and to decode it (with the condition), counted on the meta
    device (no memory, any size)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        vae = WanVAE(**vae_config)
    video = torch.zeros(1, 3, 5, tiling.tile_min_h, tiling.tile_min_w, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as encode:
        z = vae.encode(video)
    mask = torch.ones(1, 1, 5, tiling.tile_min_h, tiling.tile_min_w, device="meta")
    condition = video if vae.conditional else None
    with torch.no_grad(), FlopCounterMode(display=False) as decode:
        vae.decode(z, condition=condition, mask=mask if vae.conditional else None)
    return float(encode.get_total_flops()), float(decode.get_total_flops())


def tiled_vae_flops(
    vae_config: dict[str, Any], tiling: TilingConfig, grid: ChunkGrid, decoded_chunks: int
) -> tuple[float, float]:
    """FLOPs of the tiled encode of a window and of the decode of ``decoded_chunks`` of its temporal chunks.

    Encoder tiles are all full (zero-padded); decoder tiles at the far edges are shorter, and convolution
    cost is proportional to area, so they count by their share of a full tile's area.
    """
    encode, decode = vae_group_flops(vae_config, tiling)
    groups_per_chunk = tiling.tile_min_t // 5
    n_t, n_h, n_w = grid.chunks
    (th, tw), (sh, sw) = tiling.latent_tile, tiling.latent_stride
    rows, cols = decode_spans(n_h * sh, th, sh), decode_spans(n_w * sw, tw, sw)
    area = sum((r1 - r0) * (c1 - c0) for r0, r1 in rows for c0, c1 in cols) / (th * tw)
    return encode * groups_per_chunk * n_t * n_h * n_w, decode * groups_per_chunk * decoded_chunks * area


def stage_vae(ctx: Context, record: dict[str, Any]) -> None:
    profile = ctx.profile
    vae, tiling, frames = ctx.vae(), profile.tiling, profile.num_frames
    name = profile.vae_resolution
    height, width = profile.size(name)
    device, dtype = profile.device, profile.dtype
    grid = window_grid(profile, height, width)
    encode_flops, decode_flops = tiled_vae_flops(profile.vae, tiling, grid, grid.chunks[0])
    record["flops"] = {"encode_tflop": encode_flops / 1e12, "decode_tflop": decode_flops / 1e12}
    mask = torch.zeros(1, frames, dtype=torch.bool, device=device)
    mask[:, :: profile.temporal_sf] = True
    with torch.no_grad():
        small = (
            torch.rand(1, 3, frames, tiling.tile_min_h, tiling.tile_min_w, device=device, dtype=dtype) * 2 - 1
        )
        warm, _ = timed(partial(vae_roundtrip, vae, small, tiling, mask), device)
        record["warm_up_seconds"] = warm  # one tile: the kernels' first calls
        del small
        video = torch.rand(1, 3, frames, height, width, device=device, dtype=dtype) * 2 - 1
        encode_row: dict[str, Any] = {"what": f"tiled encode, {name} window ({frames} frames)"}
        record["rows"].append(encode_row)
        reset_peak_memory(device)
        seconds, latent = timed(lambda: vae.tiled_encode(video, tiling), device)
        encode_row.update(
            seconds=seconds, peak_gib=peak_memory_gib(device), **ctx.tflops_row(encode_flops, seconds)
        )
        decode_row: dict[str, Any] = {"what": f"tiled decode (conditional), {name} window ({frames} frames)"}
        record["rows"].append(decode_row)
        stitched = chunked_to_stitched(latent)
        reset_peak_memory(device)
        seconds, pixels = timed(
            lambda: vae.tiled_decode(stitched, tiling, condition=video, mask=mask), device
        )
        decode_row.update(
            seconds=seconds, peak_gib=peak_memory_gib(device), **ctx.tflops_row(decode_flops, seconds)
        )
        decode_row["check"] = f"output {tuple(pixels.shape)}"


# ---------------------------------------------------------------------------------------------------------
# Stage 4: the sampler end to end


def input_frames_for(windows: int, profile: Profile) -> int:
    """The longest input (in frames) whose video the sampler covers with exactly ``windows`` windows."""
    from ldf_vfi.pipelines.windows import window_schedule

    sf, found = profile.temporal_sf, None
    for n in range(2, 400):
        count = len(window_schedule(n * sf, profile.num_frames, profile.tiling.tile_min_t, (n - 1) * sf + 1))
        if count == windows:
            found = n
        elif count > windows:
            break
    if found is None:
        raise ValueError(f"no input length gives exactly {windows} windows")
    return found


@contextmanager
def phase_timers(pipe) -> Iterator[dict[str, float]]:
    """Seconds spent in the pipeline's VAE encodes, denoising loops and decodes (instance-level wrappers)."""
    device = pipe.device
    totals = {"encode_s": 0.0, "denoise_s": 0.0, "decode_s": 0.0, "windows": 0, "decoded_chunks": 0}

    def wrap(owner, attribute: str, key: str, count: Callable[..., None] | None = None):
        original = getattr(owner, attribute)

        def timed_call(*args, **kwargs):
            seconds, out = timed(lambda: original(*args, **kwargs), device)
            totals[key] += seconds
            if count:
                count(*args)
            return out

        setattr(owner, attribute, timed_call)

    def count_window(*args):
        totals["windows"] += 1

    def count_chunks(latent, *args):
        totals["decoded_chunks"] += latent.shape[1]

    wrap(pipe.vae, "tiled_encode", "encode_s")
    wrap(pipe, "_denoise", "denoise_s", count_window)
    wrap(pipe, "_decode", "decode_s", count_chunks)
    try:
        yield totals
    finally:
        for owner, attribute in ((pipe.vae, "tiled_encode"), (pipe, "_denoise"), (pipe, "_decode")):
            vars(owner).pop(attribute, None)


# Largest growth of the peak from a 2-window to a 4-window video taken as "equal": the 4-window video also
# carries two more one-chunk latents between windows (about 4 MiB each at 720p).
PEAK_GROWTH_TOLERANCE_MIB = 16.0


def stage_sampler(ctx: Context, record: dict[str, Any]) -> None:
    from ldf_vfi.models.transformer import window_rope

    # The RoPE tables of the model stage's windows (cached, ~0.2 GB at 1080p) are no part of the sampler's
    # peak; the sampler builds its own window's again.
    window_rope.__wrapped__.cache_clear()
    profile = ctx.profile
    name = profile.sampler_resolution
    few, many = profile.sampler_steps
    pool = np.random.default_rng(0).integers(0, 256, (4, *profile.size(name), 3), dtype=np.uint8)
    # 2- and 4-window videos at few steps (memory must not grow with the length), one window at many steps
    peaks: dict[int, int] = {}
    for steps, windows in ((few, 2), (few, 4), (many, 1)):
        n = input_frames_for(windows, profile)
        out_frames = (n - 1) * profile.temporal_sf + 1
        row: dict[str, Any] = {
            "what": f"sampler {name}, {steps} steps, {n} frames x{profile.temporal_sf} -> {out_frames} "
            f"({windows} window{'s' if windows > 1 else ''})",
            "steps": steps,
            "windows": windows,
            "input_frames": n,
            "output_frames": out_frames,
        }
        record["rows"].append(row)
        with row_guard(row):
            _sampler_run(ctx, row, steps, [pool[i % len(pool)] for i in range(n)])
            if steps == few:
                peaks[windows] = row["peak_bytes"]
    if len(peaks) == 2:
        growth = (peaks[4] - peaks[2]) / 2**20
        row = {"what": f"peak memory, 4 vs 2 windows ({name}, {few} steps)", "growth_mib": growth}
        if profile.device.type == "cuda":
            row["ok"] = abs(growth) <= PEAK_GROWTH_TOLERANCE_MIB
            row["check"] = f"{peaks[4] / GIB:.3f} vs {peaks[2] / GIB:.3f} GiB ({growth:+.1f} MiB)"
        else:  # the CPU's peak resident set includes the allocator's caching: informative only
            row["check"] = (
                f"resident {peaks[4] / GIB:.3f} vs {peaks[2] / GIB:.3f} GiB (CPU: not the allocator's peak)"
            )
        record["rows"].append(row)


def _sampler_run(ctx: Context, row: dict[str, Any], steps: int, frames: list[np.ndarray]) -> None:
    from ldf_vfi.pipelines.ldf import LDFSettings, LDFVFIPipeline

    profile = ctx.profile
    tiling_flags = {f: getattr(profile.tiling, f) for f in TilingConfig.__dataclass_fields__}
    settings = LDFSettings.from_options(
        # Random frames: every pair would be a scene cut; the stage measures one continuous video's windows.
        {
            "num_frames": profile.num_frames,
            "sampling_steps": steps,
            "detect_scene_cuts": False,
            **tiling_flags,
        }
    )
    pipe = LDFVFIPipeline(
        ctx.transformer(), ctx.vae(), settings, device=profile.device, dtype=profile.dtype, progress=False
    )
    reset_peak_memory(profile.device)
    start = time.perf_counter()
    with phase_timers(pipe) as phases, torch.no_grad():
        row["phases"] = phases
        for done, _ in enumerate(pipe.interpolate(iter(frames), profile.temporal_sf), 1):
            row["frames_done"], row["seconds"] = done, time.perf_counter() - start  # kept if the guard fires
    row["seconds"] = time.perf_counter() - start
    row["peak_gib"] = peak_memory_gib(profile.device)
    row["peak_bytes"] = round(row["peak_gib"] * GIB)
    row["seconds_per_frame"] = row["seconds"] / row["output_frames"]
    # A middle window (skip or concat) encodes its window, denoises it and decodes one chunk of tile_min_t
    # frames: the cost per output frame of a long video.
    per_window = (phases["encode_s"] + phases["denoise_s"]) / phases["windows"]
    per_chunk = phases["decode_s"] / max(1, phases["decoded_chunks"])
    row["steady_seconds_per_frame"] = (per_window + per_chunk) / profile.tiling.tile_min_t
    row["check"] = (
        f"{row['seconds_per_frame']:.3g} s/frame here, {row['steady_seconds_per_frame']:.3g} s/frame on a long "
        f"video (encode {phases['encode_s']:.1f} s, denoise {phases['denoise_s']:.1f} s, decode "
        f"{phases['decode_s']:.1f} s)"
    )


# ---------------------------------------------------------------------------------------------------------
# Stage 5: sequence parallelism over two devices


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sp_worker(rank: int, world: int, port: int, dry_run: bool, result_dir: str) -> None:
    """One rank of the sp=2 check (a spawned process): same weights and window on both ranks; rank 0 also
    computes the sp=1 output. Writes ``rank<r>.json``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))  # fmt: skip
    result: dict[str, Any] = {"rank": rank}
    path = Path(result_dir) / f"rank{rank}.json"
    try:
        import torch.distributed as dist

        from ldf_vfi.distributed.sequence_parallel import enable_sequence_parallel, init_sequence_parallel

        torch.set_num_threads(1 if dry_run else torch.get_num_threads())
        profile = dry_profile() if dry_run else real_profile()
        device = torch.device(f"cuda:{rank}") if profile.device.type == "cuda" else profile.device
        profile = Profile(**{**vars(profile), "device": device})
        sp = init_sequence_parallel(world)
        ctx = Context(profile, Path(result_dir), {}, None)
        model = ctx.transformer()
        for tensor in [*model.parameters(), *model.buffers()]:  # rank 0's weights everywhere
            dist.broadcast(tensor.data, src=0, group=sp.group)
        cfg = model.config
        grid = window_grid(profile, *profile.size(profile.sampler_resolution))
        t, h, w = (n * p for n, p in zip(grid.chunk_tokens, cfg.patch_size))
        g = torch.Generator(device=device).manual_seed(0)
        latent = torch.randn(
            (1, *grid.chunks, cfg.in_channels, t, h, w), generator=g, device=device, dtype=profile.dtype
        )
        timestep = torch.randint(0, 1000, (1, *grid.chunks), generator=g, device=device)
        dist.broadcast(latent, src=0, group=sp.group)
        dist.broadcast(timestep, src=0, group=sp.group)
        with torch.no_grad():
            if rank == 0:
                result["sp1_first_seconds"], reference = timed(lambda: model(latent, timestep).sample, device)
                result["sp1_seconds"], _ = timed(lambda: model(latent, timestep).sample, device)
            dist.barrier(group=sp.group)
            enable_sequence_parallel(model, sp)
            result["sp2_first_seconds"], _ = timed(lambda: model(latent, timestep).sample, device)
            reset_peak_memory(device)
            dist.barrier(group=sp.group)
            result["sp2_seconds"], output = timed(lambda: model(latent, timestep).sample, device)
            result["sp2_peak_gib"] = peak_memory_gib(device)
        if rank == 0:
            diff = (output.float() - reference.float()).abs()
            result.update(
                max_abs_diff=float(diff.max()),
                ref_max_abs=float(reference.float().abs().max()),
                bitwise_equal=bool(torch.equal(output, reference)),
                finite=bool(torch.isfinite(output).all() and torch.isfinite(reference).all()),
            )
        dist.destroy_process_group()
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {first_line(exc)}"
        result["traceback"] = traceback.format_exc().splitlines()[-12:]
    path.write_text(json.dumps(result))


# sp=2 and sp=1 run the same arithmetic on the same numbers; only the GEMMs see half the tokens per rank, and
# cuBLAS may pick other kernels for that shape: bf16 rounding differences, nothing more.
SP_TOLERANCE = 2e-2


def stage_sp(ctx: Context, record: dict[str, Any]) -> None:
    import multiprocessing as mp

    profile = ctx.profile
    if profile.device.type == "cuda" and torch.cuda.device_count() < 2:
        raise StageSkipped(f"sp=2 needs two GPUs; this machine has {torch.cuda.device_count()}")
    world = 2
    result_dir = ctx.out_dir / "sp"
    result_dir.mkdir(exist_ok=True)
    for old in result_dir.glob("rank*.json"):
        old.unlink()
    spawn = mp.get_context("spawn")
    port = _free_port()
    dry = profile.name != "real"
    procs = [
        spawn.Process(target=_sp_worker, args=(r, world, port, dry, str(result_dir))) for r in range(world)
    ]
    start = time.monotonic()
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join(timeout=max(1.0, ctx.seconds_left() - 2))
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
    record["seconds_with_start_up"] = time.monotonic() - start
    results = [json.loads(p.read_text()) for p in sorted(result_dir.glob("rank*.json"))]
    record["ranks"] = results
    errors = [r["error"] for r in results if "error" in r]
    if len(results) < world or errors:
        raise RuntimeError(
            "; ".join(errors) or f"{world - len(results)} rank(s) gave no result (timeout or crash)"
        )
    zero = results[0]
    name = profile.sampler_resolution
    record["rows"].append(
        {"what": f"DiT forward sp=1 ({name}, in the spawned rank 0)", "seconds": zero["sp1_seconds"]}
    )
    record["rows"].append(
        {
            "what": f"DiT forward sp=2 ({name})",
            "seconds": max(r["sp2_seconds"] for r in results),
            "peak_gib": max(r["sp2_peak_gib"] for r in results),
            "ok": zero["finite"] and zero["max_abs_diff"] <= SP_TOLERANCE * zero["ref_max_abs"],
            "check": f"vs sp=1: max |diff| {zero['max_abs_diff']:.2e} (|ref| <= {zero['ref_max_abs']:.2f}), "
            f"bitwise equal: {zero['bitwise_equal']}",
        }
    )


# ---------------------------------------------------------------------------------------------------------
# The plan: what the real run computes, by arithmetic and on the meta device (no memory)


def real_plan() -> dict[str, Any]:
    """Parameters of the real models (built on the meta device) and the real windows' sizes and FLOPs."""
    profile = real_profile()
    with torch.device("meta"):
        dit = LDFTransformer3DModel(**profile.transformer)
        vae = WanVAE(**profile.vae)
    cfg = dit.config
    mask = release_mask(cfg.attention_type, cfg.num_layers)
    width = cfg.num_attention_heads * cfg.attention_head_dim
    windows = {}
    for name in ("480p", "720p", "1080p"):
        grid = window_grid(profile, *RESOLUTIONS[name])
        windows[name] = {
            "chunks": grid.chunks,
            "tokens": grid.seq_len,
            "mask_density": mask_density(mask, grid),
            "dit_forward_tflop": dit_forward_flops(cfg, grid) / 1e12,
            "attention_tflop": masked_attention_flops(mask, grid, width) / 1e12,
        }
    return {
        "dit_parameters": sum(p.numel() for p in dit.parameters()),
        "vae_parameters": sum(p.numel() for p in vae.parameters()),
        "expected_parameters": {"dit": DIT_PARAMS, "vae": VAE_PARAMS},
        "windows": windows,
    }


STAGES = [
    Stage("correctness", "CUDA tests; compiled FlexAttention vs dense reference", stage_correctness),
    Stage("model", "real-size DiT forward and attention kernel (bf16)", stage_model),
    Stage("vae", "real-size conditional VAE, tiled encode/decode", stage_vae),
    Stage("sampler", "sampler end to end; memory vs video length", stage_sampler),
    Stage("sp", "sequence parallel sp=2 vs sp=1", stage_sp),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/gpu_check", help="folder for gpu_check.json/.md and logs")
    parser.add_argument("--dry-run", action="store_true", help="every stage on the CPU with tiny configs")
    parser.add_argument("--stages", default=",".join(s.name for s in STAGES), help="comma-separated subset")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every stage's time guard")
    parser.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak (default: by name)")
    args = parser.parse_args(argv)
    chosen = [s for s in args.stages.split(",") if s]
    unknown = sorted(set(chosen) - {s.name for s in STAGES})
    if unknown:
        print(
            f"error: unknown stage(s) {', '.join(unknown)}; valid: {', '.join(s.name for s in STAGES)}",
            file=sys.stderr,
        )
        return 2
    if not args.dry_run and not torch.cuda.is_available():
        print("error: no CUDA device here; --dry-run rehearses every stage on the CPU", file=sys.stderr)
        return 2
    if args.budget_scale <= 0:
        print("error: --budget-scale must be positive", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        print(f"error: --out '{out_dir}' exists and is not a folder", file=sys.stderr)
        return 2
    out_dir.mkdir(parents=True, exist_ok=True)

    profile = dry_profile() if args.dry_run else real_profile()
    if profile.device.type == "cpu":
        torch.set_num_threads(1)  # tiny tensors: more threads only spin
    machine = machine_info(profile)
    peak = args.peak_tflops or (
        device_peak_tflops(machine["device"]) if profile.device.type == "cuda" else None
    )
    report: dict[str, Any] = {
        "script": "benchmarks/gpu_check.py",
        "profile": profile.name,
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine,
        "peak_bf16_tflops": peak,
        "stages": {},
    }
    ctx = Context(profile, out_dir, report, peak)
    start = time.monotonic()
    report["plan"] = real_plan()
    report["plan_seconds"] = time.monotonic() - start
    ok = run_stages(ctx, [s for s in STAGES if s.name in chosen], args.budget_scale)
    report["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    report["total_seconds"] = time.monotonic() - start
    write_report(ctx)
    print()
    print(markdown(report))
    print(f"\nwritten: {out_dir / (REPORT_NAME + '.json')}, {out_dir / (REPORT_NAME + '.md')}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
