"""Formulas that render with no network: MathJax is served by the site itself.

Sphinx's MathJax support loads the script from a CDN by default, so a reader
offline (or opening _build/html straight from disk without a network) sees raw
`\\(...\\)`. This points `mathjax_path` at a vendored copy instead.

Vendored file: mathjax_static/mathjax/tex-svg.js is `es5/tex-svg.js` of the npm
package mathjax 3.2.2 (Apache-2.0, LICENSE beside it), 2108580 bytes,
sha256 d4295dc33744836935c1399feece5159577b34c5c8ffb9f1c6324cd82e03a882. The SVG
output needs no font files, so this one file is all there is.
To update: `npm pack mathjax@VERSION`, copy `package/es5/tex-svg.js` and
`package/LICENSE` here, and update this paragraph.
"""

from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config

STATIC = Path(__file__).parent / "mathjax_static"


def _serve_locally(app: Sphinx, config: Config) -> None:
    config.html_static_path.append(str(STATIC))
    config.mathjax_path = "mathjax/tex-svg.js"


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _serve_locally)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
