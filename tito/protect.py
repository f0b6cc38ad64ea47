"""Protection of the generated package files from hand edits: helpful, and reversible.

`tito system protect enable` does four things, each undone exactly by `disable`:

1. makes every generated file (listed in tinytorch/_manifest.json) and the manifest
   read-only (export still works: it replaces files by a rename and keeps the mode);
2. adds a marked block to `.gitattributes` that marks them generated (the user's
   lines stay as they are);
3. installs a git pre-commit hook that refuses a commit whose generated files differ
   from what export would write, naming the chapter to edit (a hook that was
   already there is kept, runs after ours, and is put back by `disable`);
4. marks them read-only in `.vscode/settings.json` (merged into the user's file,
   comments and all).

What was changed is recorded in `.tito/protect.json` (git-ignored), so `disable`
restores each file's mode and each file's bytes. Nothing here runs when
`tinytorch` is imported.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import json5

from .errors import TitoError
from .export import MANIFEST, PACKAGE, hand_edited, read_manifest
from .files import write_atomic
from .progress import FOLDER

STATE_FILE = "protect.json"
FORMAT = 1

ATTRIBUTES_FILE = ".gitattributes"
ATTRIBUTES_BLOCK = (
    "# >>> tito system protect: generated from modules/ by 'tito module export'; edit the chapters, not these\n"
    f"{PACKAGE}/**/*.py linguist-generated=true\n"
    f"{PACKAGE}/**/__init__.py -linguist-generated\n"
    f"{MANIFEST.as_posix()} linguist-generated=true\n"
    "# <<< tito system protect\n"
)

HOOK = "pre-commit"
SAVED_HOOK = "pre-commit.before-tinytorch"
HOOK_MARK = "# Installed by 'tito system protect enable'"

VSCODE_FILE = ".vscode/settings.json"
VSCODE_MARK = "/* tito system protect */"
VSCODE_SETTINGS = {
    "files.readonlyInclude": [f"{PACKAGE}/**/*.py", MANIFEST.as_posix()],
    "files.readonlyExclude": [f"{PACKAGE}/**/__init__.py"],
}


# ---- the record of what enable changed --------------------------------------------------------


def _state_path(root: Path) -> Path:
    return Path(root) / FOLDER / STATE_FILE


def _load(root: Path) -> dict | None:
    path = _state_path(root)
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        if state.get("format") != FORMAT:
            raise ValueError(f"expected format {FORMAT}")
        return state
    except (OSError, ValueError, AttributeError) as err:
        rel = f"{FOLDER}/{STATE_FILE}"
        raise TitoError(
            f"{rel} is damaged ({err}), so tito cannot tell what protection changed.",
            f"Repair it by hand, or move it aside (mv {rel} {rel}.bak) and undo protection by hand.",
        ) from None


def _save(root: Path, state: dict) -> None:
    path = _state_path(root)
    path.parent.mkdir(exist_ok=True)
    write_atomic(path, json.dumps(state, indent=2, sort_keys=True) + "\n")


def is_enabled(root: Path) -> bool:
    return _load(root) is not None


# ---- 1. file modes --------------------------------------------------------------------------


def generated_files(root: Path) -> list[Path]:
    """The generated package files that exist, and the manifest itself."""
    root = Path(root)
    files = [root / PACKAGE / rel for rel in sorted(read_manifest(root))]
    return [p for p in files + [root / MANIFEST] if p.is_file()]


def _writable(path: Path) -> bool:
    return bool(path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def _protect_modes(root: Path, state: dict) -> int:
    """Make every generated file read-only, remembering the mode it had; return how many changed."""
    changed = 0
    for path in generated_files(root):
        rel = path.relative_to(root).as_posix()
        mode = stat.S_IMODE(path.stat().st_mode)
        state["modes"].setdefault(rel, mode)
        if _writable(path):
            os.chmod(path, mode & ~0o222)
            changed += 1
    return changed


def _restore_modes(root: Path, state: dict) -> int:
    restored = 0
    package = (Path(root) / PACKAGE).resolve()
    for rel, mode in state["modes"].items():
        path = Path(root) / rel
        if not path.resolve().is_relative_to(package) or not isinstance(mode, int):
            continue                                   # only generated files: never a path the record leads elsewhere
        if path.is_file() and stat.S_IMODE(path.stat().st_mode) != mode:
            os.chmod(path, mode)
            restored += 1
    return restored


# ---- 2. .gitattributes and 4. VS Code: text merged into the user's files ---------------------


def _insert_text(root: Path, rel: str, make) -> dict | None:
    """Merge our text into a user's file; `make(text) -> (new text, [inserted snippets])` or None to leave it."""
    path = Path(root) / rel
    existed = path.is_file()
    original = _read(path) if existed else None
    made = make(original)
    if made is None:
        return None
    written, snippets = made
    if written != original:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, written)
    return {"existed": existed, "original": original, "written": written, "snippets": snippets}


def _remove_text(root: Path, rel: str, record: dict) -> str:
    """Undo `_insert_text`: the original bytes if the file is as we left it, else only our snippets removed."""
    path = Path(root) / rel
    if not path.is_file():
        return f"{rel}: already gone"
    current = _read(path)
    if current == record["written"]:
        restored = record["original"]
    else:
        restored = current
        for snippet in record["snippets"]:
            restored = restored.replace(snippet, "", 1)
        if not record["existed"] and restored.strip() in ("", "{\n}", "{}"):
            restored = None
    if restored is None:
        path.unlink()
        if record.get("made_dir") and path.parent.is_dir() and not any(path.parent.iterdir()):
            path.parent.rmdir()
        return f"{rel}: removed (tito had created it)"
    if restored != current:
        write_atomic(path, restored)
    return f"{rel}: restored"


def _attributes(original: str | None):
    text = original or ""
    if ATTRIBUTES_BLOCK in text:
        return text, []
    separator = "" if not text or text.endswith("\n") else "\n"
    snippet = separator + ATTRIBUTES_BLOCK
    return text + snippet, [snippet]


# Blank space and comments; the settings object opens at the first `{` after them.
_GAP = r"(?:\s|//[^\n]*|/\*.*?\*/)*"
_OPENING = re.compile(_GAP + r"\{", re.DOTALL)


def _parse(text: str):
    """JSON with comments and trailing commas, as VS Code reads settings.json (json5 reads a superset)."""
    try:
        return json5.loads(text)
    except ValueError:
        return None


def _insert(text: str, position: int, snippet: str, newline: str) -> tuple[str, str]:
    """`snippet` inserted after the `{` that ends at `position`; the user's content on that line moves to its own."""
    rest_of_line = text[position:].split("\n", 1)[0]
    if rest_of_line.strip():
        last = snippet.split("\n")[-1]
        snippet += newline + " " * (len(last) - len(last.lstrip()))
    return text[:position] + snippet + text[position:], snippet


def _lines(entries: list[str], indent: str, more: bool, newline: str) -> str:
    """One marked line per entry (in the file's own line ending); a comma after the last only if the user's own members follow."""
    lines = [f"{newline}{indent}{entry},  {VSCODE_MARK}" for entry in entries]
    if not more:
        lines[-1] = lines[-1].replace(f",  {VSCODE_MARK}", f"  {VSCODE_MARK}")
    return "".join(lines)


def _vscode(original: str | None):
    """Our read-only settings merged into settings.json text: new keys after the top `{`, or our
    patterns inside the user's own `files.readonlyInclude`/`Exclude` objects. Each insertion is
    checked by parsing the result; None (leave the file alone) when the text is not an object we
    can merge into."""
    text = original if original and original.strip() else "{\n}\n"
    settings = _parse(text)
    opening = _OPENING.match(text)
    if not isinstance(settings, dict) or opening is None:
        return None
    expected = dict(settings)
    newline = "\r\n" if "\r\n" in text else "\n"
    written, snippets, new_keys = text, [], []
    for key, patterns in VSCODE_SETTINGS.items():
        if key not in settings:
            entries = ", ".join(f"{json.dumps(p)}: true" for p in patterns)
            new_keys.append(f"{json.dumps(key)}: {{{entries}}}")
            expected[key] = dict.fromkeys(patterns, True)
            continue
        if not isinstance(settings[key], dict):
            return None  # not an object: leave the user's setting alone
        wanted = [p for p in patterns if p not in settings[key]]
        if not wanted:
            continue
        expected[key] = {**settings[key], **dict.fromkeys(wanted, True)}
        lines = _lines([f"{json.dumps(p)}: true" for p in wanted], " " * 8, more=bool(settings[key]), newline=newline)
        # The key's own object: the first place where inserting there gives exactly the merged settings.
        for found in re.finditer(re.escape(json.dumps(key)) + _GAP + ":" + _GAP + r"\{", written, re.DOTALL):
            candidate, snippet = _insert(written, found.end(), lines, newline)
            if _parse(candidate) == {**settings, key: expected[key]}:  # that key changed, and nothing else
                written, settings = candidate, _parse(candidate)
                snippets.append(snippet)
                break
        else:
            return None
    if new_keys:
        lines = _lines(new_keys, " " * 4, more=bool(settings), newline=newline)
        written, snippet = _insert(written, _OPENING.match(written).end(), lines, newline)
        snippets.append(snippet)
    if _parse(written) != expected:
        return None
    return written, snippets


def _insert_vscode(root: Path) -> dict | None:
    folder = Path(root) / Path(VSCODE_FILE).parent
    made_dir = not folder.exists()
    record = _insert_text(root, VSCODE_FILE, _vscode)
    if record is not None:
        record["made_dir"] = made_dir
    elif made_dir and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return record


# ---- 3. the git pre-commit hook ----------------------------------------------------------------


def _git(root: Path, *args: str, input: str | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, input=input)
    if done.returncode != 0:
        raise TitoError(f"git {' '.join(args)} failed: {done.stderr.strip() or 'no output'}")
    return done.stdout


def hooks_dir(root: Path) -> Path | None:
    """The checkout's hooks folder (respects core.hooksPath and worktrees); None outside a git checkout."""
    try:
        done = subprocess.run(["git", "rev-parse", "--show-toplevel", "--git-path", "hooks"], cwd=root,
                              capture_output=True, text=True)
    except OSError:
        return None
    if done.returncode != 0:
        return None
    top, hooks = done.stdout.splitlines()[:2]
    if Path(top).resolve() != Path(root).resolve():
        return None  # the course is not the top of this git checkout; its hooks are not ours to change
    return (Path(root) / hooks).resolve()


def hooks_outside(root: Path, folder: Path) -> bool:
    """Whether a hooks folder lies outside both the checkout and its git directory.

    `core.hooksPath` may name a folder shared by many repositories (a global setting, say);
    a hook written there would run, and refuse commits, in every one of them.
    """
    folder = Path(folder).resolve()
    if folder.is_relative_to(Path(root).resolve()):
        return False
    try:
        common = _git(root, "rev-parse", "--git-common-dir").strip()
    except (TitoError, OSError):
        return True
    return not folder.is_relative_to((Path(root) / common).resolve())


def _hook_script() -> str:
    python = shlex.quote(sys.executable)
    return f"""#!/bin/sh
{HOOK_MARK}; 'tito system protect disable' removes it
# and puts back the hook that was here before (kept meanwhile as {SAVED_HOOK}).
# It refuses a commit whose generated tinytorch/ files differ from what 'tito module export' writes.
PYTHON={python}
[ -x "$PYTHON" ] || PYTHON=python3
PYTHONPATH="$(pwd)${{PYTHONPATH:+:$PYTHONPATH}}" "$PYTHON" -m tito system protect check-commit || exit 1
BEFORE="$(dirname "$0")/{SAVED_HOOK}"
if [ -x "$BEFORE" ]; then
  exec "$BEFORE" "$@"
fi
"""


def _is_ours(path: Path) -> bool:
    try:
        return HOOK_MARK in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def _install_hook(root: Path) -> dict | None:
    folder = hooks_dir(root)
    if folder is None:
        return None
    hook, saved = folder / HOOK, folder / SAVED_HOOK
    folder.mkdir(parents=True, exist_ok=True)
    record = {"dir": str(folder), "saved": False}
    if hook.exists() and not _is_ours(hook):
        if saved.exists():
            raise TitoError(f"{saved} already exists, so the current {hook.name} hook cannot be kept beside ours.",
                            f"Move {saved} aside, then run 'tito system protect enable' again.")
        os.replace(hook, saved)
        record["saved"] = True
    elif hook.exists() and saved.exists():
        record["saved"] = True
    hook.write_text(_hook_script(), encoding="utf-8")
    os.chmod(hook, 0o755)
    return record


def _remove_hook(record: dict) -> str:
    folder = Path(record["dir"])
    hook, saved = folder / HOOK, folder / SAVED_HOOK
    if hook.exists() and _is_ours(hook):
        hook.unlink()
    if record.get("saved") and saved.exists() and not hook.exists():
        os.replace(saved, hook)
        return f"pre-commit hook: removed; the hook that was there before is back"
    return "pre-commit hook: removed"


# ---- the commands ------------------------------------------------------------------------------


def enable(root: Path, shared_hooks: bool = False) -> list[str]:
    """Turn protection on (or repair it); return one line per part.

    The pre-commit hook goes only into this repository's own hooks folder, unless
    `shared_hooks` says the user asked for a hooks folder outside it (core.hooksPath).
    """
    root = Path(root).resolve()
    if not read_manifest(root):
        raise TitoError("There are no generated files to protect yet.", "Run 'tito module export --all' first.")
    state = _load(root) or {"format": FORMAT, "modes": {}, "gitattributes": None, "hook": None, "vscode": None}
    done = []
    changed = _protect_modes(root, state)
    done.append(f"{len(generated_files(root))} generated files are read-only ({changed} changed now)")
    if not _in_place(root, ATTRIBUTES_FILE, state["gitattributes"]):
        state["gitattributes"] = _insert_text(root, ATTRIBUTES_FILE, _attributes)
    done.append(f"{ATTRIBUTES_FILE} marks them generated")
    folder = hooks_dir(root)
    outside = folder is not None and not shared_hooks and hooks_outside(root, folder)
    hook = None if outside else _install_hook(root)
    if outside:
        done.append(f"no git pre-commit hook: core.hooksPath points at {folder}, outside this repository "
                    "(other repositories may share it); add --shared-hooks to install it there anyway")
    elif hook is not None:
        if state["hook"] and state["hook"].get("saved"):
            hook["saved"] = True
        state["hook"] = hook
        kept = f" (the existing hook is kept and runs after it)" if hook["saved"] else ""
        done.append(f"git pre-commit hook installed{kept}")
    else:
        done.append("no git pre-commit hook: this folder is not the top of a git checkout")
    if not _in_place(root, VSCODE_FILE, state["vscode"]):
        state["vscode"] = _insert_vscode(root)
    done.append(f"{VSCODE_FILE} marks them read-only" if state["vscode"] is not None
                else f"{VSCODE_FILE} left alone: it is not a JSON object tito can merge into")
    _save(root, state)
    return done


def disable(root: Path) -> list[str]:
    """Undo everything enable changed; return one line per part."""
    root = Path(root).resolve()
    state = _load(root)
    if state is None:
        return ["protection is not on; nothing to undo"]
    done = [f"{_restore_modes(root, state)} file mode(s) restored"]
    if state.get("gitattributes"):
        done.append(_remove_text(root, ATTRIBUTES_FILE, state["gitattributes"]))
    if state.get("hook"):
        done.append(_remove_hook(state["hook"]))
    if state.get("vscode"):
        done.append(_remove_text(root, VSCODE_FILE, state["vscode"]))
    _state_path(root).unlink()
    return done


def refresh(root: Path) -> None:
    """After an export: protect generated files that did not exist when protection was turned on."""
    state = _load(root)
    if state is not None and _protect_modes(Path(root), state):
        _save(root, state)


def _read(path: Path) -> str:
    """A text file exactly as it is, line endings included ('' if there is none)."""
    if not path.is_file():
        return ""
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def _in_place(root: Path, rel: str, record: dict | None) -> bool:
    """Whether what enable inserted into a file is still there."""
    if record is None:
        return False
    text = _read(Path(root) / rel)
    return bool(text) and all(snippet in text for snippet in record["snippets"])


def status(root: Path) -> tuple[bool, str, str]:
    """(ok, detail, hint) for `tito system doctor` and `tito system protect status`."""
    root = Path(root).resolve()
    try:
        state = _load(root)
    except TitoError as err:
        return False, err.message, err.hint
    if state is None:
        return True, "off: generated files can be edited by hand ('tito system protect enable' turns it on)", ""
    files = generated_files(root)
    problems = []
    writable = [p.relative_to(root).as_posix() for p in files if _writable(p)]
    if writable:
        problems.append(f"writable again: {', '.join(writable)}")
    if state.get("gitattributes") and not _in_place(root, ATTRIBUTES_FILE, state["gitattributes"]):
        problems.append(f"the block in {ATTRIBUTES_FILE} is gone")
    if state.get("hook"):
        hook = Path(state["hook"]["dir"]) / HOOK
        if not (hook.is_file() and _is_ours(hook)):
            problems.append("the pre-commit hook is gone")
    if state.get("vscode") and not _in_place(root, VSCODE_FILE, state["vscode"]):
        problems.append(f"the settings in {VSCODE_FILE} are gone")
    if problems:
        return False, "on, but " + "; ".join(problems), "Run 'tito system protect enable' to repair it."
    parts = [f"{len(files)} generated files read-only", ATTRIBUTES_FILE]
    parts += ["pre-commit hook"] if state.get("hook") else []
    parts += [VSCODE_FILE] if state.get("vscode") else []
    return True, "on: " + ", ".join(parts), ""


def validate(root: Path) -> list[tuple[str, str]]:
    """(generated file, its source) for every generated file that no longer matches the export manifest."""
    return hand_edited(root)


def _modules_to_check(course, snapshot: Path, staged: list[str], course_file: str) -> list:
    """The written chapters whose export a commit can put out of step: each chapter it stages and the chapter
    each generated file it stages comes from (per the staged manifest). Every written chapter when it stages
    curriculum.toml or a package file no chapter generates (an `__init__.py` decides whether a chapter
    exports at all), or when the manifest cannot be read: reading a chapter as a notebook is most of the
    hook's time, and a commit of one chapter need not wait for all of them."""
    written = course.written_modules()
    chapters = {module.dev_file(snapshot).relative_to(snapshot).as_posix(): module for module in written}
    try:
        sources = {f"{PACKAGE}/{rel}": entry["source"] for rel, entry in read_manifest(snapshot).items()}
    except TitoError:
        return written
    chosen = set()
    for path in staged:
        if path == course_file:
            return written
        if not path.startswith((f"{PACKAGE}/", "modules/")) or path == MANIFEST.as_posix() or (
                path.startswith("modules/") and path not in chapters):
            continue  # export reads none of these: other files, the manifest, a chapter's other files
        if path in chapters:
            chosen.add(path)
        elif sources.get(path) in chapters:
            chosen.add(sources[path])
        else:
            return written
    return [module for name, module in chapters.items() if name in chosen]


def check_commit(root: Path) -> list[str]:
    """Problems with the commit being made: generated files (as staged) that differ from what
    exporting the staged chapters writes. Empty when the commit touches neither."""
    from . import curriculum
    from .export import out_of_sync

    root = Path(root).resolve()
    staged = [p for p in _git(root, "diff", "--cached", "--name-only", "-z").split("\0") if p]
    if not any(p.startswith((f"{PACKAGE}/", "modules/")) or p == curriculum.CURRICULUM_FILE for p in staged):
        return []
    tracked = [p for p in _git(root, "ls-files", "-z", "--", curriculum.CURRICULUM_FILE, "modules", PACKAGE).split("\0") if p]
    problems = []
    with tempfile.TemporaryDirectory(prefix="tito-commit-") as tmp:
        snapshot = Path(tmp)
        _git(root, "checkout-index", f"--prefix={snapshot.as_posix()}/", "-z", "--stdin", input="\0".join(tracked))
        course = curriculum.load(snapshot)
        for module in _modules_to_check(course, snapshot, staged, curriculum.CURRICULUM_FILE):
            for problem in out_of_sync(snapshot, [module.dev_file(snapshot)]):
                problems.append(f"{problem}: edit the chapter, not the generated file, then run "
                                f"'tito module export {module.folder}' and 'git add' both")
    return problems
