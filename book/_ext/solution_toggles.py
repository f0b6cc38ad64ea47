"""Solutions on the site: each one collapsed behind a "Show solution" toggle, or not published at all.

A chapter marks the code a learner writes with NBGrader's `### BEGIN SOLUTION` /
`### END SOLUTION` lines, and a question's answer cell holds its answer key the
same way. The chapter executes as written (complete), but its page never shows
a marker:

- by default (`tinytorch_publish_solutions: true` under `sphinx: config:` in
  _config.yml) each code solution region is collapsed behind a "Show solution"
  toggle, each hidden-test region behind "Show hidden tests", and each answer key
  behind "Show answer key", markers stripped;
- with `tinytorch_publish_solutions: false` (an instructor running a live course)
  the page shows the stub a learner gets (`tito module start`) in place of each
  solution, no hidden tests and "YOUR ANSWER HERE" in place of each answer key; the
  page's downloadable source and the complete notebooks are left out too
  (book/_ext/launch_notebooks.py reads the same switch).

Code cells are rewritten on the page only (the doctree, after myst-nb executed
the complete code); answer cells are rewritten in the chapter's text before it
is parsed, into a `{tinytorch-solution}` directive.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util.docutils import SphinxDirective

EXTENSION = "solution_toggles"
CONFIG = "tinytorch_publish_solutions"
CHAPTER_DOC = re.compile(r"^modules/(?P<folder>[^/]+)/[^/]+_dev$")
SHOW_SOLUTION = "Show solution"
SHOW_HIDDEN_TESTS = "Show hidden tests"
SHOW_ANSWER_KEY = "Show answer key"


def _solutions(root: Path):
    try:
        from tito import solutions
    except ImportError:
        sys.path.insert(0, str(root))
        from tito import solutions
    return solutions


def publish_solutions(app: Sphinx) -> bool:
    value = app.config[CONFIG]
    if isinstance(value, str):  # a YAML string such as "false"
        return value.strip().lower() not in ("false", "no", "0", "off")
    return bool(value)


# ---- the toggle itself ---------------------------------------------------------------------------


class solution_toggle(nodes.General, nodes.Element):
    """A collapsed block: `<details class="tt-solution"><summary>label</summary>...</details>`."""


def _visit_html(self, node: solution_toggle) -> None:
    kind = node.get("kind", "solution")
    self.body.append(f'<details class="tt-solution tt-{kind}"><summary>{self.encode(node["label"])}</summary>\n')


def _depart_html(self, node: solution_toggle) -> None:
    self.body.append("</details>\n")


def _visit_other(self, node: solution_toggle) -> None:
    pass


def _depart_other(self, node: solution_toggle) -> None:
    pass


class SolutionDirective(SphinxDirective):
    """```{tinytorch-solution} Show answer key``` : its content, collapsed behind a toggle."""

    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = {"kind": directives.unchanged}

    def run(self) -> list:
        node = solution_toggle(label=self.arguments[0] if self.arguments else SHOW_SOLUTION,
                               kind=self.options.get("kind", "answer"))
        self.state.nested_parse(self.content, self.content_offset, node)
        return [node]


# ---- answer cells: rewritten in the chapter's text before it is parsed ---------------------------------


def rewrite_answer_cells(text: str, publish: bool, solutions) -> str:
    """Each markdown cell's answer-key region as a `{tinytorch-solution}` directive, or, when
    solutions are not published, nbgrader's "YOUR ANSWER HERE"; code cells are left as they are."""
    out = []
    for start, lines in solutions.split_cells(text):
        has_marker = any(solutions.BEGIN.match(l.rstrip("\r\n")) for l in lines)
        if not (solutions.is_markdown_cell(lines) and has_marker):
            out.extend(lines)
            continue
        if not publish:
            body = "".join(lines[1:])
            cleared, _ = solutions.clear_answers(body.rstrip("\n"), first_line=start + 1)
            out.append(lines[0])
            out.append(cleared + ("\n" if body.endswith("\n") else ""))
            continue
        for line in lines:
            bare = line.rstrip("\r\n")
            if solutions.BEGIN.match(bare):
                out.append(f"\n:::{{tinytorch-solution}} {SHOW_ANSWER_KEY}\n")
            elif solutions.END.match(bare):
                out.append(":::\n")
            else:
                out.append(line)
    return "".join(out)


def _on_source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    if not CHAPTER_DOC.match(docname) or not app.env.doc2path(docname).endswith(".py"):
        return
    solutions = _solutions(Path(app.srcdir))
    try:
        source[0] = rewrite_answer_cells(source[0], publish_solutions(app), solutions)
    except solutions.SolutionError as err:
        raise ExtensionError(f"{docname}.py: {err}", modname=EXTENSION) from None


# ---- code cells: rewritten on the page, after execution --------------------------------------------------


def segments(code: str, solutions) -> list[tuple[str, str]]:
    """A cell's code cut at its regions: ("code" | "solution" | "hidden", text), markers dropped."""
    parts, kind, current = [], "code", []

    def close(next_kind: str) -> None:
        nonlocal kind, current
        text = "\n".join(current)
        if text.strip():
            parts.append((kind, text))
        kind, current = next_kind, []

    for line in code.split("\n"):
        if solutions.BEGIN.match(line):
            close("solution")
        elif solutions.HIDDEN_BEGIN.match(line):
            close("hidden")
        elif solutions.END.match(line) or solutions.HIDDEN_END.match(line):
            close("code")
        else:
            current.append(line)
    close("code")
    return parts


def _code_block(template: nodes.literal_block, text: str) -> nodes.literal_block:
    block = nodes.literal_block(text, text)
    for key in ("language", "linenos", "highlight_args", "source", "line"):
        if key in template:
            block[key] = template[key]
    block["classes"] = list(template["classes"])
    block.source, block.line = template.source, template.line
    return block


def _on_doctree_read(app: Sphinx, doctree: nodes.document) -> None:
    match = CHAPTER_DOC.match(app.env.docname)
    if not match:
        return
    solutions = _solutions(Path(app.srcdir))
    publish = publish_solutions(app)
    for container in list(doctree.findall(nodes.container)):
        if container.get("nb_element") != "cell_code_source":
            continue
        for block in list(container.findall(nodes.literal_block)):
            code = block.astext()
            marked = any(
                p.match(line) for line in code.split("\n")
                for p in (solutions.BEGIN, solutions.END, solutions.HIDDEN_BEGIN, solutions.HIDDEN_END)
            )
            if not marked:
                continue
            if not publish:
                try:
                    stubbed, _ = solutions.clear_solutions(code, match["folder"])
                    stubbed, _ = solutions.remove_hidden_tests(stubbed)
                except solutions.SolutionError as err:
                    raise ExtensionError(f"{app.env.docname}.py: {err}", modname=EXTENSION) from None
                block.replace_self(_code_block(block, stubbed))
                continue
            pieces = []
            for kind, text in segments(code, solutions):
                if kind == "code":
                    pieces.append(_code_block(block, text))
                else:
                    label = SHOW_SOLUTION if kind == "solution" else SHOW_HIDDEN_TESTS
                    toggle = solution_toggle(label=label, kind=kind)
                    toggle += _code_block(block, text)
                    pieces.append(toggle)
            block.replace_self(pieces)


def setup(app: Sphinx) -> dict:
    # true: solutions behind toggles; false: the learner's stubs, no answer keys (a live course).
    app.add_config_value(CONFIG, True, "env", types=[bool, str])
    app.add_node(
        solution_toggle,
        html=(_visit_html, _depart_html),
        latex=(_visit_other, _depart_other),
        text=(_visit_other, _depart_other),
        man=(_visit_other, _depart_other),
        texinfo=(_visit_other, _depart_other),
    )
    app.add_directive("tinytorch-solution", SolutionDirective)
    app.connect("source-read", _on_source_read)
    app.connect("doctree-read", _on_doctree_read)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
