"""Real-size smoke of ``generate.py --backend ldf`` on the CPU, without the released weights (run by hand).

    python benchmarks/real_size_smoke.py                        # 2 sampling steps, release and small tiles
    python benchmarks/real_size_smoke.py --steps 1 --configs small --keep

Writes random stand-ins of the released files in their official formats under ``--workdir``: a diffusers
``model/transformer/`` folder (``config.json`` as the reference saves it: class ``WanTransformer3DModel``, 36
inputs, the constructor's default attention type; one fp32 ``diffusion_pytorch_model.safetensors``, 5.6 GB) and
``Wan2.1_VAE_cond_v2.pth`` (the original key names, 0.8 GB). Then, for each tile configuration, runs
``generate.py --backend ldf --device cpu`` on a 9-frame 64x64 clip at x2 in a child process, so the real
configuration path runs end to end: sizes read off the files, the key mapping, the release attention preset,
tiling at the real channel widths, and the video written (17 frames at 50 fps).

Measured per configuration (the child wraps the library's calls with timers; nothing else changes): loading
(seconds; peak resident memory while loading, and how much of the resident memory after it is file-backed, i.e.
the safetensors file mapped rather than copied), seconds per DiT forward (one per sampling step: the clip is one
window), seconds of the VAE's tiled encode and decode, the run's peak resident memory, the total.
``--steps`` fewer than the released 16 only shortens the run: every step costs the same.

Needs ~19 GB of RAM with the release tiles (vae_batch_size 16 groups of 256x256 tiles at once); on a shared
machine run it alone (e.g. under ``flock``). The stand-ins are deleted at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from benchmarks.measure import peak_rss_bytes, reset_peak_rss, rss_bytes, status_kib  # noqa: E402

GB = 1e9  # decimal, as the file sizes are usually quoted (the fp32 DiT: 5.6 GB)

# Tile flags of the configurations compared; "release" is the default of generate.py (the released model's).
CONFIGS: dict[str, dict[str, int]] = {
    "release": {"tile_min_h": 256, "tile_min_w": 256, "tile_stride_h": 192, "tile_stride_w": 192},
    "small": {"tile_min_h": 64, "tile_min_w": 64, "tile_stride_h": 48, "tile_stride_w": 48},
    "release-batch2": {"tile_min_h": 256, "tile_min_w": 256, "tile_stride_h": 192, "tile_stride_w": 192,
                       "vae_batch_size": 2},
}  # fmt: skip
CLIP_FRAMES, CLIP_SIZE, TEMPORAL_SF = 9, 64, 2
VAE_FILE = "Wan2.1_VAE_cond_v2.pth"


def _write_transformer(folder: Path) -> None:
    import torch

    from ldf_vfi.models.transformer import CONFIG_DEFAULT_ATTENTION_TYPE, LDFTransformer3DModel

    torch.manual_seed(0)
    model = LDFTransformer3DModel(attention_type=CONFIG_DEFAULT_ATTENTION_TYPE)  # as the released config says
    model.save_pretrained(folder)  # config.json + one diffusion_pytorch_model.safetensors (under 10 GB)
    config = json.loads((folder / "config.json").read_text())
    config.update(
        _class_name="WanTransformer3DModel", _diffusers_version="0.33.0.dev0"
    )  # the reference's class
    (folder / "config.json").write_text(json.dumps(config, indent=2))


def _write_vae(path: Path) -> None:
    import torch

    from ldf_vfi.models.vae import WanVAE, save_original_state_dict

    torch.manual_seed(1)
    save_original_state_dict(WanVAE(conditional=True), path)


def _write_clip(path: Path) -> None:
    from ldf_vfi.data.synthetic import moving_shapes_video
    from ldf_vfi.io import VideoWriter

    with VideoWriter(path, Fraction(25), crf=0, preset="ultrafast") as writer:
        for frame in moving_shapes_video(CLIP_FRAMES, CLIP_SIZE, CLIP_SIZE, seed=0):
            writer.write(frame)


# ---------------------------------------------------------------------------------------------------------
# The child: generate.py's entry point with timers around the library calls


def child(record_path: Path, generate_argv: list[str]) -> int:
    """Run ``generate.py``'s main in this process, timing loading, DiT forwards and VAE calls."""
    import torch

    from ldf_vfi.cli import generate_main
    from ldf_vfi.models.transformer import LDFTransformer3DModel
    from ldf_vfi.models.vae import WanVAE
    from ldf_vfi.pipelines.ldf import LDFVFIPipeline

    record: dict[str, Any] = {"threads": torch.get_num_threads(), "dit_forward_s": [], "vae_encode_s": [],
                              "vae_decode_s": []}  # fmt: skip
    load = LDFVFIPipeline.from_pretrained.__func__

    def timed_load(cls, *args, **kwargs):
        reset_peak_rss()
        before, start = rss_bytes(), time.perf_counter()
        pipe = load(cls, *args, **kwargs)
        record.update(
            load_s=time.perf_counter() - start,
            rss_before_load_gb=before / GB,
            load_peak_rss_gb=peak_rss_bytes() / GB,
            rss_after_load_gb=rss_bytes() / GB,
            anon_after_load_gb=status_kib("RssAnon") * 1024 / GB,
            file_backed_after_load_gb=status_kib("RssFile") * 1024 / GB,
            dit_parameters=sum(p.numel() for p in pipe.transformer.parameters()),
            vae_parameters=sum(p.numel() for p in pipe.vae.parameters()),
            attention_type=pipe.transformer.config.attention_type,
        )
        reset_peak_rss()  # from here on the peak is the run's (the weights stay resident)
        return pipe

    def timer(owner, name: str, key: str) -> None:
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            start, cpu = time.perf_counter(), time.process_time()
            out = original(*args, **kwargs)
            record[key].append(time.perf_counter() - start)
            record.setdefault(key.replace("_s", "_cpu_s"), []).append(time.process_time() - cpu)
            return out

        setattr(owner, name, timed)

    LDFVFIPipeline.from_pretrained = classmethod(timed_load)
    timer(LDFTransformer3DModel, "forward", "dit_forward_s")
    timer(WanVAE, "tiled_encode", "vae_encode_s")
    timer(WanVAE, "tiled_decode", "vae_decode_s")
    start = time.perf_counter()
    record["returncode"] = generate_main(generate_argv)
    record["total_s"] = time.perf_counter() - start
    record["run_peak_rss_gb"] = peak_rss_bytes() / GB
    record_path.write_text(json.dumps(record, indent=2))
    return record["returncode"]


# ---------------------------------------------------------------------------------------------------------
# The parent


def run_config(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from ldf_vfi.io import probe

    out_dir = workdir / f"out-{name}"
    shutil.rmtree(out_dir, ignore_errors=True)
    flags = {"sampling_steps": args.steps, **CONFIGS[name]}
    generate_argv = [
        "--data", str(workdir / "clip.mp4"), "--temporal_sf", str(TEMPORAL_SF), "--backend", "ldf",
        "--device", "cpu", "--model_path", str(workdir / "model"), "--vae_path", str(workdir / VAE_FILE),
        "--output_dir", str(out_dir), *(f"--{k}={v}" for k, v in flags.items()),
    ]  # fmt: skip
    record_path = workdir / f"record-{name}.json"
    record_path.unlink(missing_ok=True)
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        str(record_path),
        "--",
        *generate_argv,
    ]
    print(f"[{name}] generate.py {' '.join(generate_argv)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO_ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    result: dict[str, Any] = {"config": name, "flags": flags, "wall_s": time.perf_counter() - start}
    result["process_peak_rss_gb"] = usage.ru_maxrss * 1024 / GB  # the whole child, loading included
    if proc.returncode != 0 or not record_path.is_file():
        result["error"] = f"generate.py exited with status {proc.returncode}"
        return result
    result.update(json.loads(record_path.read_text()))
    forwards = result["dit_forward_s"]
    result["seconds_per_step"] = sum(forwards) / len(forwards)
    info = probe(out_dir / "clip" / "pred.mp4")
    result["output"] = {
        "frames": info.num_frames,
        "fps": str(info.fps),
        "size": f"{info.width}x{info.height}",
    }
    return result


def _seconds(record: dict[str, Any], key: str, per_call: bool = False) -> str:
    """Wall seconds (total, or mean per call) with the process's CPU seconds in brackets when recorded."""
    wall, cpu = record[key], record.get(key.replace("_s", "_cpu_s"))
    div = len(wall) if per_call else 1
    text = f"{sum(wall) / div:.0f}"
    return text + (f" ({sum(cpu) / div:.0f})" if cpu else "")


def markdown(results: list[dict[str, Any]], steps: int) -> str:
    lines = [
        f"`benchmarks/real_size_smoke.py`: CPU, {results[0].get('threads', '?')} threads, {steps} sampling steps, "
        f"a 9-frame 64x64 clip x{TEMPORAL_SF} (one 60-frame window); seconds wall (CPU)",
        "",
        "| tiles (min/stride) | s per DiT step | VAE encode s | VAE decode s | total s | load s | peak while"
        " loading GB | peak GB | output |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['config']} | {r['error']} |||||||")
            continue
        flags = r["flags"]
        tiles = f"{flags['tile_min_h']}/{flags['tile_stride_h']}" + (
            f", vae_batch_size {flags['vae_batch_size']}" if "vae_batch_size" in flags else ""
        )
        out = r["output"]
        lines.append(
            f"| {tiles} | {_seconds(r, 'dit_forward_s', per_call=True)} | {_seconds(r, 'vae_encode_s')}"
            f" | {_seconds(r, 'vae_decode_s')} | {r['total_s']:.0f} | {r['load_s']:.1f}"
            f" | {r['load_peak_rss_gb']:.1f} | {r['process_peak_rss_gb']:.1f}"
            f" | {out['frames']} frames {out['size']} at {out['fps']} fps |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(Path(argv[1]), argv[3:])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", default="/tmp/ldf_vfi_real_size", help="where the stand-ins are written")
    parser.add_argument(
        "--steps", type=int, default=2, help="sampling steps (released: 16; each costs the same)"
    )
    parser.add_argument(
        "--configs", default="release,small", help=f"comma-separated, of {', '.join(CONFIGS)}"
    )
    parser.add_argument("--keep", action="store_true", help="keep the stand-in files for another run")
    parser.add_argument("--json", default="runs/real_size_smoke.json", help="write the results here too")
    args = parser.parse_args(argv)
    names = [n for n in args.configs.split(",") if n]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown or args.steps < 1:
        print(
            f"error: unknown config {unknown[0]!r}" if unknown else "error: --steps must be >= 1",
            file=sys.stderr,
        )
        return 2
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        start = time.perf_counter()
        if not (workdir / "model" / "transformer" / "config.json").is_file():
            _write_transformer(workdir / "model" / "transformer")
        if not (workdir / VAE_FILE).is_file():
            _write_vae(workdir / VAE_FILE)
        if not (workdir / "clip.mp4").is_file():
            _write_clip(workdir / "clip.mp4")
        print(f"stand-ins ready in {time.perf_counter() - start:.0f} s under {workdir}", flush=True)
        results = []
        for name in names:
            results.append(run_config(name, args, workdir))
            print(json.dumps(results[-1], indent=1, default=str), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    table = markdown(results, args.steps)
    print(table)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"results": results, "markdown": table}, indent=2, default=str))
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
