"""Evaluation harness: the SNU-FILM / X4K protocol, the run loop, result tables and contact sheets.

- :mod:`.protocol` which frames are inputs / scored / FVD sequences (pure functions)
- :mod:`.scoring` the metrics of a run, built from weight flags
- :mod:`.aggregation` per-video numbers and pooled FVD: the reference's arithmetic or plain means
- :mod:`.runner` the streaming, resumable, multi-process loop (:func:`run_evaluation`)
- :mod:`.results` per-clip records, CSV / JSON / markdown tables; :mod:`.compare` tables over several runs
- :mod:`.contact_sheet` one PNG per clip; :mod:`.baselines` frame repetition and blending
- :mod:`.cli` the ``evaluate.py`` flags
"""

from .protocol import ClipPlan, plan_clip
from .results import compare_runs, render_table
from .runner import EvalSettings, evaluate_clip, find_clips, run_evaluation
from .scoring import MetricSuite, WeightPaths

__all__ = [
    "ClipPlan",
    "EvalSettings",
    "MetricSuite",
    "WeightPaths",
    "compare_runs",
    "evaluate_clip",
    "find_clips",
    "plan_clip",
    "render_table",
    "run_evaluation",
]
