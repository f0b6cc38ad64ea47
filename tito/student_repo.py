"""A student starter repository: the course as students get it, without the answers they have not reached.

`write(root, target, through)` makes a fresh git repository at `target` holding:

- modules/: every chapter; chapters up to `through` complete, every later one as its
  exercise version (tito/solutions.py's `exercise_version`: code regions stubbed, answer
  keys cleared, hidden tests removed), with each chapter's README;
- tinytorch/: exported by tito/export.py from exactly those chapter files (so later
  chapters' functions are stubs that raise when called, and the package imports);
- tito/, checkpoints/, curriculum.toml, pyproject.toml, .gitignore: what `pip install -e .`
  and `tito module test|complete` need;
- README.md with the two set-up commands, and solutions.toml, which records how far the
  solutions go.

Left out, because they carry chapter code or are for the course's own developers:
tests/ (reference implementations and torch comparisons), book/ (the site, built by the
instructor), examples/ and benchmarks/ (complete models in tinytorch and PyTorch),
binder/, .ci/ and the Makefile.

Every build ends with `leaks()`: each line of every solution region, answer key and
hidden test of the chapters after `through` is searched for in every file written; one
hit and nothing is kept. `release(root, target, through)` later replaces the next
chapters with their complete versions and commits that as one commit.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .curriculum import Curriculum, Module
from .errors import TitoError
from .export import PACKAGE, export_source
from .solutions import BEGIN, END, HIDDEN_BEGIN, HIDDEN_END, exercise_version

STATE_FILE = "solutions.toml"
COPIED = ("tito", "curriculum.toml", "pyproject.toml", ".gitignore")  # and checkpoints/, file by file
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".tito", "*.ipynb", ".ipynb_checkpoints")
# Lines that say nothing about a solution: keywords alone, brackets, a name set to an empty literal.
_TRIVIAL = re.compile(
    r"^(?:[)\]}]+[,:]?|(?:else|try|finally|pass|break|continue|return|return None|\.\.\.):?"
    r"|[\w.]+\s*=\s*(?:None|True|False|0|0\.0|1|\[\]|\{\}|\(\)|''|\"\"))$"
)

README = """# TinyTorch: {title}

Build a deep learning framework in NumPy, one chapter at a time. This is your
own copy of the course: each chapter in `modules/` is a notebook-style Python
file (jupytext percent format) in which you write the framework's code, and
`tinytorch/` is the package made from those chapters.

## Set up

You need Python 3.11 or newer and `git`.

```bash
python3 -m venv .venv && source .venv/bin/activate
pip install -e ".[dev]"
```

## Work through a chapter

{solved}

```bash
tito module test 03_activations       # run the chapter: its tests name the first failure and its line
tito module complete 03_activations   # export your code into tinytorch/ and run its checkpoint
tito module status                    # every chapter and where it stands
```

Open a chapter in Jupyter (`jupyter lab`, then open the `.py` file as a
notebook) or in any editor. Each place to write code says what to implement
and raises `NotImplementedError` until you do; the questions at the end of a
chapter have a cell for your answer. Once `complete` passes, later chapters
run on your code.

## When solutions are released

Your instructor adds the solutions of chapters as the course moves on. Commit
your work, then `git pull`. Where you finished a chapter yourself, git may
report a conflict in it and in its `tinytorch/` file: keep yours
(`git checkout --ours FILE`) or take the solution (`git checkout --theirs FILE`),
`git add` them, commit, and run `tito module export --all`.
"""


@dataclass
class StudentRepo:
    target: Path
    through: Module
    complete: list[str]
    exercises: list[str]
    package_files: int
    commit: str
    held_back: list[str]


def _number(module: Module) -> int:
    return int(module.number)


def chapter_text(root: Path, module: Module, through: Module) -> str:
    """The chapter as the student repository holds it: complete up to `through`, an exercise after."""
    text = module.dev_file(root).read_text(encoding="utf-8")
    if _number(module) <= _number(through):
        return text
    exercise, _ = exercise_version(text, module.folder)
    return exercise


def secret_lines(text: str) -> set[str]:
    """Every line (stripped) inside a chapter's solution regions (code and answer keys) and hidden tests."""
    found, inside = set(), False
    for line in text.splitlines():
        if BEGIN.match(line) or HIDDEN_BEGIN.match(line):
            inside = True
        elif END.match(line) or HIDDEN_END.match(line):
            inside = False
        elif inside and line.strip() and not _TRIVIAL.match(line.strip()):
            found.add(line.strip())
    return found


def secrets(course: Curriculum, through: Module) -> dict[str, str]:
    """{line: chapter} for the secret lines of the chapters after `through`.

    A secret line that an exercise version itself shows (a line repeated outside the
    region, such as `return out`) or that a chapter up to `through` holds is public anyway,
    so it is not counted.
    """
    root = course.root
    secret: dict[str, str] = {}
    public: set[str] = set()
    for module in course.written_modules():
        text = module.dev_file(root).read_text(encoding="utf-8")
        if _number(module) <= _number(through):
            public |= {l.strip() for l in text.splitlines()}
            continue
        public |= {l.strip() for l in exercise_version(text, module.folder)[0].splitlines()}
        for line in secret_lines(text):
            secret.setdefault(line, module.folder)
    return {line: folder for line, folder in secret.items() if line not in public}


def _hits(path: Path, secret: dict[str, str], shown: str) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (UnicodeDecodeError, OSError):
        return []
    return [f"{shown}:{number}: a line of {secret[line.strip()]}'s solution: {line.strip()[:80]}"
            for number, line in enumerate(lines, start=1) if line.strip() in secret]


def leaks(course: Curriculum, target: Path, through: Module) -> list[str]:
    """`file:line: ...` for every line in `target` that is a secret line of a chapter after `through`."""
    secret = secrets(course, through)
    found = []
    for path in sorted(p for p in target.rglob("*") if p.is_file() and ".git" not in p.relative_to(target).parts):
        found += _hits(path, secret, path.relative_to(target).as_posix())
    return found


def sync_checkpoints(course: Curriculum, target: Path, through: Module) -> list[str]:
    """Copy the course's checkpoint files into `target`, holding back (and removing) any that holds a
    later chapter's solution line (a reference implementation); return the held-back file names."""
    secret = secrets(course, through)
    source, dest = course.root / "checkpoints", target / "checkpoints"
    dest.mkdir(exist_ok=True)
    held = []
    for path in sorted(source.glob("*.py")):
        if _hits(path, secret, path.name):
            held.append(path.name)
            (dest / path.name).unlink(missing_ok=True)
        else:
            shutil.copyfile(path, dest / path.name)
    return held


def check_target(root: Path, target: Path) -> Path:
    """The target folder, resolved; refuse a non-empty folder or one inside the course repository."""
    target = Path(target).expanduser().resolve()
    root = Path(root).resolve()
    if target == root or target.is_relative_to(root):
        raise TitoError(f"{target} is inside the course repository {root}.",
                        "Name a folder outside it, for example ../tinytorch-student.")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise TitoError(f"{target} already exists and is not empty; nothing was written.",
                        "Name a new or empty folder.")
    return target


def _git(folder: Path, *args: str) -> str:
    env = dict(os.environ)
    # A commit needs an author; use the instructor's git identity, or a neutral one if none is set.
    for key, value in (("GIT_AUTHOR_NAME", "TinyTorch course"), ("GIT_AUTHOR_EMAIL", "course@tinytorch.invalid")):
        env.setdefault(key, value)
    env.setdefault("GIT_COMMITTER_NAME", env["GIT_AUTHOR_NAME"])
    env.setdefault("GIT_COMMITTER_EMAIL", env["GIT_AUTHOR_EMAIL"])
    if shutil.which("git") is None:
        raise TitoError("git is not installed, and the student repository is a git repository.", "Install git.")
    done = subprocess.run(["git", *args], cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise TitoError(f"git {' '.join(args)} failed in {folder}: {detail[-1] if detail else 'no output'}")
    return done.stdout


def _export_all(course: Curriculum, target: Path) -> int:
    """Export every chapter file in `target` into `target`/tinytorch; return the number of package files."""
    package = target / PACKAGE
    for init in sorted((course.root / PACKAGE).rglob("__init__.py")):
        dest = package / init.relative_to(course.root / PACKAGE)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(init, dest)
    files = 0
    for module in course.written_modules():
        result = export_source(target, module.dev_file(target))
        files += len(result.written) + len(result.unchanged)
    return files


def grading_package(course: Curriculum, target: Path) -> Path:
    """`target`/tinytorch: the course's package, generated files and all, for autograding to export a
    submission's own chapter over (so importing that chapter from tinytorch gives the student's code)."""
    shutil.copytree(course.root / PACKAGE, target / PACKAGE, ignore=_IGNORED)
    return target


def _check_imports(target: Path) -> None:
    """Every module of the student package imports (stubs raise only when called)."""
    script = (
        "import importlib, pathlib, sys\n"
        "root = pathlib.Path(sys.argv[1])\n"
        "for path in sorted((root / 'tinytorch').rglob('*.py')):\n"
        "    parts = path.relative_to(root).with_suffix('').parts\n"
        "    name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as err:\n"
        "        print(f'{name}: {type(err).__name__}: {err}'); sys.exit(1)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(target), MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, "-c", script, str(target)], cwd=target, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        detail = (done.stdout + done.stderr).strip().splitlines()
        raise TitoError(f"The student package does not import: {detail[-1] if detail else 'no output'}",
                        "An exported cell calls a stubbed function at import time; move that call into a function.")


def _readme(course: Curriculum, through: Module, held: list[str]) -> str:
    complete = [m for m in course.modules if _number(m) <= _number(through)]
    later = [m for m in course.modules if _number(m) > _number(through)]
    solved = (f"Chapters {complete[0].folder} to {through.folder} are complete (their solutions are released); "
              if len(complete) > 1 else f"Chapter {through.folder} is complete; ")
    solved += (f"{later[0].folder} to {later[-1].folder} are yours to write." if later
               else "every chapter's solution is released.")
    if held:
        chapters = [m.folder for m in course.modules if m.checkpoint and m.checkpoint.filename in held]
        solved += (f"\n\nThe checkpoints of {', '.join(chapters)} come with their solutions (they hold reference "
                   "code); until then, finish those chapters with `tito module complete NN --skip-test`.")
    return README.format(title="student repository", solved=solved)


def _state(through: Module) -> str:
    return ("# Written by 'tito course student-repo' and 'tito course release-solutions'.\n"
            "# Chapters up to this one are complete; every later chapter is an exercise.\n"
            f'solutions_through = "{through.folder}"\n')


def read_state(course: Curriculum, target: Path) -> Module:
    path = target / STATE_FILE
    if not path.is_file():
        raise TitoError(f"{target} has no {STATE_FILE}, so it is not a student repository made by tito.",
                        "Make one with 'tito course student-repo DIR --solutions-through NN'.")
    match = re.search(r'^solutions_through\s*=\s*"([^"]+)"', path.read_text(encoding="utf-8"), re.M)
    if not match:
        raise TitoError(f"{path} does not say solutions_through = \"NN_name\".", "Restore it from the repository's history.")
    return course.module(match[1])


def _require_complete(course: Curriculum, modules: list[Module]) -> None:
    from .exercise import is_started

    for module in modules:
        if is_started(course.root, module):
            raise TitoError(f"{module.folder} is started as your own exercise in the course repository, "
                            "so its chapter file holds stubs, not solutions.",
                            f"Run 'tito module reset {module.folder}' first (it backs up your version).")


def write(course: Curriculum, target: Path, through: Module) -> StudentRepo:
    """Write the student repository into `target` (new or empty, outside the course repository)."""
    root = course.root
    target = check_target(root, target)
    written = course.written_modules()
    _require_complete(course, written)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for module in course.modules:
            folder = staging / "modules" / module.folder
            folder.mkdir(parents=True)
            if module.readme(root).is_file():
                shutil.copyfile(module.readme(root), folder / "README.md")
            if module.is_written(root):
                (folder / module.dev_file(root).name).write_text(chapter_text(root, module, through), encoding="utf-8")
        for name in COPIED:
            source = root / name
            if source.is_dir():
                shutil.copytree(source, staging / name, ignore=_IGNORED)
            elif source.is_file():
                shutil.copyfile(source, staging / name)
        held = sync_checkpoints(course, staging, through)
        package_files = _export_all(course, staging)
        _check_imports(staging)
        (staging / "README.md").write_text(_readme(course, through, held), encoding="utf-8")
        (staging / STATE_FILE).write_text(_state(through), encoding="utf-8")
        found = leaks(course, staging, through)
        if found:
            raise TitoError(f"{len(found)} line(s) of later chapters' solutions would be in the student repository, "
                            f"first {found[0]}; nothing was written.",
                            "Move that line out of the file named, or into a chapter up to the one released.")
        _git(staging, "init", "-q")
        _git(staging, "add", "-A")
        _git(staging, "commit", "-q", "-m", f"TinyTorch student repository: solutions through {through.folder}")
        commit = _git(staging, "rev-parse", "--short", "HEAD").strip()
        if target.exists():
            target.rmdir()  # empty, checked above
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    complete = [m.folder for m in written if _number(m) <= _number(through)]
    return StudentRepo(target, through, complete, [m.folder for m in written if m.folder not in complete],
                       package_files, commit, held)


@dataclass
class Release:
    target: Path
    chapters: list[str]
    commit: str


def release(course: Curriculum, target: Path, through: Module) -> Release:
    """Put the complete chapters after the repository's current level, up to `through`, into it: one commit."""
    target = Path(target).expanduser().resolve()
    if not target.is_dir():
        raise TitoError(f"No student repository at {target}.", "Make one with 'tito course student-repo DIR --solutions-through NN'.")
    current = read_state(course, target)
    if _number(through) <= _number(current):
        raise TitoError(f"{target} already holds the solutions through {current.folder}.",
                        f"Name a later chapter than {current.folder}.")
    if _git(target, "status", "--porcelain").strip():
        raise TitoError(f"{target} has uncommitted changes; nothing was released.", "Commit or discard them first.")
    chapters = [m for m in course.written_modules() if _number(current) < _number(m) <= _number(through)]
    _require_complete(course, chapters)
    try:
        for module in chapters:
            path = module.dev_file(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(module.dev_file(course.root).read_text(encoding="utf-8"), encoding="utf-8")
        for module in chapters:
            export_source(target, module.dev_file(target))
        _check_imports(target)
        held = sync_checkpoints(course, target, through)
        (target / STATE_FILE).write_text(_state(through), encoding="utf-8")
        (target / "README.md").write_text(_readme(course, through, held), encoding="utf-8")
        found = leaks(course, target, through)
        if found:
            raise TitoError(f"{len(found)} line(s) of later chapters' solutions would be in {target}, first {found[0]}.",
                            "Nothing was committed; 'git checkout -- . ' in it restores its last commit.")
        _git(target, "add", "-A")
        names = ", ".join(m.folder for m in chapters)
        _git(target, "commit", "-q", "-m", f"Solutions for {names}")
    except BaseException:
        _git(target, "checkout", "-q", "--", ".")
        _git(target, "clean", "-q", "-fd")
        raise
    commit = _git(target, "rev-parse", "--short", "HEAD").strip()
    return Release(target, [m.folder for m in chapters], commit)
