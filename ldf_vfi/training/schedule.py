"""The learning-rate schedule of the reference's trainers (EDM2-style, REFERENCE_SPEC 7.2)."""

from __future__ import annotations

import math

__all__ = ["learning_rate"]


def learning_rate(
    samples: float, batch_size: int, ref_lr: float, ref_batches: float = 0.0, rampup_Msample: float = 0.0
) -> float:
    """Learning rate after ``samples`` training samples.

    ``ref_lr * min(samples / (rampup_Msample * 1e6), 1)`` (a linear ramp; no ramp when ``rampup_Msample`` is
    0), times ``1 / sqrt(max(samples / (ref_batches * batch_size), 1))`` when ``ref_batches > 0`` (inverse
    square-root decay after ``ref_batches`` steps). The first step of a ramped run has lr 0, as in the
    reference.
    """
    lr = ref_lr
    if ref_batches > 0:
        lr /= math.sqrt(max(samples / (ref_batches * batch_size), 1.0))
    if rampup_Msample > 0:
        lr *= min(samples / (rampup_Msample * 1e6), 1.0)
    return lr
