"""A lock for tito's read-modify-write of shared files (the progress record, the export manifest)."""

from __future__ import annotations

import contextlib
import fcntl
from pathlib import Path
from typing import Iterator

from .errors import TitoError

FOLDER = ".tito"


@contextlib.contextmanager
def locked(root: Path, name: str) -> Iterator[None]:
    """Hold an exclusive lock on `.tito/<name>`; another tito process waits until it is released."""
    folder = Path(root) / FOLDER
    try:
        folder.mkdir(exist_ok=True)
        handle = open(folder / name, "a+")
    except OSError as err:
        raise TitoError(
            f"Cannot write {FOLDER}/{name} ({err.strerror or err}), so tito cannot keep its records safe.",
            f"Make {folder} writable, then try again.",
        ) from None
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
