"""tito: the TinyTorch course tool (export, checkpoints, progress, grading)."""

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _version() -> str:
    """The checkout's pyproject.toml version when run from a checkout, else the installed one."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        pass
    try:
        return version("tinytorch")
    except PackageNotFoundError:
        return "unknown"


__version__ = _version()
