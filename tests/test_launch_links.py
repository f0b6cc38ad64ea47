"""Launch buttons: every chapter page's Colab and Binder links open an exercise notebook that is published.

Jupyter Book points a launch link at `.ipynb` only when a notebook sits beside the
chapter at build time; the build writes the chapter's exercise there
(book/_ext/launch_notebooks.py) and copies it into the site, with the complete
notebook, a zip of every exercise and a Binder environment pinned to the commit
the site was built from, for publishing on the branch `repository.branch` names. These tests read the built site (`built_site`,
tests/conftest.py) and check each link against the files published with it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from tito import curriculum

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPOSITORY = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"]["branch"]
OWNER_REPO = urlsplit(REPOSITORY).path.strip("/")


def chapter_pages(site: Path) -> list[tuple[curriculum.Module, Path]]:
    course = curriculum.load(ROOT)
    pages = []
    for module in course.written_modules():
        page = site / module.dev_file(ROOT).relative_to(ROOT).with_suffix(".html")
        if page.exists():
            pages.append((module, page))
    assert pages, f"no chapter pages in {site}"
    return pages


def launch_links(page: Path) -> dict[str, str]:
    text = page.read_text(encoding="utf-8")
    links = {}
    for href in re.findall(r'href="(https://[^"]+)"', text):
        href = href.replace("&amp;", "&")
        if href.startswith(CONFIG["launch_buttons"]["colab_url"]):
            links["colab"] = href
        elif href.startswith(CONFIG["launch_buttons"]["binderhub_url"]):
            links["binder"] = href
    return links


def published_path(kind: str, link: str) -> tuple[str, str]:
    """(branch, path in that branch) that a Colab or Binder link opens."""
    if kind == "colab":
        match = re.fullmatch(rf".*/github/{re.escape(OWNER_REPO)}/blob/([^/]+)/(.+)", link)
        assert match, f"{link} does not open a notebook of {REPOSITORY} on GitHub"
        return match[1], match[2]
    parts = urlsplit(link)
    match = re.fullmatch(rf"/v2/gh/{re.escape(OWNER_REPO)}/([^/]+)", parts.path)
    assert match, f"{link} does not launch {REPOSITORY} on Binder"
    path = parse_qs(parts.query)["urlpath"][0]
    return match[1], path.removeprefix("tree/").removeprefix("lab/tree/")


def test_every_chapter_page_has_a_colab_and_a_binder_link(built_site):
    for module, page in chapter_pages(built_site):
        assert set(launch_links(page)) == {"colab", "binder"}, f"{page.name}: {launch_links(page)}"


def test_no_other_page_has_a_launch_link(built_site):
    chapters = {page for _, page in chapter_pages(built_site)}
    others = [page for page in built_site.rglob("*.html") if page not in chapters and "_static" not in page.parts]
    assert any("milestones" in page.parts for page in others), "the milestone pages should be among the pages checked"
    offending = [page.relative_to(built_site).as_posix() for page in others if launch_links(page)]
    assert not offending, f"pages with launch links but no published notebook: {offending}"


@pytest.mark.parametrize("kind", ["colab", "binder"])
def test_launch_links_open_a_notebook_published_with_the_site(built_site, kind):
    for module, page in chapter_pages(built_site):
        branch, path = published_path(kind, launch_links(page)[kind])
        assert branch == BRANCH, f"{page.name}: the {kind} link opens branch {branch}, the site is published to {BRANCH}"
        assert path.endswith(".ipynb"), f"{page.name}: the {kind} link opens {path}, which Colab cannot open"
        notebook = built_site / path
        assert notebook.is_file(), f"{page.name}: the {kind} link opens {path}, which the site does not publish"
        assert path == module.dev_file(ROOT).relative_to(ROOT).with_suffix(".ipynb").as_posix()


def test_binder_finds_an_environment_that_installs_tinytorch_from_the_repository_at_the_sites_commit(built_site):
    requirements = (built_site / "binder" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert expected_requirement(built_site) in requirements
    assert "-e ." not in requirements, "the published branch holds the site, not the project: '-e .' would install nothing"


def test_the_repository_has_its_own_binder_environment_that_installs_the_checkout():
    requirements = (ROOT / "binder" / "requirements.txt").read_text(encoding="utf-8").splitlines()
    assert "-e ." in requirements


def cells(path: Path) -> list[dict]:
    """A notebook's cells, each source as one string (the file may store it as a list of lines)."""
    found = json.loads(path.read_text(encoding="utf-8"))["cells"]
    for cell in found:
        cell["source"] = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    return found


def published(site: Path, module) -> list[dict]:
    return cells(site / module.dev_file(ROOT).relative_to(ROOT).with_suffix(".ipynb"))


def test_each_published_notebook_is_the_chapters_exercise_with_stubs_and_no_solution(built_site):
    from tito.solutions import count_regions

    for module, page in chapter_pages(built_site):
        notebook = published(built_site, module)
        text = "\n".join(c["source"] for c in notebook)
        regions = count_regions(module.dev_file(ROOT).read_text(encoding="utf-8"))
        assert "### BEGIN SOLUTION" not in text and "### END SOLUTION" not in text, f"{module.folder}: a solution is published"
        assert "### BEGIN HIDDEN TESTS" not in text, f"{module.folder}: hidden tests are published"
        stubs = text.count("raise NotImplementedError(")
        assert stubs >= regions, f"{module.folder}: {stubs} stubs for {regions} solution regions"
        assert f"self_check({module.folder!r}, globals())" in notebook[-1]["source"], f"{module.folder}: no self-check last"


def test_the_complete_notebook_is_published_beside_it_and_says_it_holds_the_solutions(built_site):
    for module, page in chapter_pages(built_site):
        source = module.dev_file(ROOT)
        complete = built_site / source.relative_to(ROOT).parent / f"{source.stem}_complete.ipynb"
        notebook = cells(complete)
        assert notebook[0]["source"].startswith("**Complete version: contains the solutions.**")
        assert "### BEGIN SOLUTION" in "\n".join(c["source"] for c in notebook) or "BEGIN SOLUTION" not in source.read_text()


def test_one_zip_holds_every_exercise_notebook(built_site):
    import zipfile

    with zipfile.ZipFile(built_site / "tinytorch-exercises.zip") as bundle:
        names = set(bundle.namelist())
        for module, page in chapter_pages(built_site):
            name = f"tinytorch-exercises/{module.folder}/{module.dev_file(ROOT).stem}.ipynb"
            assert name in names, f"{name} is not in the zip"
            assert bundle.read(name) == (built_site / module.dev_file(ROOT).relative_to(ROOT).with_suffix(".ipynb")).read_bytes()


def build_commit(site: Path) -> str | None:
    """The commit the published notebooks were built from (their metadata); None for a copy that was not a checkout."""
    module, _ = chapter_pages(site)[0]
    notebook = json.loads((site / module.dev_file(ROOT).relative_to(ROOT).with_suffix(".ipynb")).read_text(encoding="utf-8"))
    return notebook["metadata"]["tinytorch"]["commit"]


def expected_requirement(site: Path) -> str:
    commit = build_commit(site)
    if commit is None:
        import os

        assert not os.environ.get("TINYTORCH_SITE"), "a site built with 'make book' in a checkout must pin its commit"
        return f"tinytorch @ git+{REPOSITORY}"
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert commit == head, f"the site was built from {commit}, this checkout is at {head}"
    return f"tinytorch @ git+{REPOSITORY}@{commit}"


def install_cell(site: Path) -> str:
    module, _ = chapter_pages(site)[0]
    return cells(site / module.dev_file(ROOT).relative_to(ROOT).with_suffix(".ipynb"))[0]["source"]


def run_install_cell(source: str, on_colab: bool, monkeypatch) -> list[list[str]]:
    calls = []
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: calls.append(args))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    exec(compile(source, "install-cell", "exec"), {})
    return calls


def test_the_install_cell_installs_tinytorch_from_the_repository_on_colab(built_site, monkeypatch):
    expected = expected_requirement(built_site)  # before subprocess.run is replaced
    calls = run_install_cell(install_cell(built_site), on_colab=True, monkeypatch=monkeypatch)
    assert calls == [[sys.executable, "-m", "pip", "install", "--quiet", expected]]


def test_the_install_cell_does_nothing_anywhere_else(built_site, monkeypatch):
    assert run_install_cell(install_cell(built_site), on_colab=False, monkeypatch=monkeypatch) == []


def test_the_notebooks_beside_the_chapters_are_git_ignored():
    course = curriculum.load(ROOT)
    for module in course.written_modules():
        notebook = module.dev_file(ROOT).with_suffix(".ipynb").relative_to(ROOT).as_posix()
        done = subprocess.run(["git", "check-ignore", "--no-index", "-q", notebook], cwd=ROOT)
        assert done.returncode == 0, f"{notebook} is not git-ignored"
