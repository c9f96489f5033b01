"""Networks of LDF-VFI: the local-attention Wan2.1 DiT and the (conditional) Wan2.1 causal VAE.

Names are imported on first use (``from ldf_vfi.models import WanVAE``), so importing one submodule, e.g.
``ldf_vfi.models.tiling``, does not load diffusers' model classes.
"""

from importlib import import_module

_EXPORTS = {
    "LDFTransformer3DModel": "transformer",
    "RELEASE_ATTENTION_TYPE": "transformer",
    "CONFIG_DEFAULT_ATTENTION_TYPE": "transformer",
    "LDF_IN_CHANNELS": "transformer",
    "LATENT_CHANNELS": "transformer",
    "official_key_report": "transformer",
    "ATTENTION_TYPES": "attention",
    "ATTENTION_BACKENDS": "attention",
    "ChunkGrid": "attention",
    "WindowMask": "attention",
    "block_masks": "attention",
    "dense_attention_mask": "attention",
    "window_attention": "attention",
    "concat_condition": "_condition",
    "WanVAE": "vae",
    "CheckpointMismatchError": "vae",
    "LATENTS_MEAN": "vae",
    "LATENTS_STD": "vae",
    "save_original_state_dict": "vae",
    "TilingConfig": "tiling",
    "chunked_to_stitched": "tiling",
    "stitched_to_chunked": "tiling",
    "MaskEncoder": "mask_encoder",
    "encode_mask": "mask_encoder",
    "frame_mask_video": "mask_encoder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
