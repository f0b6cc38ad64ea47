"""Writing a file so that a reader sees the old contents or the new, never half of either."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write `data` (text goes out as UTF-8, line endings untouched) via a temporary file and a rename.

    An existing file keeps its mode (it may be read-only: the rename replaces it all the
    same). A new file gets the mode any new file gets: 0o666 less the user's umask.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    mode = path.stat().st_mode & 0o7777 if path.exists() else None
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # O_EXCL: never write through a file (or link) that is already there; 0o666 is masked by the umask.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
