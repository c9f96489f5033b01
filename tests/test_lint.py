"""The code base stays ruff-clean (lint rules in pyproject.toml)."""

import shutil
import subprocess

import pytest

from conftest import REPO_ROOT


@pytest.mark.skipif(
    shutil.which("ruff") is None, reason="ruff is not installed (pip install -r requirements.txt)"
)
def test_ruff_check_passes():
    result = subprocess.run(
        ["ruff", "check", "--no-cache", "."], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
