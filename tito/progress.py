"""The learner's progress, kept in `.tito/progress.json` (git-ignored).

Three records: the last `tito module complete` of each module (passed or
failed), the last result of each checkpoint run, and the last run of each
milestone (`tito milestone run`). Each record notes the
package it was made against (the hashes of the exported files it depends on),
so a later export that changes them makes it *stale*: the status commands say
so, and `--detailed` checks again.

Every change is a locked read-modify-write (`Progress.update`), so two tito
commands at once both keep their record. The file is written atomically. A
file tito cannot read is reported and left as it is: it may hold the only
record of someone's progress, so tito never overwrites it on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator

from .checkpoints import CheckpointResult
from .curriculum import Checkpoint, Curriculum, Module
from .errors import TitoError
from .export import PACKAGE, read_manifest
from .files import write_atomic
from .locks import locked

FOLDER = ".tito"
FILE = "progress.json"
LOCK = "progress.lock"
FORMAT = 1


def package_state(root: Path, modules: list[Module]) -> dict[str, str]:
    """{tinytorch/... file: sha256 of its bytes now} for the files exported from `modules`' chapters."""
    sources = {m.dev_file(root).relative_to(root).as_posix() for m in modules}
    state = {}
    for rel, entry in read_manifest(root).items():
        if entry["source"] in sources:
            path = Path(root) / PACKAGE / rel
            state[f"{PACKAGE}/{rel}"] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
    return state


def depends_on(course: Curriculum, module: Module) -> list[Module]:
    """The chapters a module's code and checkpoint can use: itself and every one before it."""
    return list(course.modules[: course.modules.index(module) + 1])


def changed_files(root: Path, record: dict | None) -> list[str]:
    """The files of a record's package that differ now ([] when none, or when the record predates this check)."""
    if not record or not isinstance(record.get("package"), dict):
        return []
    changed = []
    for rel, digest in record["package"].items():
        path = Path(root) / rel
        now = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
        if now != digest:
            changed.append(rel)
    return changed


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass
class Progress:
    path: Path
    completed: dict[str, dict] = field(default_factory=dict)  # module folder -> {at, checkpoint, tested}
    checkpoints: dict[str, dict] = field(default_factory=dict)  # checkpoint id -> {passed, at, seconds, summary}
    milestones: dict[str, dict] = field(default_factory=dict)  # year -> {passed, at, seconds, summary, value}

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
            milestones = data.get("milestones", {})
            for records in (completed, checkpoints, milestones):
                if not isinstance(records, dict) or not all(isinstance(r, dict) for r in records.values()):
                    raise ValueError("'completed', 'checkpoints' and 'milestones' must map names to objects")
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise TitoError(
                f"{rel} is damaged ({err}); tito leaves it as it is.",
                f"Repair it by hand, or move it aside (mv {rel} {rel}.bak) to start a fresh record.",
            ) from None
        return cls(path, completed, checkpoints, milestones)

    @classmethod
    @contextlib.contextmanager
    def update(cls, root: Path) -> Iterator["Progress"]:
        """Load, let the caller change, and save, all under the lock: concurrent updates are never lost."""
        with locked(root, LOCK):
            progress = cls.load(root)
            yield progress
            progress.save()

    def save(self) -> None:
        data = {"format": FORMAT, "completed": self.completed, "checkpoints": self.checkpoints}
        if self.milestones:  # absent until the first milestone run, so older files are written back unchanged
            data["milestones"] = self.milestones
        self.path.parent.mkdir(exist_ok=True)
        write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True) + "\n")

    def mark_completed(self, module: Module, tested: bool, package: dict[str, str] | None = None) -> None:
        self.completed[module.folder] = {
            "at": _now(),
            "checkpoint": module.checkpoint.id if module.checkpoint else None,
            "tested": tested,
            "passed": True,
            "package": package or {},
        }

    def mark_failed(self, module: Module, failure: str, package: dict[str, str] | None = None) -> None:
        """A `complete` that failed replaces any earlier completion: the module is not complete now."""
        self.completed[module.folder] = {
            "at": _now(),
            "checkpoint": module.checkpoint.id if module.checkpoint else None,
            "tested": True,
            "passed": False,
            "failure": failure,
            "package": package or {},
        }

    def record(self, result: CheckpointResult, package: dict[str, str] | None = None) -> None:
        self.checkpoints[result.checkpoint.id] = {
            "passed": result.passed,
            "at": _now(),
            "seconds": round(result.seconds, 2),
            "summary": result.summary,
            "package": package or {},
        }

    def record_milestone(self, year: int | str, outcome: dict, package: dict[str, str] | None = None) -> None:
        """The last run of a milestone: passed or not, its one-line summary, and the package it ran on."""
        self.milestones[str(year)] = {
            "passed": bool(outcome["passed"]),
            "at": _now(),
            "seconds": outcome.get("seconds"),
            "summary": outcome["summary"],
            "package": package or {},
        }

    def last_milestone(self, year: int | str) -> dict | None:
        return self.milestones.get(str(year))

    def completion(self, module: Module) -> dict | None:
        """The module's completion record, if its last `complete` passed."""
        record = self.completed.get(module.folder)
        return record if record is not None and record.get("passed", True) else None

    def attempt(self, module: Module) -> dict | None:
        """The module's last `complete`, passed or failed."""
        return self.completed.get(module.folder)

    def last_run(self, checkpoint: Checkpoint) -> dict | None:
        return self.checkpoints.get(checkpoint.id)
