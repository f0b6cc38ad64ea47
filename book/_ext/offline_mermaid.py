"""Mermaid diagrams that render with no network: the script is served by the site itself.

    ```{mermaid}
    flowchart LR
      chapter --> package
    ```

The directive writes `<pre class="mermaid">` and, on pages that have a diagram
only, adds the vendored `_static/mermaid/mermaid.min.js` (the classic build,
which sets a global `mermaid`: unlike an ES module, a classic script also loads
when the page is opened straight from disk as file://).

Vendored file: mermaid_static/mermaid/mermaid.min.js is `dist/mermaid.min.js`
of the npm package mermaid 11.12.1 (MIT, LICENSE beside it), 2,749,172 bytes,
sha256 198b19442f86f0b46a17e56d3abf744c3a28a3427e66fa8dada3b589a77babcc.
To update: `npm pack mermaid@VERSION`, copy `package/dist/mermaid.min.js` and
`package/LICENSE` here, and update this paragraph.
"""

from __future__ import annotations

import html
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective
from sphinx.application import Sphinx

STATIC = Path(__file__).parent / "mermaid_static"
SCRIPT = "mermaid/mermaid.min.js"
# The theme follows the book's light/dark switch at the time the page loads.
INIT = (
    "document.addEventListener('DOMContentLoaded', function () {"
    " var dark = document.documentElement.dataset.theme === 'dark';"
    " mermaid.initialize({startOnLoad: false, theme: dark ? 'dark' : 'neutral', securityLevel: 'strict'});"
    " mermaid.run({querySelector: 'pre.mermaid'});"
    "});"
)


class mermaid(nodes.General, nodes.Element):
    """A diagram's Mermaid source; only the HTML builder draws it."""


class MermaidDirective(SphinxDirective):
    has_content = True
    required_arguments = 0
    optional_arguments = 0
    final_argument_whitespace = False
    option_spec = {"caption": str}

    def run(self) -> list[nodes.Node]:
        source = "\n".join(self.content).strip()
        if not source:
            return [self.state_machine.reporter.warning("mermaid directive has no diagram source.", line=self.lineno)]
        node = mermaid(source=source)
        self.set_source_info(node)
        if "caption" not in self.options:
            return [node]
        figure = nodes.figure("", node)
        figure += nodes.caption(self.options["caption"], self.options["caption"])
        return [figure]


def _visit_html(self, node: mermaid) -> None:
    # Mermaid reads the element's text, so the source is HTML-escaped, not interpreted.
    self.body.append(f'<pre class="mermaid">\n{html.escape(node["source"])}\n</pre>\n')
    raise nodes.SkipNode


def _skip(self, node: mermaid) -> None:
    raise nodes.SkipNode


def _add_static_path(app: Sphinx) -> None:
    if str(STATIC) not in app.config.html_static_path:
        app.config.html_static_path.append(str(STATIC))


def _add_script(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    # Called during html-page-context, add_js_file adds the script to this page only.
    if doctree is not None and any(doctree.findall(mermaid)):
        app.add_js_file(SCRIPT)
        app.add_js_file(None, body=INIT)


def setup(app: Sphinx) -> dict:
    app.add_node(
        mermaid,
        html=(_visit_html, None),
        latex=(_skip, None),
        text=(_skip, None),
        man=(_skip, None),
        texinfo=(_skip, None),
    )
    app.add_directive("mermaid", MermaidDirective)
    app.connect("builder-inited", _add_static_path)
    app.connect("html-page-context", _add_script)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
