"""Loading the released files keeps one copy of the weights: the transformer's safetensors file is mapped into
memory, not read into a second buffer (the fp32 DiT is 5.6 GB; benchmarks/real_size_smoke.py measures it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from ldf_vfi.models.transformer import LDFTransformer3DModel, tiny_config
from ldf_vfi.models.vae import save_original_state_dict, tiny_vae
from ldf_vfi.pipelines.ldf import LDFVFIPipeline

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mapped_ranges(path: Path) -> list[tuple[int, int]]:
    """Address ranges where this process maps ``path`` (Linux ``/proc/self/maps``)."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and Path(fields[5]) == path:
            start, stop = (int(x, 16) for x in fields[0].split("-"))
            ranges.append((start, stop))
    return ranges


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_the_pipeline_maps_the_transformer_file_instead_of_copying_it(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "model" / "transformer"
    LDFTransformer3DModel(**tiny_config(attention_type="slide_chunk_all_block")).save_pretrained(folder)
    save_original_state_dict(tiny_vae(conditional=True), tmp_path / "vae.pth")
    pipe = LDFVFIPipeline.from_pretrained(tmp_path / "model", tmp_path / "vae.pth", device="cpu")
    ranges = mapped_ranges((folder / "diffusion_pytorch_model.safetensors").resolve())
    assert ranges, "the safetensors file is not mapped"
    outside = [
        name
        for name, p in pipe.transformer.named_parameters()
        if not any(start <= p.data_ptr() < stop for start, stop in ranges)
    ]
    assert not outside, f"{len(outside)} parameters were copied out of the file, e.g. {outside[:3]}"
