"""Notebooks for the launch buttons: every chapter opens in Colab and Binder as an exercise.

Jupyter Book's launch buttons link to a chapter's source file, and switch the
link to `.ipynb` only when a notebook of the same name sits beside the source
when the page is written. Before Sphinx writes any page this extension writes,
beside each written chapter, its EXERCISE notebook `modules/NN_name/name_dev.ipynb`
(git-ignored; `exclude_patterns` keeps Sphinx from reading it as a page):

- first, a cell that installs tinytorch when it runs on Colab, from the
  repository named once in `_config.yml` (`repository.url`) at the commit the
  site was built from;
- then the chapter as `tito.solutions.exercise_version` gives it (solution
  regions stubbed exactly as `tito module start` stubs them, hidden tests
  removed, locked tests kept, answer keys replaced by "YOUR ANSWER HERE"), with
  every import of a name the chapter itself defines taken out (the notebook must
  run the learner's code, not the complete package's copy of it);
- last, the self-check (`tito.selfcheck.self_check`): the chapter's tests and
  its checkpoint on the notebook's code, in the words of `tito module complete`.

When the build succeeds, the exercise notebooks are copied into the site at the
same paths, with one zip of them all (`tinytorch-exercises.zip`), each chapter's
COMPLETE notebook beside its exercise (`name_dev_complete.ipynb`, labelled as
holding the solutions; left out when `tinytorch_publish_solutions` is false), and
a `binder/requirements.txt` made from the repository's own (`-e .` replaced by
the repository at the same commit). Published together (to the branch
`repository.branch` names), they are what the Colab and Binder links open. Each
chapter page's download menu offers both notebooks.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxRole

logger = logging.getLogger(__name__)

EXTENSION = "launch_notebooks"
MARK = "tinytorch"  # notebook metadata that says the build wrote this file
BINDER_REQUIREMENTS = Path("binder") / "requirements.txt"
EXERCISES_ZIP = "tinytorch-exercises.zip"
COMPLETE_SUFFIX = "_complete.ipynb"

INSTALL_CELL = """\
# On Google Colab, install TinyTorch first: this notebook imports the tinytorch package
# (and tito, whose self-check ends the notebook). {provenance}
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", {requirement!r}], check=True)"""

PINNED = "It installs the commit this site was built from."
UNPINNED = ("This site was built from a copy that is not a git checkout, so it installs the repository's\n"
            "# default branch as it is now, which may differ from the chapter you are reading.")

SELF_CHECK_INTRO = """\
## Self-check

When every cell above has run, the cell below runs this chapter's tests and then its
checkpoint on the code in this notebook, and prints what `tito module complete`
prints. While a stub is left, it names the first function still to write."""

SELF_CHECK_CELL = """\
# Self-check: the chapter's tests and its checkpoint, on the code in this notebook.
from tito.selfcheck import self_check

self_check({folder!r}, globals())"""

COMPLETE_LABEL = """\
**Complete version: contains the solutions.** This is chapter {folder} ({title}) with every
solution written out, as the course site shows it. To do the chapter yourself, open
the exercise notebook `{exercise}` instead."""


# ---- where the site comes from -------------------------------------------------------------------


def repository_url(app: Sphinx) -> str | None:
    """`repository.url` from _config.yml (Jupyter Book hands it to the theme as repository_url)."""
    url = (app.config.html_theme_options or {}).get("repository_url")
    return url.rstrip("/") if url else None


def build_commit(root: Path) -> str | None:
    """The commit the site is built from: HEAD of the checkout whose top folder is `root`; None otherwise."""
    try:
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True, timeout=30)
        if top.returncode != 0 or Path(top.stdout.strip()).resolve() != Path(root).resolve():
            return None
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit if head.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", commit) else None


def requirement(url: str, commit: str | None) -> str:
    return f"tinytorch @ git+{url}@{commit}" if commit else f"tinytorch @ git+{url}"


def _publish_solutions(app: Sphinx) -> bool:
    from solution_toggles import publish_solutions

    return publish_solutions(app)


# ---- the learner's code, not the package's ------------------------------------------------------------


def _export_cells(cells) -> list[str]:
    return [c.source for c in cells if c.cell_type == "code" and re.search(r"^#\|\s*export\b", c.source, re.M)]


def defined_names(sources: list[str]) -> set[str]:
    """Top-level names that code defines (functions, classes, assignments)."""
    names = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _package_owners(root: Path) -> dict[str, str]:
    """Package module name (`tinytorch.core.tensor`) -> chapter folder, from the package's manifest."""
    import json

    try:
        files = json.loads((root / "tinytorch" / "_manifest.json").read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError):
        return {}
    return {"tinytorch." + path.removesuffix(".py").replace("/", "."): Path(r["source"]).parent.name
            for path, r in files.items()}


def own_imports_removed(source: str, folder: str, own_names: set[str], owners: dict[str, str]) -> tuple[str, list[str]]:
    """A code cell without its imports of the chapter's own code from the package; also what was changed.

    `from tinytorch.x import A, b` loses the names this chapter defines (unless `tinytorch.x`
    belongs to another chapter); an import of one of the chapter's own package modules
    (`from tinytorch.core import setup as s`) becomes the notebook itself; `tinytorch.A`,
    for a name the chapter defines, becomes `A`.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source, []
    mine = {name for name, owner in owners.items() if owner == folder}
    others = {name for name, owner in owners.items() if owner != folder}
    lines = source.split("\n")
    edits, changed = [], []  # (first line, last line, replacement lines)
    for node in ast.walk(tree):
        indent = " " * getattr(node, "col_offset", 0)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "tinytorch":
            if node.module in others:
                continue
            kept, dropped, as_notebook = [], [], []
            for alias in node.names:
                if f"{node.module}.{alias.name}" in mine:
                    as_notebook.append(alias.asname or alias.name)
                elif alias.name in own_names:
                    dropped.append(alias)
                else:
                    kept.append(alias)
            if not dropped and not as_notebook:
                continue
            new = []
            if kept:
                names = ", ".join(a.name + (f" as {a.asname}" if a.asname else "") for a in kept)
                new.append(f"{indent}from {node.module} import {names}")
            for alias in dropped:
                if alias.asname and alias.asname != alias.name:
                    new.append(f"{indent}{alias.asname} = {alias.name}")
            if dropped:
                new.append(f"{indent}# {', '.join(a.name for a in dropped)}: written in this notebook, "
                           f"so not imported from the complete package")
            for name in as_notebook:
                new.append(f"{indent}{name} = __import__('sys').modules[__name__]  # this notebook's code, not the complete package's")
            edits.append((node.lineno, node.end_lineno, new))
            changed.append(f"line {node.lineno}: {ast.get_source_segment(source, node)}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in mine and alias.asname:
                    new = [f"{indent}{alias.asname} = __import__('sys').modules[__name__]  # this notebook's code, not the complete package's"]
                    edits.append((node.lineno, node.end_lineno, new))
                    changed.append(f"line {node.lineno}: {ast.get_source_segment(source, node)}")
    for first, last, new in sorted(edits, reverse=True):
        lines[first - 1:last] = new
    text = "\n".join(lines)
    # `tinytorch.Tensor` (or `tinytorch.core.tensor.Tensor`) for a name this chapter defines: the notebook's own.
    pattern = re.compile(r"\btinytorch(?:\.[a-z_][a-z0-9_]*)*\.(?P<name>[A-Za-z_]\w*)\b")

    def attribute(match: re.Match) -> str:
        prefix = match[0].rsplit(".", 1)[0]
        if match["name"] in own_names and prefix not in others:
            changed.append(f"{match[0]} -> {match['name']}")
            return match["name"]
        return match[0]

    out = []
    for line in text.split("\n"):
        code, hash_, comment = _split_comment(line)
        new_code = pattern.sub(attribute, code)
        if new_code != code:
            comment = "  # this notebook's own, the code you write here" if comment else ""
            hash_ = ""
        out.append(new_code.rstrip() + (hash_ + comment if hash_ else comment) if new_code != code else line)
    return "\n".join(out), changed


def _split_comment(line: str) -> tuple[str, str, str]:
    """(code, '#', comment) of a line, '#' inside strings not counted; a rough tokenizer is enough here."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#":
            return line[:index], "#", line[index + 1:]
    return line, "", ""


# ---- the notebooks ------------------------------------------------------------------------------------


def _clean(notebook) -> None:
    notebook.metadata.pop("jupytext", None)
    for cell in notebook.cells:
        cell.metadata.pop("cell_marker", None)


def _stable_ids(notebook) -> None:
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"  # the same chapter gives the same bytes


def _install_cell(url: str, commit: str | None):
    import nbformat

    cell = nbformat.v4.new_code_cell(INSTALL_CELL.format(
        requirement=requirement(url, commit), provenance=PINNED if commit else UNPINNED))
    cell.metadata[MARK] = "install on Colab"
    return cell


def exercise_notebook(module, root: Path, url: str, commit: str | None, owners: dict[str, str]):
    """The chapter as the learner's exercise: install cell, the exercise version, the self-check."""
    import jupytext
    import nbformat
    from tito.solutions import exercise_version

    source = module.dev_file(root)
    complete = jupytext.read(source, fmt="py:percent")
    text, _ = exercise_version(source.read_text(encoding="utf-8"), module.folder)
    notebook = jupytext.reads(text, fmt="py:percent")
    _clean(notebook)
    own_names = defined_names(_export_cells(complete.cells))
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        new, changed = own_imports_removed(cell.source, module.folder, own_names, owners)
        if changed:
            cell.source = new
            for what in changed:
                logger.info(f"[{EXTENSION}] {module.folder} exercise, cell {index}: {what}")
    notebook.cells.insert(0, _install_cell(url, commit))
    notebook.cells.append(nbformat.v4.new_markdown_cell(SELF_CHECK_INTRO))
    check = nbformat.v4.new_code_cell(SELF_CHECK_CELL.format(folder=module.folder))
    check.metadata[MARK] = "self-check"
    notebook.cells.append(check)
    notebook.metadata[MARK] = {
        "generated_from": source.relative_to(root).as_posix(),
        "version": "exercise",
        "commit": commit,
        "note": "written by the book build; edit the .py chapter, not this file",
    }
    _stable_ids(notebook)
    return notebook


def complete_notebook(module, root: Path, url: str, commit: str | None):
    """The chapter as written (solutions in it), under a first cell that says so."""
    import jupytext
    import nbformat

    source = module.dev_file(root)
    notebook = jupytext.read(source, fmt="py:percent")
    _clean(notebook)
    label = nbformat.v4.new_markdown_cell(COMPLETE_LABEL.format(
        folder=module.folder, title=module.title, exercise=source.with_suffix(".ipynb").name))
    notebook.cells[:0] = [label, _install_cell(url, commit)]
    notebook.metadata[MARK] = {
        "generated_from": source.relative_to(root).as_posix(),
        "version": "complete: contains the solutions",
        "commit": commit,
    }
    _stable_ids(notebook)
    return notebook


def complete_name(module, root: Path) -> str:
    return module.dev_file(root).stem + COMPLETE_SUFFIX


def _written_by_us(path: Path) -> bool:
    import nbformat

    try:
        return MARK in nbformat.read(path, as_version=4).metadata
    except Exception:  # not a notebook nbformat can read: not ours
        return False


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def write_notebooks(app: Sphinx) -> list[Path]:
    """Write (or refresh) the exercise notebook beside every written chapter; return the notebooks."""
    import nbformat
    from tinytorch_pipeline import _load_curriculum

    url = repository_url(app)
    if url is None:
        logger.info(f"[{EXTENSION}] no repository.url in _config.yml: no launch notebooks")
        return []
    root = Path(app.srcdir)
    commit = build_commit(root)
    if commit is None:
        logger.info(f"[{EXTENSION}] {root} is not the top of a git checkout: the install cells and Binder "
                    f"install {url} at its default branch, not a pinned commit")
    owners = _package_owners(root)
    notebooks = []
    for module in _load_curriculum(root).written_modules():
        target = module.dev_file(root).with_suffix(".ipynb")
        if target.exists() and not _written_by_us(target):
            # A learner's own notebook (a jupytext pairing, say): never overwrite it; the buttons use it as it is.
            logger.info(f"[{EXTENSION}] {target.relative_to(root).as_posix()} was not written by the build; left as it is")
            notebooks.append(target)
            continue
        _write_if_changed(target, nbformat.writes(exercise_notebook(module, root, url, commit, owners)) + "\n")
        notebooks.append(target)
    return notebooks


def binder_requirements(root: Path, url: str, commit: str | None) -> str:
    """The repository's binder/requirements.txt, installing tinytorch from the repository instead of the checkout."""
    source = root / BINDER_REQUIREMENTS
    lines = source.read_text(encoding="utf-8").splitlines() if source.is_file() else ["-e ."]
    out = [requirement(url, commit) if line.strip() in ("-e .", ".") else line for line in lines]
    return "\n".join(out) + "\n"


def _on_builder_inited(app: Sphinx) -> None:
    write_notebooks(app)


def _on_build_finished(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    import nbformat
    from tinytorch_pipeline import _load_curriculum

    root, out = Path(app.srcdir), Path(app.outdir)
    url = repository_url(app)
    if url is None:
        return
    commit = build_commit(root)
    publish = _publish_solutions(app)
    from tito.solutions import exercise_version

    with zipfile.ZipFile(out / EXERCISES_ZIP, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for module in _load_curriculum(root).written_modules():
            source = module.dev_file(root)
            notebook = source.with_suffix(".ipynb")
            relative = notebook.relative_to(root)
            if notebook.exists():
                target = out / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(notebook, target)
                info = zipfile.ZipInfo(f"tinytorch-exercises/{module.folder}/{notebook.name}", (2020, 1, 1, 0, 0, 0))
                bundle.writestr(info, notebook.read_bytes(), compress_type=zipfile.ZIP_DEFLATED)
            complete = out / relative.parent / complete_name(module, root)
            if publish:
                text = nbformat.writes(complete_notebook(module, root, url, commit)) + "\n"
                complete.write_text(text, encoding="utf-8")
            else:
                # A live course: the page's downloadable source must not hold the solutions either.
                complete.unlink(missing_ok=True)
                page_source = out / "_sources" / source.relative_to(root)
                if page_source.exists():
                    text, _ = exercise_version(source.read_text(encoding="utf-8"), module.folder)
                    page_source.write_text(text, encoding="utf-8")
    binder = out / BINDER_REQUIREMENTS
    binder.parent.mkdir(parents=True, exist_ok=True)
    binder.write_text(binder_requirements(root, url, commit), encoding="utf-8")
    (out / ".nojekyll").touch()  # GitHub Pages must serve _static/ and the other _folders


# ---- the download menu and the zip's link -------------------------------------------------------------------


def _add_downloads(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Each chapter page's download menu: the exercise notebook, and the complete one when published."""
    from tinytorch_pipeline import _load_curriculum

    if not pagename.startswith("modules/") or not pagename.endswith("_dev"):
        return
    group = next((b for b in context.get("header_buttons", []) if b.get("label") == "download-buttons"), None)
    if group is None:
        return
    root = Path(app.srcdir)
    module = next((m for m in _load_curriculum(root).written_modules() if m.toc_entry(root) == pagename), None)
    if module is None:
        return
    folder = Path(pagename).parent.as_posix()
    pathto = context["pathto"]
    items = [{
        "type": "link", "url": pathto(f"{folder}/{Path(pagename).name}.ipynb", 1), "text": "exercise .ipynb",
        "icon": "fas fa-code", "tooltip": "Download the exercise notebook (stubs to fill in, with a self-check)",
        "label": "download-exercise-notebook-button",
    }]
    if _publish_solutions(app):
        items.append({
            "type": "link", "url": pathto(f"{folder}/{complete_name(module, root)}", 1), "text": "complete .ipynb",
            "icon": "fas fa-book", "tooltip": "Download the complete notebook: it contains the solutions",
            "label": "download-complete-notebook-button",
        })
    group["buttons"][0:0] = items


class ExercisesZipRole(SphinxRole):
    """``{exercises-zip}`text` ``: a link to the zip of every exercise notebook, from any page."""

    def run(self):
        depth = self.env.docname.count("/")
        node = nodes.reference(self.rawtext, self.text or EXERCISES_ZIP, refuri="../" * depth + EXERCISES_ZIP)
        node["classes"].append("tt-download")
        return [node], []


def _launch_only_chapters(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Launch buttons only on chapter pages: they alone have a notebook published beside them. Any other
    executed page (a milestone's .py page) would get links to its source file, which Colab cannot open."""
    if pagename.startswith("modules/") and pagename.endswith("_dev"):
        return
    buttons = context.get("header_buttons")
    if buttons:
        context["header_buttons"] = [b for b in buttons if b.get("label") != "launch-buttons"]


# ---- one copy of each script -------------------------------------------------------------------------------


def _one_copy_of_each_script(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """sphinx-thebe (the launch buttons' live-code option) registers its inline configuration
    script once per reading pass; a page with two copies declares `const THEBE_JS_URL` twice,
    which is a script error in the browser. Keep the first copy of each identical script."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        # An inline script's filename is None or "" depending on who added it: the same script either way.
        attributes = getattr(script, "attributes", {})
        key = (getattr(script, "filename", script) or "", tuple(sorted((k, str(v)) for k, v in attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    context["script_files"] = kept


def setup(app: Sphinx) -> dict:
    app.setup_extension("solution_toggles")
    app.add_role("exercises-zip", ExercisesZipRole())
    app.connect("builder-inited", _on_builder_inited)
    app.connect("build-finished", _on_build_finished)
    app.connect("html-page-context", _add_downloads, priority=600)  # after the theme's buttons (501)
    app.connect("html-page-context", _launch_only_chapters, priority=600)
    app.connect("html-page-context", _one_copy_of_each_script, priority=999)  # after every other handler
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
