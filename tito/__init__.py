"""tito: the TinyTorch course tool (export, checkpoints, progress, grading)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tinytorch")
except PackageNotFoundError:  # running from a checkout that was never pip-installed
    __version__ = "0.0.0+checkout"
