"""ldf-vfi: Local Diffusion Forcing for video frame interpolation.

A clean re-implementation of LDF-VFI that loads the official weights unchanged, plus a classical optical
flow backend that needs no weights and no GPU.
"""

__version__ = "0.1.0"
