"""The site as a reader sees it: its own project's address, a course map, and pages that fit a phone.

- `{tinytorch-clone}`: a bash block whose first line clones the repository named
  in `_config.yml` (`repository.url`), rendered at build time; the directive's
  content follows it.
- `{tinytorch-course-map}`: one card per chapter of curriculum.toml: what you
  build, prerequisites and time (from the module's README.md), and the question
  its checkpoint answers.
- The "edit this page" button opens the page's source on the default branch
  (SOURCE_BRANCH), not on `repository.branch`, which holds the built site.
- Cell outputs name no path of the machine that built the site (its checkout
  or its temporary folders).
- One search box (no second full-width bar), and a stylesheet that keeps pages
  within a 390 px screen and chapter code within the column on a desktop.
"""

from __future__ import annotations

import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util.docutils import SphinxDirective

EXTENSION = "site_pages"
# The branch the sources live on: the one .github/workflows/book.yml publishes the site from.
SOURCE_BRANCH = "main"
STATIC = Path(__file__).resolve().parent / "site_static"


def _repository(config: Config) -> str | None:
    url = (config.html_theme_options or {}).get("repository_url")
    return url.rstrip("/") if url else None


def _on_config_inited(app: Sphinx, config: Config) -> None:
    options = config.html_theme_options
    options["navbar_persistent"] = []  # pydata-sphinx-theme's second, full-width search bar on desktop
    url = _repository(config)
    if url:
        config.html_context["edit_page_url_template"] = f"{url}/edit/{SOURCE_BRANCH}/{{{{ file_name }}}}"
        config.html_context["edit_page_provider_name"] = "GitHub"
    config.html_static_path.append(str(STATIC))
    app.add_css_file("tinytorch-site.css")


# ---- the clone command ---------------------------------------------------------------------------------


class CloneDirective(SphinxDirective):
    """A bash block: `git clone <repository.url>.git tinytorch`, then the directive's own lines."""

    has_content = True

    def run(self) -> list:
        url = _repository(self.config)
        if not url:
            raise self.error("repository.url is not set in _config.yml, so there is no clone command to show.")
        text = "\n".join([f"git clone {url}.git tinytorch", *self.content])
        block = nodes.literal_block(text, text, language="bash")
        self.set_source_info(block)
        return [block]


# ---- the course map ------------------------------------------------------------------------------------


def _field(readme: str, name: str) -> str:
    """A README's `**Name:** text` paragraph, as one line."""
    match = re.search(rf"^\*\*{name}:\*\*(?P<text>.*?)(?:\n\s*\n|\Z)", readme, flags=re.M | re.S)
    return " ".join(match["text"].split()) if match else ""


def time_estimate(readme: str) -> str:
    text = _field(readme, "Time")
    match = re.match(r"(about\s+[\d.]+(?:\s*(?:–|-|to)\s*[\d.]+)?\s+(?:hours?|minutes))", text)
    return match[1] if match else text.split(" (")[0].split(":")[0].rstrip(".")


def prerequisites(readme: str, folders: list[str]) -> tuple[list[str], str]:
    """(chapter folders named, the rest of the text without links) of a README's Prerequisites."""
    text = _field(readme, "Prerequisites")
    named = [f for f in folders if f in text]
    named.sort(key=text.index)
    plain = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text)
    for folder in named:
        plain = plain.replace(folder, "")
    plain = re.sub(r"^[\s;:,.]+|[\s;,]+$", "", plain).strip()
    return named, plain


def _doc_link(target: str, text: str) -> addnodes.pending_xref:
    ref = addnodes.pending_xref("", refdomain="std", reftype="doc", reftarget="/" + target, refexplicit=True)
    ref += nodes.inline(text, text)
    return ref


class CourseMapDirective(SphinxDirective):
    has_content = False

    def run(self) -> list:
        import sys

        root = Path(self.env.srcdir)
        try:
            from tito import curriculum
        except ImportError:
            sys.path.insert(0, str(root))
            from tito import curriculum
        self.env.note_dependency(str(root / "curriculum.toml"))
        course = curriculum.load(root)
        folders = [m.folder for m in course.modules]
        grid = nodes.container(classes=["tt-course-map"])
        for module in course.modules:
            readme_path = module.readme(root)
            self.env.note_dependency(str(readme_path))
            readme = readme_path.read_text(encoding="utf-8") if readme_path.is_file() else ""
            card = nodes.container(classes=["tt-card"] + ([] if module.is_written(root) else ["tt-planned"]))
            title = nodes.paragraph(classes=["tt-card-title"])
            title += nodes.inline(module.number, module.number, classes=["tt-card-number"])
            title += nodes.Text(" ")
            title += _doc_link(module.toc_entry(root), module.title)
            card += title
            card += nodes.paragraph("", "", nodes.strong("You build: ", "You build: "), nodes.Text(module.builds))
            named, rest = prerequisites(readme, folders)
            before = nodes.paragraph("", "", nodes.strong("Before it: ", "Before it: "))
            if not named and not rest:
                before += nodes.Text("nothing but Python")
            for index, folder in enumerate(named):
                other = course.module(folder)
                before += nodes.Text(", " if index else "")
                before += _doc_link(other.toc_entry(root), f"{other.number} {other.title}")
            if rest and not named:  # the chapters say it; otherwise the README's own words (no markup)
                before += nodes.Text(rest.replace("`", ""))
            card += before
            estimate = time_estimate(readme)
            if estimate:
                card += nodes.paragraph("", "", nodes.strong("Time: ", "Time: "), nodes.Text(estimate))
            if module.checkpoint is not None:
                question = nodes.paragraph(classes=["tt-card-question"])
                question += nodes.strong("Checkpoint: ", "Checkpoint: ")
                question += nodes.emphasis(module.checkpoint.question, module.checkpoint.question)
                card += question
            grid += card
        return [grid]


# ---- outputs without the build machine's paths --------------------------------------------------------------


def machine_paths(root: Path) -> list[tuple[re.Pattern, str]]:
    """Patterns for paths that belong to the machine that built the site, and what a reader sees instead."""
    import tempfile

    temporary = re.escape(str(Path(tempfile.gettempdir())))
    return [
        (re.compile(re.escape(str(root)) + r"/?"), ""),  # the checkout: paths become relative to it
        (re.compile(temporary + r"/[^\s/'\"]+"), "<temporary folder>"),  # /tmp/tmpab12cd34, /tmp/tinytorch-ch11-x
    ]


def _on_doctree_read(app: Sphinx, doctree: nodes.document) -> None:
    if not app.env.docname.startswith("modules/"):
        return
    patterns = machine_paths(Path(app.srcdir).resolve())
    for container in doctree.findall(nodes.container):
        if container.get("nb_element") != "cell_code_output":
            continue
        for block in list(container.findall(nodes.literal_block)):
            text = block.astext()
            cleaned = text
            for pattern, replacement in patterns:
                cleaned = pattern.sub(replacement, cleaned)
            if cleaned != text:
                new = nodes.literal_block(cleaned, cleaned, **block.attributes)
                block.replace_self(new)


_TITLED_LIKE_THE_BOOK: set[str] = set()


def _note_title(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    title = re.sub(r"<[^>]+>", "", context.get("title") or "").strip()
    if title and title == app.config.html_title:
        _TITLED_LIKE_THE_BOOK.add(pagename)


def _one_title(app: Sphinx, exception) -> None:
    """A page titled like the book (the front page) is "TinyTorch" in the tab, not "TinyTorch — TinyTorch".
    (The theme's template always appends the book's title, so the written page is corrected.)"""
    if exception is not None or app.builder.format != "html":
        return
    import html

    doubled = f"<title>{html.escape(app.config.html_title)} &#8212; {html.escape(app.config.html_title)}</title>"
    for pagename in _TITLED_LIKE_THE_BOOK:
        path = Path(app.builder.get_outfilename(pagename))
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            if doubled in text:
                path.write_text(text.replace(doubled, f"<title>{html.escape(app.config.html_title)}</title>", 1), encoding="utf-8")


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _on_config_inited)
    app.connect("html-page-context", _note_title)
    app.connect("build-finished", _one_title)
    app.connect("doctree-read", _on_doctree_read)
    app.add_directive("tinytorch-clone", CloneDirective)
    app.add_directive("tinytorch-course-map", CourseMapDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
