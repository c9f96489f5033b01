"""The diffusion sampler end to end on tiny random models: counts, determinism, stitching, bounded memory."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from ldf_vfi.data.synthetic import MovingShapes, moving_shapes_video
from ldf_vfi.data.temporal import upsample_temporal
from ldf_vfi.errors import InputError
from ldf_vfi.models.tiling import TilingConfig, chunked_to_stitched
from ldf_vfi.models.transformer import LDFTransformer3DModel, tiny_config
from ldf_vfi.models.vae import tiny_vae
from ldf_vfi.pipelines.ldf import LDFSettings, LDFVFIPipeline
from ldf_vfi.pipelines.windows import window_schedule

from conftest import REPO_ROOT

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Tiny geometry: 10-frame temporal chunks, 30-frame windows, 48-px tiles every 32 px -> chunk latents 4x4x4.
SETTINGS = dict(num_frames=30, tile_min_t=10, tile_min_h=48, tile_min_w=48, tile_stride_h=32, tile_stride_w=32,
                vae_batch_size=8, sampling_steps=2, t_shift=8.0)  # fmt: skip


def tiny_pipeline(seed: int = 42, **overrides) -> LDFVFIPipeline:
    torch.manual_seed(0)
    transformer = LDFTransformer3DModel(**tiny_config(attention_type="slide_chunk_all_block_2x1x1"))
    settings = LDFSettings.from_options({**SETTINGS, "seed": seed, **overrides})
    return LDFVFIPipeline(transformer, tiny_vae(conditional=True), settings, progress=False)


def frames(n: int, seed: int = 0):
    return moving_shapes_video(n, 64, 64, seed=seed)


@pytest.mark.parametrize("n, sf", [(2, 2), (5, 4), (4, 8), (3, 16), (9, 4)])
def test_output_frame_count(n, sf):
    out = tiny_pipeline().interpolate(frames(n), sf)
    out = list(out)
    assert len(out) == (n - 1) * sf + 1
    assert all(f.shape == (64, 64, 3) and f.dtype == np.uint8 for f in out)


def test_tail_frames_extend_the_timeline_without_changing_the_rest():
    """The evaluation's tail: slots after the last input come from the model's own N * sf timeline (here the
    last window, which the plain cut does not need for its last kept frames); earlier frames are unchanged."""
    n, sf = 3, 8  # timeline 24 slots; plain output 17 frames, all from the first window [0, 20)
    plain = tiny_pipeline()(frames(n), sf)
    longer = list(tiny_pipeline().interpolate(frames(n), sf, tail_frames=7))
    assert len(plain) == 17 and len(longer) == 24
    assert all(np.array_equal(a, b) for a, b in zip(plain, longer))
    with pytest.raises(InputError, match="tail_frames must be in 0..7"):
        tiny_pipeline().interpolate(frames(n), sf, tail_frames=8)


def test_seed_makes_it_deterministic():
    first = tiny_pipeline(seed=1)(frames(5), 4)
    again = tiny_pipeline(seed=1)(frames(5), 4)
    other = tiny_pipeline(seed=2)(frames(5), 4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


class OracleDiT(torch.nn.Module):
    """Predicts the velocity that makes every chunk converge to its LQ latent y (channels 16:32):
    v = (x_t - y) / t, with t recovered exactly from the integer timestep."""

    def __init__(self, grid: torch.Tensor, t_cond: float) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))  # so .to() and dtype queries work
        self.times = {int(v): float(t) for t, v in zip(grid[:-1], (grid[:-1] * 1000).long())}
        self.times[int(t_cond * 1000)] = t_cond

    def forward(self, hidden, timestep):
        t = torch.tensor(
            [[self.times[int(v)] for v in row] for row in timestep.reshape(timestep.shape[0], -1)]
        )
        t = t.reshape(*timestep.shape, 1, 1, 1, 1).to(hidden.dtype)
        x, y = hidden[..., :16, :, :, :], hidden[..., 16:32, :, :, :]
        return type("Out", (), {"sample": (x - y) / t})()


def test_windows_are_stitched_in_timeline_order():
    """With an oracle DiT each emitted segment is the decode of its own window's LQ latent: recompute every
    window independently from the schedule and compare frame by frame."""
    n, sf = 12, 4  # timeline 48 slots, 30-frame windows: first, skip, concat, last
    pipe = tiny_pipeline(lq_sample=False)
    pipe.transformer = OracleDiT(pipe.time_grid, pipe.settings.t_cond)
    video = frames(n)
    out = pipe(video, sf)
    assert len(out) == (n - 1) * sf + 1
    tiling = TilingConfig(
        **{
            k: SETTINGS[k]
            for k in (
                "tile_min_h",
                "tile_min_w",
                "tile_stride_h",
                "tile_stride_w",
                "tile_min_t",
                "vae_batch_size",
            )
        }
    )
    windows = window_schedule(n * sf, 30, 10, output_length=(n - 1) * sf + 1)
    assert [w.kind for w in windows] == ["first", "skip", "concat", "last"]
    for window in windows:
        slots = np.arange(window.start, window.start + 30)
        mask = torch.tensor((slots % sf == 0) & (slots < n * sf))
        known = torch.from_numpy(np.stack([video[s // sf] for s in slots[mask.numpy()]]))
        lq = upsample_temporal(known, mask).permute(3, 0, 1, 2)[None].float() / 127.5 - 1
        y = pipe.vae.tiled_encode(lq, tiling)
        a, b = window.keep
        pixels = pipe.vae.tiled_decode(
            chunked_to_stitched(y[:, a:b]),
            tiling,
            condition=lq[:, :, a * 10 : b * 10],
            mask=mask[None, a * 10 : b * 10],
        )
        expected = (
            ((pixels[..., :64, :64] + 1) * 127.5).clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 3, 0).numpy()
        )
        for offset, slot in enumerate(range(window.out_start, min(window.out_end, len(out)))):
            diff = np.abs(out[slot].astype(int) - expected[offset].astype(int)).max()
            assert diff <= 1, (window.kind, slot, diff)


def test_bad_inputs():
    pipe = tiny_pipeline()
    with pytest.raises(InputError, match="only 1 frame"):
        list(pipe.interpolate(frames(1), 2))
    with pytest.raises(InputError, match="between 1 and 16"):
        list(pipe.interpolate(frames(3), 17))


@pytest.mark.parametrize("height, width", [(60, 64), (37, 50), (5, 3)])
def test_sizes_that_are_not_multiples_of_8_are_padded_and_cropped_back(height, width):
    """The VAE needs multiples of 8: frames are padded by edge rows/columns inside and every output frame is
    cropped back; the result equals running the padded video and cropping it."""
    video = moving_shapes_video(3, height, width, seed=1)
    out = tiny_pipeline(sampling_steps=1)(video, 2)
    assert len(out) == 5 and all(f.shape == (height, width, 3) for f in out)
    padded = [np.pad(f, ((0, -height % 8), (0, -width % 8), (0, 0)), mode="edge") for f in video]
    reference = tiny_pipeline(sampling_steps=1)(padded, 2)
    for got, full in zip(out, reference):
        np.testing.assert_array_equal(got, full[:height, :width])


def _live_tensor_bytes() -> int:
    import gc

    storages = {}
    for obj in gc.get_objects():
        if type(obj) is torch.Tensor or type(obj) is torch.nn.Parameter:
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def test_live_tensors_do_not_grow_with_video_length():
    """Between emitted frames the pipeline holds the same tensors whatever the length: the carried context
    latents, one pending segment, one window's condition. Counted exactly (every live tensor storage), which
    unlike resident memory does not depend on the allocator's caching; `benchmarks/sampler.py` prints the
    resident-memory growth too."""
    pipe = tiny_pipeline(sampling_steps=1)
    scene = MovingShapes(64, 64, seed=0)
    base = _live_tensor_bytes()

    def held(n: int) -> int:
        top = 0
        for index, _ in enumerate(pipe.interpolate((scene.frame(i) for i in range(n)), 4)):
            if index % 5 == 0:
                top = max(top, _live_tensor_bytes() - base)
        return top

    one_window, six_windows, eleven_windows = held(7), held(30), held(50)
    assert six_windows == eleven_windows, (six_windows, eleven_windows)
    assert six_windows < 2 * one_window, (one_window, six_windows)


def test_frames_held_stay_bounded_by_the_windows_in_flight(monkeypatch):
    from ldf_vfi.pipelines import ldf

    held = []
    original = ldf._FrameBuffer.has

    def spy(self, index):
        result = original(self, index)
        held.append(len(self._frames))
        return result

    monkeypatch.setattr(ldf._FrameBuffer, "has", spy)
    scene = frames(40)
    count = sum(1 for _ in tiny_pipeline(sampling_steps=1).interpolate(iter(scene), 4))
    assert count == 157
    # a 30-slot window at sf 4 spans 8 input frames; at most two windows' worth (plus look-ahead) is held
    assert max(held) <= 2 * 8 + 2, max(held)


# -- the ldf backend through generate.py, with tiny checkpoints in the official formats -------------------

TINY_FLAGS = ["--num_frames", "30", "--tile_min_t", "10", "--tile_min_h", "48", "--tile_min_w", "48",
              "--tile_stride_h", "32", "--tile_stride_w", "32", "--vae_batch_size", "8", "--sampling_steps", "2"]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """``model/transformer/`` (diffusers format, the released config's attention type) + a cond-v2 .pth."""
    from ldf_vfi.models.vae import save_original_state_dict

    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    LDFTransformer3DModel(**tiny_config()).save_pretrained(root / "model" / "transformer")
    save_original_state_dict(tiny_vae(conditional=True), root / "Wan2.1_VAE_cond_v2.pth")
    return root


def test_from_pretrained_applies_the_release_attention_type(tiny_weights):
    pipe = LDFVFIPipeline.from_pretrained(tiny_weights / "model", tiny_weights / "Wan2.1_VAE_cond_v2.pth")
    assert pipe.transformer.config.attention_type == "slide_chunk_all_block_2x1x1"
    assert pipe.vae.conditional and pipe.dtype == torch.float32
    full = LDFVFIPipeline.from_pretrained(
        tiny_weights / "model", tiny_weights / "Wan2.1_VAE_cond_v2.pth", attention_type="full"
    )
    assert full.transformer.config.attention_type == "full"


def test_generate_with_the_ldf_backend(tmp_path, tiny_weights):
    from ldf_vfi.io import probe, read_frames

    from conftest import write_video

    video = write_video(tmp_path / "clip.mp4", frames(5))
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "generate.py"), "--data", str(video), "--temporal_sf", "4",
         "--model_path", str(tiny_weights / "model"), "--vae_path", str(tiny_weights / "Wan2.1_VAE_cond_v2.pth"),
         "--output_dir", str(tmp_path / "out"), *TINY_FLAGS],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    info = probe(tmp_path / "out" / "clip" / "pred.mp4")
    assert (info.num_frames, info.fps, info.width, info.height) == (17, 100, 64, 64)
    assert yaml_backend(tmp_path / "out" / "clip" / "generate_config.yaml") == "ldf"
    assert len(read_frames(tmp_path / "out" / "clip" / "pred.mp4")) == 17


def yaml_backend(path):
    import yaml

    return yaml.safe_load(path.read_text())["backend"]


@pytest.mark.parametrize(
    "make_vae, message",
    [
        (lambda d: d / "Wan2.1_VAE_cond_v2.pth", None),
        (lambda d: _plain_vae(d), "looks like a plain Wan2.1_VAE.pth"),
        (lambda d: _not_a_vae(d), "not a Wan2.1 VAE checkpoint"),
    ],
)
def test_wrong_checkpoints_are_one_line_errors(tmp_path, tiny_weights, make_vae, message):
    from conftest import write_video

    if message is None:  # the transformer folder given as the VAE
        vae, message = (
            tiny_weights / "model" / "transformer" / "config.json",
            "does not hold a flat state dict|cannot|not a",
        )
    else:
        vae = make_vae(tmp_path)
    video = write_video(tmp_path / "clip.mp4", frames(3))
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "generate.py"), "--data", str(video), "--model_path",
         str(tiny_weights / "model"), "--vae_path", str(vae), "--output_dir", str(tmp_path / "out"), *TINY_FLAGS],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[
        -2000:
    ]
    import re

    assert re.search(message, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def _plain_vae(d):
    from ldf_vfi.models.vae import save_original_state_dict

    save_original_state_dict(tiny_vae(conditional=False), d / "plain.pth")
    return d / "plain.pth"


def _not_a_vae(d):
    torch.save({"weight": torch.zeros(3)}, d / "other.pth")
    return d / "other.pth"


SP_SCRIPT = """
import sys, numpy as np, torch
sys.path[:0] = [{root!r}, {root!r} + "/tests"]
torch.set_num_threads(1)
from ldf_vfi.data.synthetic import MovingShapes
from ldf_vfi.distributed import process_info
from ldf_vfi.pipelines.ldf import LDFVFIPipeline
from test_ldf_pipeline import SETTINGS, frames
pipe = LDFVFIPipeline.from_pretrained({model!r}, {vae!r}, sp_size=int(sys.argv[1]), **SETTINGS)
if process_info().rank == 1:  # this rank's detector never fires: the group follows its first rank's cuts
    pipe.settings.scene_cut_threshold = 1.0
out = np.stack(pipe(frames(3) + MovingShapes(64, 64, seed=20).frames(3), 4))  # two shots
if process_info().rank == 0:
    assert pipe.scene_cuts == [2], pipe.scene_cuts
    np.save(sys.argv[2], out)
"""


@pytest.mark.distributed
def test_sequence_parallel_sp2_equals_sp1(tmp_path, tiny_weights):
    script = tmp_path / "sp.py"
    script.write_text(
        SP_SCRIPT.format(
            root=str(REPO_ROOT),
            model=str(tiny_weights / "model"),
            vae=str(tiny_weights / "Wan2.1_VAE_cond_v2.pth"),
        )
    )
    single = subprocess.run(
        [sys.executable, str(script), "1", str(tmp_path / "sp1.npy")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29613",
    ]
    double = subprocess.run(
        [*torchrun, str(script), "2", str(tmp_path / "sp2.npy")], capture_output=True, text=True, timeout=600
    )
    assert double.returncode == 0, double.stderr[-3000:]
    sp1, sp2 = np.load(tmp_path / "sp1.npy"), np.load(tmp_path / "sp2.npy")
    assert sp1.shape == sp2.shape == (21, 64, 64, 3)
    assert np.abs(sp1.astype(int) - sp2.astype(int)).max() <= 1
