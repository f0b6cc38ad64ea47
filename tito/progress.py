"""The learner's progress, kept in `.tito/progress.json` (git-ignored).

Two records: modules completed (`tito module complete`) and the last result
of each checkpoint run. The file is written atomically. A file tito cannot
read is reported and left as it is: it may hold the only record of someone's
progress, so tito never overwrites it on its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .checkpoints import CheckpointResult
from .curriculum import Checkpoint, Module
from .errors import TitoError
from .export import write_atomic

FOLDER = ".tito"
FILE = "progress.json"
FORMAT = 1


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class Progress:
    path: Path
    completed: dict[str, dict] = field(default_factory=dict)  # module folder -> {at, checkpoint, tested}
    checkpoints: dict[str, dict] = field(default_factory=dict)  # checkpoint id -> {passed, at, seconds, summary}

    @classmethod
    def load(cls, root: Path) -> "Progress":
        path = Path(root) / FOLDER / FILE
        if not path.exists():
            return cls(path)
        rel = f"{FOLDER}/{FILE}"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"expected an object with \"format\": {FORMAT}")
            completed, checkpoints = data.get("completed", {}), data.get("checkpoints", {})
            for records in (completed, checkpoints):
                if not isinstance(records, dict) or not all(isinstance(r, dict) for r in records.values()):
                    raise ValueError("'completed' and 'checkpoints' must map names to objects")
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise TitoError(
                f"{rel} is damaged ({err}); tito leaves it as it is.",
                f"Repair it by hand, or move it aside (mv {rel} {rel}.bak) to start a fresh record.",
            ) from None
        return cls(path, completed, checkpoints)

    def save(self) -> None:
        data = {"format": FORMAT, "completed": self.completed, "checkpoints": self.checkpoints}
        self.path.parent.mkdir(exist_ok=True)
        write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def mark_completed(self, module: Module, tested: bool) -> None:
        self.completed[module.folder] = {
            "at": _now(),
            "checkpoint": module.checkpoint.id if module.checkpoint else None,
            "tested": tested,
        }

    def record(self, result: CheckpointResult) -> None:
        self.checkpoints[result.checkpoint.id] = {
            "passed": result.passed,
            "at": _now(),
            "seconds": round(result.seconds, 2),
            "summary": result.summary,
        }

    def completion(self, module: Module) -> dict | None:
        return self.completed.get(module.folder)

    def last_run(self, checkpoint: Checkpoint) -> dict | None:
        return self.checkpoints.get(checkpoint.id)
