"""Notebooks for the launch buttons: every chapter opens in Colab and Binder.

Jupyter Book's launch buttons link to a chapter's source file, and switch the
link to `.ipynb` only when a notebook of the same name sits beside the source
when the page is written. Colab cannot open a `.py` chapter, so before Sphinx
writes any page this extension converts each written chapter into
`modules/NN_name/name_dev.ipynb` (git-ignored; `exclude_patterns` keeps Sphinx
from reading it as a second copy of the page). The notebook starts with one
extra cell that installs tinytorch when it runs on Colab, from the repository
named once in `_config.yml` (`repository.url`).

When the build succeeds, the notebooks are copied into the site at the same
paths, beside a `binder/requirements.txt` made from the repository's own
(`-e .` replaced by the repository URL): published together (for example to
the branch named in `repository.branch`), they are what the Colab and Binder
links open.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

EXTENSION = "launch_notebooks"
MARK = "tinytorch"  # notebook metadata that says the build wrote this file
BINDER_REQUIREMENTS = Path("binder") / "requirements.txt"

INSTALL_CELL = """\
# On Google Colab, install TinyTorch first: this chapter imports the tinytorch package.
import sys

if "google.colab" in sys.modules:
    import subprocess

    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", {requirement!r}], check=True)"""


def repository_url(app: Sphinx) -> str | None:
    """`repository.url` from _config.yml (Jupyter Book hands it to the theme as repository_url)."""
    url = (app.config.html_theme_options or {}).get("repository_url")
    return url.rstrip("/") if url else None


def requirement(url: str) -> str:
    return f"tinytorch @ git+{url}"


def chapter_notebook(source: Path, root: Path, url: str):
    """A chapter as a notebook: the install cell, then the chapter's cells (without jupytext's own metadata)."""
    import jupytext
    import nbformat

    notebook = jupytext.read(source, fmt="py:percent")
    notebook.metadata.pop("jupytext", None)
    for cell in notebook.cells:
        cell.metadata.pop("cell_marker", None)
    install = nbformat.v4.new_code_cell(INSTALL_CELL.format(requirement=requirement(url)))
    install.metadata[MARK] = "install on Colab"
    notebook.cells.insert(0, install)
    notebook.metadata[MARK] = {
        "generated_from": source.relative_to(root).as_posix(),
        "note": "written by the book build; edit the .py chapter, not this file",
    }
    for index, cell in enumerate(notebook.cells):
        cell["id"] = f"cell-{index}"  # stable ids: the same chapter gives the same bytes
    return notebook


def _written_by_us(path: Path) -> bool:
    import nbformat

    try:
        return MARK in nbformat.read(path, as_version=4).metadata
    except Exception:  # not a notebook nbformat can read: not ours
        return False


def write_notebooks(app: Sphinx) -> list[Path]:
    """Write (or refresh) the notebook beside every written chapter; return the notebooks for the site."""
    import nbformat
    from tinytorch_pipeline import _load_curriculum

    url = repository_url(app)
    if url is None:
        logger.info(f"[{EXTENSION}] no repository.url in _config.yml: no launch notebooks")
        return []
    root = Path(app.srcdir)
    notebooks = []
    for module in _load_curriculum(root).written_modules():
        source = module.dev_file(root)
        target = source.with_suffix(".ipynb")
        if target.exists() and not _written_by_us(target):
            # A learner's own notebook (a jupytext pairing, say): never overwrite it; the buttons use it as it is.
            logger.info(f"[{EXTENSION}] {target.relative_to(root).as_posix()} was not written by the build; left as it is")
            notebooks.append(target)
            continue
        text = nbformat.writes(chapter_notebook(source, root, url)) + "\n"
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        notebooks.append(target)
    return notebooks


def binder_requirements(root: Path, url: str) -> str:
    """The repository's binder/requirements.txt, installing tinytorch from the repository instead of the checkout."""
    source = root / BINDER_REQUIREMENTS
    lines = source.read_text(encoding="utf-8").splitlines() if source.is_file() else ["-e ."]
    out = [requirement(url) if line.strip() in ("-e .", ".") else line for line in lines]
    return "\n".join(out) + "\n"


def _on_builder_inited(app: Sphinx) -> None:
    write_notebooks(app)


def _on_build_finished(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from tinytorch_pipeline import _load_curriculum

    root, out = Path(app.srcdir), Path(app.outdir)
    url = repository_url(app)
    for module in _load_curriculum(root).written_modules():
        notebook = module.dev_file(root).with_suffix(".ipynb")
        if notebook.exists():
            target = out / notebook.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(notebook, target)
    if url is not None:
        binder = out / BINDER_REQUIREMENTS
        binder.parent.mkdir(parents=True, exist_ok=True)
        binder.write_text(binder_requirements(root, url), encoding="utf-8")
        (out / ".nojekyll").touch()  # GitHub Pages must serve _static/ and the other _folders


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
    app.connect("builder-inited", _on_builder_inited)
    app.connect("build-finished", _on_build_finished)
    app.connect("html-page-context", _one_copy_of_each_script, priority=999)  # after every other handler
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
