"""The book build is the pipeline: exercised on a small book built in a temporary folder.

Each test builds a book of two modules (one written, one not) with the real
_config.yml and the real extensions in book/_ext, so what passes here is what
`jupyter-book build .` does on the course itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import as_result, build_once, outcome

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow

CURRICULUM = """\
[book]
root = "book/intro"

[[part]]
caption = "The course"
pages = ["book/progress"]

[[part]]
caption = "Chapters"

[[module]]
folder = "01_hello"
part = "Chapters"
title = "Hello"
builds = "an add function"
exports = ["core.hello"]
checkpoint = { question = "Can I add two numbers?" }

[[module]]
folder = "02_world"
part = "Chapters"
title = "World"
builds = "a greeting"
exports = ["core.world"]
checkpoint = { question = "Can I greet the world?" }
"""

# What the book had before the build writes it from CURRICULUM: the build replaces it.
TOC = """\
format: jb-book
root: book/intro
parts:
  - caption: The course
    chapters:
      - file: book/progress
  - caption: Chapters
    chapters:
      - file: modules/01_hello/README
      - file: modules/02_world/README
"""

INTRO = """\
# A small book

```{mermaid}
flowchart LR
  chapter --> package --> checkpoint
```
"""

HEADER = """\
# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---
"""

CHAPTER = HEADER + '''
# %% [markdown]
"""
# Hello

A chapter with one exported function.
"""

# %%
#| default_exp core.hello

# %%
#| export
def add(a, b):
    """Add two numbers."""
    return a + b

# %%
from tinytorch.core.hello import add as exported_add

print("exported add(2, 3) =", exported_add(2, 3))
'''

CHECKPOINT = '''\
"""Checkpoint 01 (hello): Can I add two numbers?"""

from _harness import main


def check_add():
    """add(2, 3) is 5"""
    from tinytorch.core.hello import add

    assert add(2, 3) == EXPECTED, "add(2, 3) should be EXPECTED"


if __name__ == "__main__":
    main(globals())
'''


def make_book(folder: Path, chapter: str = CHAPTER, expected: int = 5) -> Path:
    """A two-module book: 01_hello written (with a checkpoint), 02_world still a README."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    ext = (ROOT / "book" / "_ext").as_posix()
    config["sphinx"]["local_extensions"] = {name: ext for name in config["sphinx"]["local_extensions"]}
    files = {
        "_config.yml": yaml.safe_dump(config, sort_keys=False),
        "_toc.yml": TOC,
        "curriculum.toml": CURRICULUM,
        "book/intro.md": INTRO,
        "modules/01_hello/README.md": "# Hello\n\nAn add function.\n",
        "modules/01_hello/hello_dev.py": chapter,
        "modules/02_world/README.md": "# World\n\nNot written yet. It follows [01_hello](../01_hello/README.md).\n",
        "checkpoints/checkpoint_01_hello.py": CHECKPOINT.replace("EXPECTED", str(expected)),
        "tinytorch/__init__.py": '"""A small package."""\n',
        "tinytorch/core/__init__.py": "",
    }
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    shutil.copy(ROOT / "checkpoints" / "_harness.py", folder / "checkpoints" / "_harness.py")
    return folder


def build(book: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).parent / "jupyter-book"
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]
    env = dict(os.environ)
    # The real tito, found by the extension; the book's own tinytorch comes first for its kernels and checkpoints.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["NO_COLOR"] = "1"
    done = subprocess.run(
        command + ["build", str(book), "-W", "--keep-going"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    done.output = re.sub(r"\x1b\[[0-9;]*m", "", done.stdout + done.stderr)
    return done


@pytest.fixture(scope="module")
def green(shared_dir):
    """The passing book, built once per test run (whichever worker asks first); its tests only read it."""
    def build_green(folder: Path) -> dict:
        book = make_book(folder)
        assert not (book / "book" / "progress.md").exists()  # as on a fresh clone
        return outcome(build(book))

    book, done = build_once(shared_dir, "green-book", build_green)
    return book, as_result(done)


def test_green_build_succeeds(green):
    book, done = green
    assert done.returncode == 0, done.output[-3000:]


def test_green_build_exports_the_written_chapter(green):
    book, _ = green
    text = (book / "tinytorch" / "core" / "hello.py").read_text(encoding="utf-8")
    assert text.startswith("# AUTOGENERATED from modules/01_hello/hello_dev.py")
    assert "def add(a, b):" in text


def test_progress_page_shows_the_passed_checkpoint_and_the_unwritten_module(green):
    book, _ = green
    html = (book / "_build" / "html" / "book" / "progress.html").read_text(encoding="utf-8")
    rows = html.split("<tr")[1:]  # the table's rows (the navigation before it names the chapters too)
    row = next(r for r in rows if "01_hello" in r)
    assert "PASSED" in row and "Can I add two numbers?" in row and "<td><p>01</p></td>" in row
    row = next(r for r in rows if "02_world" in r)
    assert "not yet written" in row


def test_chapter_executes_against_the_package_the_build_exported(green):
    book, _ = green
    html = (book / "_build" / "html" / "modules" / "01_hello" / "hello_dev.html").read_text(encoding="utf-8")
    assert "exported add(2, 3) = 5" in html


def test_build_points_a_written_modules_toc_entry_at_its_chapter(green):
    book, _ = green
    toc = (book / "_toc.yml").read_text(encoding="utf-8")
    assert "- file: modules/01_hello/hello_dev\n" in toc
    assert "- file: modules/02_world/README\n" in toc


def test_link_to_a_written_modules_readme_leads_to_its_chapter(green):
    book, _ = green
    html = (book / "_build" / "html" / "modules" / "02_world" / "README.html").read_text(encoding="utf-8")
    assert 'href="../01_hello/hello_dev.html"' in html


def test_failing_checkpoint_fails_the_build_and_is_named(tmp_path):
    book = make_book(tmp_path, expected=6)
    done = build(book)
    assert done.returncode != 0
    assert "checkpoint 01_hello: FAILED: check_add (add): AssertionError: add(2, 3) should be 6 [checkpoint_01_hello.py:" \
        in done.output, done.output[-3000:]
    assert "FAILED" in (book / "book" / "progress.md").read_text(encoding="utf-8")


def test_failing_cell_fails_the_build(tmp_path):
    chapter = CHAPTER + '\n# %%\nraise RuntimeError("a deliberately failing cell")\n'
    book = make_book(tmp_path, chapter=chapter)
    done = build(book)
    assert done.returncode != 0
    assert "a deliberately failing cell" in done.output, done.output[-3000:]


def test_chapter_with_a_syntax_error_fails_at_export_and_leaves_the_package_unchanged(tmp_path):
    from tito.export import export_source

    book = make_book(tmp_path)
    export_source(book, book / "modules" / "01_hello" / "hello_dev.py")
    package_file = book / "tinytorch" / "core" / "hello.py"
    before = package_file.read_bytes()
    chapter = book / "modules" / "01_hello" / "hello_dev.py"
    chapter.write_text(CHAPTER.replace("    return a + b", "    return a +* b"), encoding="utf-8")
    done = build(book)
    assert done.returncode != 0
    assert "export of 01_hello failed: modules/01_hello/hello_dev.py:" in done.output, done.output[-3000:]
    assert "nothing was exported" in done.output
    assert package_file.read_bytes() == before


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed; .ci/run installs it (apt-get install chromium)")
    pytest.skip("chromium is not installed")


@pytest.mark.browser
def test_diagram_renders_from_disk_with_no_network(green, tmp_path):
    book, done = green
    assert done.returncode == 0
    page = book / "_build" / "html" / "book" / "intro.html"
    command = [
        _chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        # Every host name fails to resolve: nothing can come from the network.
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path}", "--virtual-time-budget=10000", "--dump-dom", page.as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    diagram = re.search(r'<pre class="mermaid"[^>]*>(.*?)</pre>', dom, flags=re.DOTALL)
    assert diagram, "no Mermaid block in the page"
    assert "<svg" in diagram[1] and "checkpoint" in diagram[1], diagram[0][:500]
