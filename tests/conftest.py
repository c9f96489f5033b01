"""Shared test helpers. Each fixture is named for the part of the package it serves."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def dit_single_thread():
    """Transformer/attention tests use tiny tensors: one thread avoids oversubscribing shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
