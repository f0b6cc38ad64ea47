"""The course's module and checkpoint list, read from curriculum.toml.

This is the only place that knows which chapters exist. A chapter counts as
*written* when its source `modules/<folder>/<name>_dev.py` exists; until then
its README.md stands in for it in the book.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from .errors import TitoError

import tomllib

CURRICULUM_FILE = "curriculum.toml"


@dataclass(frozen=True)
class Checkpoint:
    """A chapter's capability test: chapter NN_name has checkpoint NN, file checkpoints/checkpoint_NN_name.py."""

    number: int
    name: str
    question: str
    module_folder: str

    @property
    def id(self) -> str:
        return f"{self.number:02d}_{self.name}"

    @property
    def filename(self) -> str:
        return f"checkpoint_{self.id}.py"

    def path(self, root: Path) -> Path:
        return Path(root) / "checkpoints" / self.filename


@dataclass(frozen=True)
class Module:
    folder: str
    title: str
    builds: str
    exports: tuple[str, ...]  # every package module the chapter writes; the first is its `#| default_exp`
    checkpoint: Checkpoint | None
    part: str = ""

    @property
    def export(self) -> str:
        """The module the chapter's `#| default_exp` names."""
        return self.exports[0]

    @property
    def number(self) -> str:
        return self.folder.split("_", 1)[0]

    @property
    def name(self) -> str:
        return self.folder.split("_", 1)[1]

    def dir(self, root: Path) -> Path:
        return Path(root) / "modules" / self.folder

    def dev_file(self, root: Path) -> Path:
        return self.dir(root) / f"{self.name}_dev.py"

    def readme(self, root: Path) -> Path:
        return self.dir(root) / "README.md"

    def is_written(self, root: Path) -> bool:
        return self.dev_file(root).is_file()

    def toc_entry(self, root: Path) -> str:
        """The page the book shows for this module: the chapter, or its README until written."""
        page = self.dev_file(root) if self.is_written(root) else self.readme(root)
        return page.relative_to(root).with_suffix("").as_posix()


@dataclass(frozen=True)
class Part:
    """A part of the book: its chapters (the modules that name it), then its other pages."""

    caption: str
    numbered: bool = False
    pages: tuple[str, ...] = ()


@dataclass(frozen=True)
class Curriculum:
    root: Path
    modules: tuple[Module, ...]
    parts: tuple[Part, ...] = ()
    book_root: str = ""

    def chapters_of(self, part: Part) -> list[Module]:
        return [m for m in self.modules if m.part == part.caption]

    @property
    def checkpoints(self) -> tuple[Checkpoint, ...]:
        return tuple(m.checkpoint for m in self.modules if m.checkpoint is not None)

    def written_modules(self) -> list[Module]:
        return [m for m in self.modules if m.is_written(self.root)]

    def module(self, name: str) -> Module:
        """Find a module by `02_tensor`, `02`, `2` or `tensor`."""
        key = name.strip().lower().rstrip("/")
        key = key.removeprefix("modules/")
        for m in self.modules:
            if key in (m.folder, m.number, m.name) or (key.isdigit() and int(key) == int(m.number)):
                return m
        names = [m.folder for m in self.modules] + [m.name for m in self.modules]
        close = difflib.get_close_matches(key, names, n=1)
        guess = ""
        if close:
            match = next(m for m in self.modules if close[0] in (m.folder, m.name))
            guess = f" Did you mean {match.folder}?"
        raise TitoError(
            f"Unknown module '{name}'.{guess}",
            "Run 'tito module status' to list modules.",
        )

    def checkpoint(self, number: str | int) -> Checkpoint:
        text = str(number).strip()
        for cp in self.checkpoints:
            if text in (cp.id, cp.name) or (text.isdigit() and int(text) == cp.number):
                return cp
        numbers = [cp.number for cp in self.checkpoints]
        span = f"from {min(numbers):02d} to {max(numbers):02d}" if numbers else "nowhere: none is defined"
        raise TitoError(
            f"Unknown checkpoint '{number}'; checkpoints run {span}, one per chapter, numbered as the chapter.",
            "Run 'tito checkpoint status' to list them.",
        )

    def module_of(self, checkpoint: Checkpoint) -> Module:
        return next(m for m in self.modules if m.folder == checkpoint.module_folder)

    def next_module(self, module: Module) -> Module | None:
        index = self.modules.index(module)
        return self.modules[index + 1] if index + 1 < len(self.modules) else None


def find_root(start: Path | None = None) -> Path:
    """The project root: $TINYTORCH_ROOT, else the nearest folder holding curriculum.toml."""
    if os.environ.get("TINYTORCH_ROOT"):
        root = Path(os.environ["TINYTORCH_ROOT"]).resolve()
        if (root / CURRICULUM_FILE).is_file():
            return root
        raise TitoError(f"TINYTORCH_ROOT={root} holds no {CURRICULUM_FILE}.", "Point it at a TinyTorch checkout.")
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CURRICULUM_FILE).is_file():
            return folder
    # An editable install: the checkout this tool was installed from.
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / CURRICULUM_FILE).is_file():
        return checkout
    raise TitoError(
        f"No {CURRICULUM_FILE} in {here} or any folder above it.",
        "Run tito inside your TinyTorch checkout.",
    )


def _checkpoint(folder: str, entry: dict, path: Path, index: int) -> Checkpoint:
    """The checkpoint of chapter `folder`: its number and name are the folder's, so they cannot disagree."""
    number, _, name = folder.partition("_")
    if not number.isdigit() or not name:
        raise TitoError(f"{path}: [[module]] entry {index} has folder {folder!r}, not NN_name.", "Name module folders like 02_tensor.")
    unknown = sorted(set(entry) - {"question"})
    if unknown:
        raise TitoError(
            f"{path}: [[module]] entry {index} ({folder}) sets {', '.join(unknown)} in its checkpoint; only 'question' belongs there.",
            "A checkpoint's number and name are its chapter's folder's.",
        )
    return Checkpoint(int(number), name, entry["question"], folder)


def load(root: Path | None = None) -> Curriculum:
    root = Path(root).resolve() if root is not None else find_root()
    path = root / CURRICULUM_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TitoError(f"{path} not found.", "Run tito inside your TinyTorch checkout.") from None
    except tomllib.TOMLDecodeError as err:
        raise TitoError(f"{path}: {err}.") from None
    parts = _parts(data, path)
    captions = [part.caption for part in parts]
    modules = []
    for index, entry in enumerate(data.get("module", []), start=1):
        try:
            cp = entry.get("checkpoint")
            checkpoint = _checkpoint(entry["folder"], cp, path, index) if cp else None
            # `export = "core.demo"` is short for `exports = ["core.demo"]` (a chapter that writes one file).
            exports = entry["exports"] if "exports" in entry or "export" not in entry else [entry["export"]]
            if isinstance(exports, str) or not exports or not all(isinstance(e, str) and e for e in exports):
                raise TitoError(f"{path}: [[module]] entry {index} ({entry['folder']}) has exports = {exports!r}.",
                                'Write a list of package modules, the `#| default_exp` one first: exports = ["core.tensor"].')
            # A curriculum without [[part]] entries has no book (a test course); with them, every chapter names one.
            part = entry["part"] if captions else entry.get("part", "")
            if captions and part not in captions:
                raise TitoError(f"{path}: [[module]] entry {index} ({entry['folder']}) names part {part!r}, which no [[part]] has.",
                                f"Use one of: {', '.join(captions)}; or add a [[part]] with that caption.")
            modules.append(Module(entry["folder"], entry["title"], entry["builds"], tuple(exports), checkpoint, part))
        except KeyError as err:
            raise TitoError(
                f"{path}: [[module]] entry {index} has no {err.args[0]!r}.",
                "Each entry needs folder, part, title, builds, exports (see the comment at the top of the file).",
            ) from None
    order = [captions.index(m.part) for m in modules] if captions else []
    if order != sorted(order):
        late = next(m for m, a, b in zip(modules[1:], order, order[1:]) if b < a)
        raise TitoError(f"{path}: {late.folder} is in part {late.part!r}, which comes before the part of the chapter above it.",
                        "Chapters appear in the book in course order: keep each part's chapters together, parts in order.")
    book = data.get("book", {})
    return Curriculum(root, tuple(modules), parts, str(book.get("root", "")))


def _parts(data: dict, path: Path) -> tuple[Part, ...]:
    declared: list[Part] = []
    for index, entry in enumerate(data.get("part", []), start=1):
        caption = entry.get("caption")
        pages = entry.get("pages", [])
        if not isinstance(caption, str) or not caption:
            raise TitoError(f"{path}: [[part]] entry {index} has no caption.", 'Give it one: caption = "Foundations".')
        if isinstance(pages, str) or not all(isinstance(p, str) and p for p in pages):
            raise TitoError(f"{path}: [[part]] {caption!r} has pages = {pages!r}.",
                            'Write a list of book pages without their suffix: pages = ["book/results/cifar10"].')
        if caption in [p.caption for p in declared]:
            raise TitoError(f"{path}: two [[part]] entries are captioned {caption!r}.", "Give each part its own caption.")
        declared.append(Part(caption, bool(entry.get("numbered", False)), tuple(pages)))
    return tuple(declared)
