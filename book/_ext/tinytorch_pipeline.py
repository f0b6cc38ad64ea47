"""The book build is the pipeline: a Sphinx extension that ties it together.

`jupyter-book build .` loads this extension (see `sphinx: local_extensions` in
_config.yml). Before Sphinx reads a single page it

1. writes `_toc.yml` from the curriculum (`tito book toc`): its parts and pages,
   and each module's entry, naming its chapter (`modules/NN_name/name_dev`)
   once that file exists, its README until then;
2. exports every written chapter into the `tinytorch` package (any export error
   fails the build, and a chapter that does not parse leaves the package as it was);
3. runs the checkpoint of every written module, writes the results to
   `book/progress.md`, and fails the build if any checkpoint fails.

Then myst-nb executes every chapter against the package just exported. The
project root is the Sphinx source directory, so a small test book in a
temporary folder runs the same pipeline.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.environment import BuildEnvironment
from sphinx.errors import ExtensionError
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

EXTENSION = "tinytorch_pipeline"
TOC_FILE = "_toc.yml"
PROGRESS_PAGE = Path("book") / "progress.md"
PROGRESS_DOCNAME = "book/progress"

def _fail(message: str) -> ExtensionError:
    return ExtensionError(message, modname=EXTENSION)


def _tito(root: Path):
    """Import tito's modules, from the installed project or, failing that, from the book's root."""
    try:
        from tito import checkpoints, curriculum, export
    except ImportError:
        sys.path.insert(0, str(root))
        try:
            from tito import checkpoints, curriculum, export
        except ImportError as err:
            raise _fail(f"cannot import tito ({err}); run 'pip install -e \".[dev]\"' in the checkout.") from None
    return curriculum, export, checkpoints


def _load_curriculum(root: Path):
    curriculum, _, _ = _tito(root)
    from tito.errors import TitoError

    try:
        return curriculum.load(root)
    except TitoError as err:
        raise _fail(str(err)) from None


# ---- 1. the table of contents follows the curriculum ------------------------


def sync_toc(root: Path) -> bool:
    """Write `_toc.yml` from curriculum.toml when it differs (tito.book holds the one generator); whether it changed."""
    cur = _load_curriculum(root)
    from tito import book
    from tito.errors import TitoError

    try:
        return book.write_toc(cur)
    except TitoError as err:
        raise _fail(str(err)) from None


def _on_config_inited(app: Sphinx, config: Config) -> None:
    root = Path(app.srcdir)
    # Export writes .py files into the package during the build, after the list of
    # files to leave out was made; .py is a page format here, so exclude the package.
    _, export, _ = _tito(root)
    if export.PACKAGE not in config.exclude_patterns:
        config.exclude_patterns.append(export.PACKAGE)
    if sync_toc(root):
        logger.info(f"[{EXTENSION}] {TOC_FILE} written from curriculum.toml")
    # sphinx-external-toc lists the files to build when the config is read, which
    # is before builder-inited writes the real progress page: on a fresh clone the
    # page must already exist then, or it would be left out of the book.
    page = root / PROGRESS_PAGE
    if not page.exists():
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text("# Progress\n\nThe checkpoints have not run yet.\n", encoding="utf-8")


# ---- 2. export, 3. checkpoints -----------------------------------------------


def export_all(root: Path, cur) -> None:
    _, export, _ = _tito(root)
    from tito.errors import TitoError

    for module in cur.written_modules():
        try:
            result = export.export_source(root, module.dev_file(root))
        except TitoError as err:  # ExportError, or a damaged manifest
            raise _fail(f"export of {module.folder} failed: {err}") from None
        written = ", ".join(p.relative_to(root).as_posix() for p in result.written) or "unchanged"
        logger.info(f"[{EXTENSION}] exported {module.folder}: {written}")


def run_checkpoints(root: Path, cur) -> list:
    """Run the checkpoint of every written module, in course order, logging each result."""
    _, _, checkpoints = _tito(root)

    def report(result) -> None:
        status = "PASSED" if result.passed else "FAILED"
        logger.info(f"[{EXTENSION}] checkpoint {result.checkpoint.id}: {status} ({result.seconds:.1f} s)")

    return checkpoints.run_written(cur, report)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _status(result) -> str:
    """PASSED or FAILED in bold, then the harness's summary; a failure's as literal text (it may hold any characters)."""
    word = "PASSED" if result.passed else "FAILED"
    detail = result.summary.removeprefix(word).lstrip(": ").replace("`", "'")
    if not detail:
        return f"**{word}**"
    return f"**{word}** ({_cell(detail)})" if result.passed else f"**{word}** `{detail}`"


def progress_markdown(root: Path, cur, results: list) -> str:
    """The progress page: one row per chapter, in course order; chapter NN's checkpoint is checkpoint NN."""
    by_checkpoint = {r.checkpoint.id: r for r in results}
    rows = []
    for module in cur.modules:
        cp = module.checkpoint
        page = module.toc_entry(root)
        link = f"{{doc}}`{module.folder} </{page}>`"
        if not module.is_written(root):
            status, seconds = "not yet written", "–"
        elif cp is None:
            status, seconds = "exported (no checkpoint of its own)", "–"
        else:
            result = by_checkpoint[cp.id]
            status = _status(result)
            seconds = f"{result.seconds:.1f} s"
        question = cp.question if cp else f"(builds {module.builds})"
        rows.append(f"| {module.number} | {link} | {_cell(question)} | {_cell(status)} | {seconds} |")
    passed = sum(r.passed for r in results)
    written = len(cur.written_modules())
    lines = [
        "# Progress",
        "",
        "This page is written by the book build: it exported every written chapter into",
        "`tinytorch`, then ran each written chapter's checkpoint against that package.",
        f"{written} of {len(cur.modules)} chapters are written; {passed} of {len(results)} checkpoints run passed.",
        "Chapter NN's checkpoint is checkpoint NN: run one yourself with `tito checkpoint run NN`.",
        "",
        "| chapter and checkpoint | module | question | status | time |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
        *_milestone_lines(cur),
    ]
    return "\n".join(lines)


def _milestone_lines(cur) -> list[str]:
    """The learner's milestone runs (tito/milestones.py writes the section)."""
    from tito import milestones

    return milestones.progress_lines(cur)


def _on_builder_inited(app: Sphinx) -> None:
    root = Path(app.srcdir)
    cur = _load_curriculum(root)
    # Chapters execute in kernels started from this process: make them import
    # this book's package, the one exported below, before any installed copy.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    export_all(root, cur)
    results = run_checkpoints(root, cur)
    page = root / PROGRESS_PAGE
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(progress_markdown(root, cur, results), encoding="utf-8")
    failed = [r for r in results if not r.passed]
    if failed:
        raise _fail("; ".join(
            f"checkpoint {r.checkpoint.id}: {r.summary} (details: tito checkpoint run {r.checkpoint.number} --verbose)"
            for r in failed
        ))


def _on_env_get_outdated(app: Sphinx, env: BuildEnvironment, added, changed, removed) -> list[str]:
    """Re-execute every chapter on every build: a chapter's output depends on the package, not only its own source."""
    root = Path(app.srcdir)
    cur = _load_curriculum(root)
    pages = [m.toc_entry(root) for m in cur.written_modules()] + [PROGRESS_DOCNAME]
    # The milestone pages run the milestones on the package and show the recorded runs.
    pages += sorted(d for d in env.found_docs if d.startswith("book/milestones/"))
    return [p for p in pages if p in env.found_docs]


# ---- the package's layers, drawn from _toc.yml's parts and the curriculum -----


def layers_mermaid(root: Path) -> str:
    """Mermaid source: one box per part of the book, left to right, each chapter inside with every package module
    it exports (curriculum.toml's `exports`, which tests/test_curriculum.py checks against the package's manifest).

    A chapter that is written (so its package files are exported) is drawn solid, the others dashed;
    an arrow means "is built on by".
    """

    def label(text: str) -> str:
        return text.replace('"', "#quot;")

    cur = _load_curriculum(root)
    lines = ["flowchart LR"]
    parts = []
    for index, part in enumerate(cur.parts):
        modules = cur.chapters_of(part)
        if not modules:
            continue
        part_id = f"part{index}"
        parts.append(part_id)
        lines.append(f'  subgraph {part_id}["{label(part.caption)}"]')
        lines.append("    direction TB")
        for module in modules:
            style = "written" if module.is_written(root) else "planned"
            targets = "<br/>".join(f"tinytorch.{target}" for target in module.exports)
            lines.append(f'    m{module.number}["<b>{module.number} {label(module.title)}</b><br/>{targets}"]:::{style}')
        # With the parts linked, Mermaid stacks a part's modules only when they are linked too.
        if len(modules) > 1:
            lines.append("    " + " ~~~ ".join(f"m{m.number}" for m in modules))
        lines.append("  end")
    lines += [f"  {a} --> {b}" for a, b in zip(parts, parts[1:])]
    lines += [
        "  classDef written stroke-width:2px",
        "  classDef planned stroke-dasharray:5 5,opacity:0.7",
    ]
    return "\n".join(lines)


class LayersDirective(SphinxDirective):
    """`{tinytorch-layers}`: the package's layers as a Mermaid diagram, always current."""

    has_content = False

    def run(self) -> list:
        from offline_mermaid import mermaid

        root = Path(self.env.srcdir)
        # Redraw when a chapter is written or the parts change.
        self.env.note_dependency(str(root / TOC_FILE))
        self.env.note_dependency(str(root / "curriculum.toml"))
        node = mermaid(source=layers_mermaid(root))
        self.set_source_info(node)
        return [node]


# ---- links between module pages ------------------------------------------------


class ModuleLinks(SphinxPostTransform):
    """Point a link to a module's README at the module's page in the book.

    READMEs link to each other (`[02_tensor](../02_tensor/README.md)`), which reads
    well on a code host; in the book a written module's page is its chapter and its
    README is left out, so such a link is pointed at the chapter instead.
    Runs before MyST resolves links (its resolver has priority 9).
    """

    default_priority = 8

    def run(self, **kwargs) -> None:
        root = Path(self.env.srcdir)
        cur = None
        for node in self.document.findall(addnodes.pending_xref):
            if node.get("reftype") != "myst":
                continue
            if node.get("refdomain") == "doc":
                target = node["reftarget"]
            elif node.get("refdomain") is None:
                refdoc = node.get("refdoc", self.env.docname)
                path = (root / refdoc).parent / node["reftarget"].split("#", 1)[0]
                target = os.path.relpath(path, root).replace(os.sep, "/").removesuffix(".md")
            else:
                continue
            match = re.fullmatch(r"modules/([^/]+)/README", target)
            if not match or target in self.env.all_docs:
                continue
            cur = cur or _load_curriculum(root)
            module = next((m for m in cur.modules if m.folder == match[1]), None)
            if module is not None:
                node["refdomain"], node["reftarget"], node["reftargetid"] = "doc", module.toc_entry(root), None


def setup(app: Sphinx) -> dict:
    app.setup_extension("offline_mermaid")
    app.add_directive("tinytorch-layers", LayersDirective)
    # Before sphinx-external-toc reads _toc.yml (it listens at priority 900).
    app.connect("config-inited", _on_config_inited, priority=400)
    app.connect("builder-inited", _on_builder_inited)
    app.connect("env-get-outdated", _on_env_get_outdated)
    app.add_post_transform(ModuleLinks)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
