"""Shared fixtures. Tests that write anything work on a copy of the repository, never on it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# What a copy needs for tito to export, run checkpoints and import tinytorch.
_COPIED = ("modules", "checkpoints", "tinytorch", "tito", "curriculum.toml", "pyproject.toml")


@pytest.fixture
def repo_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the repository's course files in a temporary folder, set as TINYTORCH_ROOT."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in _COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", ".tito"))
        elif source.is_file():
            shutil.copy2(source, root / name)
    monkeypatch.setenv("TINYTORCH_ROOT", str(root))
    return root
