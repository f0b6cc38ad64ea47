"""The built site as a reader meets it: no raw answers, its own project's address, a course map.

Reads the HTML of the site (`built_site`, tests/conftest.py). The solutions switch
(`tinytorch_publish_solutions`) is checked both ways on a small book.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
import yaml

from tito import curriculum
from tito.solutions import BEGIN, count_regions, is_markdown_cell, split_cells

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPOSITORY = CONFIG["repository"]["url"].rstrip("/")
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def text_of(page: Path) -> str:
    """A page's visible text, roughly: tags dropped, entities decoded."""
    body = page.read_text(encoding="utf-8")
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


def chapters(site: Path):
    course = curriculum.load(ROOT)
    found = [(m, site / (m.toc_entry(ROOT) + ".html")) for m in course.written_modules()]
    found = [(m, p) for m, p in found if p.exists()]
    assert found, f"no chapter pages in {site}"
    return found


def answer_cells(source: str) -> int:
    return sum(1 for _, lines in split_cells(source)
               if is_markdown_cell(lines) and any(BEGIN.match(l.rstrip("\r\n")) for l in lines))


def test_no_chapter_page_shows_a_raw_solution_marker(built_site):
    for module, page in chapters(built_site):
        text = text_of(page)
        shown = [m for m in MARKERS if m in text]
        assert not shown, f"{page.relative_to(built_site)} shows {shown}"


def test_every_solution_region_is_behind_a_show_solution_toggle(built_site):
    for module, page in chapters(built_site):
        source = module.dev_file(ROOT).read_text(encoding="utf-8")
        body = page.read_text(encoding="utf-8")
        toggles = len(re.findall(r'<details class="tt-solution tt-solution"><summary>Show solution</summary>', body))
        assert toggles == count_regions(source), f"{module.folder}: {toggles} toggles for {count_regions(source)} regions"
        keys = body.count("<summary>Show answer key</summary>")
        assert keys == answer_cells(source), f"{module.folder}: {keys} answer-key toggles for {answer_cells(source)} answer cells"


def test_the_quick_start_clones_this_projects_repository(built_site):
    text = text_of(built_site / "book" / "quickstart.html")
    assert f"git clone {REPOSITORY}.git tinytorch" in text
    for page in built_site.rglob("*.html"):
        assert "<repository-url>" not in page.read_text(encoding="utf-8"), page


def test_chapter_pages_link_to_the_repository_its_issues_and_their_own_source(built_site):
    module, page = chapters(built_site)[0]
    body = page.read_text(encoding="utf-8")
    assert f'href="{REPOSITORY}"' in body, "no repository button"
    assert f'href="{REPOSITORY}/issues/new' in body, "no issues button"
    source = module.dev_file(ROOT).relative_to(ROOT).as_posix()
    assert f'href="{REPOSITORY}/edit/main/{source}"' in body, "no edit button on the chapter's source on main"


def test_the_footer_states_the_license(built_site):
    import tomllib

    license = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["license"]["text"]
    assert f"{license} License" in text_of(built_site / "book" / "intro.html")


def test_the_front_page_has_a_course_map_instead_of_a_second_chapter_list(built_site):
    body = (built_site / "book" / "intro.html").read_text(encoding="utf-8")
    article = body[body.index("<article"):body.index("</article>")]
    course = curriculum.load(ROOT)
    cards = re.findall(r'<div class="tt-card[^"]*">(.*?)</div>', article, flags=re.S)
    assert len(cards) == len(course.modules), f"{len(cards)} cards for {len(course.modules)} chapters"
    for module, card in zip(course.modules, cards):
        text = html.unescape(re.sub(r"<[^>]+>", "", card))
        assert module.title in text and "You build:" in text and "Before it:" in text and "Time:" in text, text
        if module.checkpoint:
            assert module.checkpoint.question in text, text
    assert "toctree-l1" not in article, "the front page still lists the chapters the sidebar lists"


def test_the_front_page_names_the_book_once(built_site):
    body = (built_site / "book" / "intro.html").read_text(encoding="utf-8")
    title = html.unescape(re.search(r"<title>(.*?)</title>", body, flags=re.S)[1]).strip()
    assert title == CONFIG["title"], f"the tab says {title!r}"
    sidebar = body[body.index('class="bd-links'):]
    sidebar = sidebar[:sidebar.index("</nav>")]
    entries = [html.unescape(re.sub(r"<[^>]+>", "", a)).strip() for a in re.findall(r"<a [^>]*>(.*?)</a>", sidebar, flags=re.S)]
    assert CONFIG["title"] not in entries, "the sidebar lists the front page under the book's own title again"


def test_pages_keep_double_hyphens_and_show_no_build_machine_paths(built_site):
    for page in built_site.rglob("*.html"):
        dashed = re.findall(r"[–—](?:checkpoint|skip-test|verbose|all|force)\b", text_of(page))
        assert not dashed, f"{page.relative_to(built_site)}: a command-line option became a dash: {dashed[:3]}"
    for module, page in chapters(built_site):
        text = text_of(page)
        assert str(ROOT) not in text, f"{page.name} shows the build's checkout path {ROOT}"
        leaked = re.findall(r"/tmp/(?:tmp|pytest-|tinytorch-)[\w.-]*", text)
        assert not leaked, f"{page.name} shows temporary paths of the build machine: {leaked[:3]}"


# ---- the solutions switch, on a small book --------------------------------------------------------------

CHAPTER = '''
# %% [markdown]
"""
# Hello
"""

# %%
#| default_exp core.hello

# %%
#| export
def add(a, b):
    """Add two numbers."""
    ### BEGIN SOLUTION
    return a + b  # the secret sauce
    ### END SOLUTION

# %%
print("add(2, 3) =", add(2, 3))

# %% [markdown]
"""
Why add?
"""

# %% [markdown] nbgrader={"grade": true, "grade_id": "answer_why", "locked": false, "points": 2, "schema_version": 3, "solution": true, "task": false}
"""
**Your answer.**

### BEGIN SOLUTION
**Answer key.** Because the rubric says so.
### END SOLUTION
"""
'''


@pytest.fixture(scope="module", params=[True, False], ids=["published", "live-course"])
def switched(request, tmp_path_factory):
    from test_book_pipeline import HEADER, build, make_book

    book = make_book(tmp_path_factory.mktemp("switch"), chapter=HEADER + CHAPTER)
    config = yaml.safe_load((book / "_config.yml").read_text(encoding="utf-8"))
    config["sphinx"]["config"]["tinytorch_publish_solutions"] = request.param
    (book / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    done = build(book)
    assert done.returncode == 0, done.output[-3000:]
    return request.param, book / "_build" / "html"


def test_the_switch_publishes_solutions_behind_toggles_or_only_the_stubs(switched):
    publish, site = switched
    page = site / "modules" / "01_hello" / "hello_dev.html"
    text = text_of(page)
    assert "add(2, 3) = 5" in text, "the chapter executes its complete code either way"
    assert not any(m in text for m in MARKERS)
    source = (site / "_sources" / "modules" / "01_hello" / "hello_dev.py").read_text(encoding="utf-8")
    complete = site / "modules" / "01_hello" / "hello_dev_complete.ipynb"
    if publish:
        assert "Show solution" in text and "the secret sauce" in text
        assert "Show answer key" in text and "Because the rubric says so." in text
        assert complete.exists()
    else:
        assert "the secret sauce" not in text and "raise NotImplementedError" in text
        assert "Because the rubric says so." not in text and "YOUR ANSWER HERE" in text
        assert "the secret sauce" not in source and "Because the rubric says so." not in source
        assert not complete.exists()
        searchable = (site / "searchindex.js").read_text(encoding="utf-8")
        assert "sauce" not in searchable and "rubric" not in searchable
