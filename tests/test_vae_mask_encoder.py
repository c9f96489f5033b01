"""The 4-channel mask code (REFERENCE_SPEC.md 2.3), checked by hand."""

import pytest
import torch

from ldf_vfi.models.mask_encoder import MaskEncoder, encode_mask, frame_mask_video
from ldf_vfi.models.tiling import TilingConfig


def test_mask_encoder_layout_by_hand():
    flags = torch.tensor([1.0, 0, 0, 1, 0])  # frames 0..4 of one VAE group
    mask = flags.view(1, 1, 5, 1, 1).expand(1, 1, 5, 16, 16)
    code = MaskEncoder()(mask)
    assert code.shape == (1, 4, 2, 2, 2)
    assert code[0, :, 0, 0, 0].tolist() == [1, 1, 1, 1]  # frame 0, repeated 4 times
    assert code[0, :, 1, 0, 0].tolist() == [0, 0, 1, 0]  # frames 1, 2, 3, 4


def test_mask_encoder_takes_the_top_left_pixel_of_each_block():
    mask = torch.rand(1, 1, 9, 16, 24, generator=torch.Generator().manual_seed(0))
    code = MaskEncoder()(mask)
    assert code.shape == (1, 4, 3, 2, 3)
    corners = mask[0, 0, :, ::8, ::8]
    assert torch.equal(code[0, :, 0], corners[0].expand(4, -1, -1))
    assert torch.equal(code[0, :, 1], corners[1:5])
    assert torch.equal(code[0, :, 2], corners[5:9])


def test_tiled_mask_code_by_hand():
    cfg = TilingConfig(tile_min_h=64, tile_min_w=64, tile_stride_h=48, tile_stride_w=48, tile_min_t=10)
    flags = torch.tensor([[1, 0, 0, 1, 0, 0, 0, 1, 1, 0]], dtype=torch.bool)
    mask = frame_mask_video(flags, 80, 80)
    # per latent frame (columns) the 4 channels (rows): group 0 = frames 0 | 1-4, group 1 = frames 5 | 6-9
    per_frame = torch.tensor([[1, 0, 0, 0], [1, 0, 0, 1], [1, 1, 0, 1], [1, 0, 0, 0]], dtype=torch.float32)

    stitched = encode_mask(mask, cfg, layout="stitched")
    assert stitched.shape == (1, 1, 4, 4, 10, 10) and stitched.dtype == torch.float32
    assert torch.equal(stitched[0, 0], per_frame[..., None, None].expand(-1, -1, 10, 10))

    chunked = encode_mask(mask, cfg)
    assert chunked.shape == (1, 1, 2, 2, 4, 4, 6, 6)
    real = torch.ones(2, 2, 6, 6)  # frame 80 px: the second tile row/column holds pixels 48..79 = 4 latents
    real[1, :, 4:] = 0
    real[:, 1, :, 4:] = 0
    assert torch.equal(chunked[0, 0], per_frame[None, None, :, :, None, None] * real[:, :, None, None])


def test_mask_shape_is_checked():
    with pytest.raises(ValueError, match="1 \\+ 4k"):
        MaskEncoder()(torch.ones(1, 1, 6, 8, 8))
