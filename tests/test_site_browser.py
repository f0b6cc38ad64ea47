"""The built site in a real browser: headless Chromium opens every page from disk, with no network.

Every page: no request fails (a missing image, stylesheet or script shows up as a
failed request), every image has pixels, every link into the site leads to a page
(and to an anchor) that exists, and no script throws. Then the three pages a
reader meets first, each with a screenshot saved under _build/screenshots/
(or $TINYTORCH_SCREENSHOTS): the front page, a chapter with its executed output
in view, and the progress page.

The site is `built_site` (tests/conftest.py): the one $TINYTORCH_SITE names, as
CI builds it with `make book`, else a fresh build of a copy of the repository.
"""

from __future__ import annotations

import html
import os
import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from chromium import Chromium, find_chromium
from tito import curriculum

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
# Pages Sphinx writes for its own machinery, not for readers.
SKIPPED_FOLDERS = {"_static", "_sources", "_images", "_sphinx_design_static"}


PHONE = (390, 844, True)
DESKTOP = (1400, 900, False)


def screenshots() -> Path:
    return Path(os.environ.get("TINYTORCH_SCREENSHOTS", ROOT / "_build" / "screenshots"))


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium = Chromium(find_chromium(), tmp_path_factory.mktemp("chromium-profile"), *DESKTOP[:2])
    yield chromium
    chromium.close()


@pytest.fixture(scope="module")
def page(browser):
    return browser.new_page()


def site_pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html") if not SKIPPED_FOLDERS & set(p.relative_to(site).parts))


@lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    return frozenset(html.unescape(a) for a in re.findall(r'\bid="([^"]+)"', text))


def broken_links(site: Path, page_file: Path, hrefs: list[str]) -> list[str]:
    """Links into the site (file:// URLs under it) whose page or anchor does not exist."""
    broken = []
    for href in sorted(set(hrefs)):
        parts = urlsplit(href)
        if parts.scheme != "file":
            continue  # external links: checked for the launch buttons in test_launch_links.py
        target = Path(unquote(parts.path))
        if not target.is_relative_to(site):
            broken.append(f"{href} (outside the site)")
            continue
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            broken.append(f"{href} (no such file)")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in anchors(target):
            broken.append(f"{href} (no anchor #{parts.fragment} in {target.relative_to(site).as_posix()})")
    return broken


# What the desktop visit reads of each page, in one call: images, links, and on chapter pages their
# solution toggles and the code blocks wider than their column.
FACTS = """({
    images: Array.from(document.images, i => [i.currentSrc || i.src, i.complete && i.naturalWidth > 0]),
    links: Array.from(document.querySelectorAll('a[href]'), a => a.href),
    toggles: Array.from(document.querySelectorAll('details.tt-solution'))
        .filter(d => d.querySelector('summary').innerText.trim() === 'Show solution')
        .map(d => [d.open, d.getBoundingClientRect().height]),
    wide_code: Array.from(document.querySelectorAll('div.cell_input pre, div.cell_output pre'))
        .filter(p => p.scrollWidth > p.clientWidth + 1).length,
})"""


@pytest.fixture(scope="module")
def desktop(built_site, page) -> dict[Path, dict]:
    """Every page of the site opened once in a desktop window (chapter pages take a second or more to
    render): what loading it did (failed requests, script errors) and what it shows (FACTS)."""
    page.viewport(*DESKTOP)
    seen = {}
    for path in site_pages(built_site):
        page.goto(path.as_uri(), settle=0.3)
        seen[path] = dict(page.evaluate(FACTS), failures=list(page.failures), errors=list(page.errors))
    return seen


def test_every_page_loads_with_no_missing_image_broken_link_or_script_error(built_site, desktop):
    assert len(desktop) >= 5, f"only {len(desktop)} pages in {built_site}"
    problems = []
    for path, facts in desktop.items():
        name = path.relative_to(built_site).as_posix()
        problems += [f"{name}: failed request {f}" for f in facts["failures"]]
        problems += [f"{name}: image without pixels {src}" for src, ok in facts["images"] if not ok]
        problems += [f"{name}: broken link {b}" for b in broken_links(built_site, path, facts["links"])]
        problems += [f"{name}: script error {e}" for e in facts["errors"] if not e.startswith("console.error")]
    assert not problems, "\n".join(problems)


def test_front_page_shows_the_course(built_site, page):
    page.goto((built_site / "index.html").as_uri())  # redirects to the root page of _toc.yml
    heading = page.wait_for("document.querySelector('article h1') && document.querySelector('article h1').innerText")
    assert "TinyTorch" in heading, heading
    links = page.evaluate("Array.from(document.querySelectorAll('nav.bd-links a'), a => a.href)")
    folders = [f"/modules/{m.folder}/" for m in curriculum.load(ROOT).modules]  # its chapter, or its README
    missing = [f for f in folders if not any(f in link for link in links)]
    assert not missing, f"the navigation does not link these modules: {missing}"
    page.browser.pump(0.5)  # the redirected page's late scripts
    page.screenshot(screenshots() / "front-page.png")


def first_written_chapter(site: Path):
    course = curriculum.load(ROOT)
    for module in course.written_modules():
        page = site / (module.toc_entry(ROOT) + ".html")
        if page.exists() and "_dev" in page.name:
            return module, page
    pytest.fail("the site has no chapter page")


def test_a_chapter_shows_its_executed_output(built_site, page):
    module, chapter = first_written_chapter(built_site)
    page.goto(chapter.as_uri())
    outputs = page.evaluate("Array.from(document.querySelectorAll('.cell_output'), o => o.innerText)")
    assert outputs, f"{chapter.name} shows no cell output: were its cells executed?"
    assert any("✓" in text for text in outputs), f"no passing test output on {chapter.name}: {outputs[:3]}"
    # Bring the first test's output into view, and check a reader can see it.
    box = page.evaluate("""(() => {
        const out = Array.from(document.querySelectorAll('.cell_output')).find(o => o.innerText.includes('✓'));
        out.scrollIntoView({block: 'center'});
        const r = out.getBoundingClientRect(), style = getComputedStyle(out);
        return {top: r.top, bottom: r.bottom, height: r.height, visible: style.visibility !== 'hidden' && style.display !== 'none'};
    })()""")
    assert box["visible"] and box["height"] > 0 and box["bottom"] > 0 and box["top"] < 900, box
    page.browser.pump(0.3)
    page.screenshot(screenshots() / f"chapter-{module.folder}.png")


def test_progress_page_shows_every_checkpoint_run_passed(built_site, page):
    page.goto((built_site / "book" / "progress.html").as_uri())
    # The first table is the checkpoints' (the milestones' follows it).
    rows = page.evaluate("Array.from(document.querySelector('article table').querySelectorAll('tbody tr'), "
                         "r => r.innerText)")
    course = curriculum.load(ROOT)
    assert len(rows) == len(course.modules), rows
    ran = [r for r in rows if "PASSED" in r or "FAILED" in r]
    assert ran and not any("FAILED" in r for r in ran), "\n".join(ran)
    page.screenshot(screenshots() / "progress.png")


# ---- as a reader sees it: a phone (390 px) and a desktop (1400 px) ------------------------------------

OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture
def sized(page):
    """The page, with its window set back to the default size after the test."""
    yield page
    page.viewport(page.browser.width, page.browser.height, False)


def chapter_pages(site: Path):
    course = curriculum.load(ROOT)
    found = [(m, site / (m.toc_entry(ROOT) + ".html")) for m in course.written_modules()]
    found = [(m, p) for m, p in found if p.exists() and "_dev" in p.name]
    assert found, "the site has no chapter page"
    return found


def test_no_page_a_reader_meets_scrolls_sideways_on_a_phone(built_site, sized):
    sized.viewport(*PHONE)
    pages = [("front-page", built_site / "book" / "intro.html"), ("quickstart", built_site / "book" / "quickstart.html")]
    pages += [(f"chapter-{m.folder}", p) for m, p in chapter_pages(built_site)]
    wide = []
    for index, (name, path) in enumerate(pages):
        sized.goto(path.as_uri(), settle=0.3)
        excess = sized.evaluate(OVERFLOW)
        if excess > 0:
            wide.append(f"{path.relative_to(built_site)} is {excess} px wider than the screen")
        if index < 3:
            sized.screenshot(screenshots() / f"phone-{name}.png")
    assert not wide, "\n".join(wide)


def test_an_exercise_notebook_as_jupyter_renders_it_fits_a_phone(built_site, sized, tmp_path):
    import nbformat
    from nbconvert import HTMLExporter

    module, _ = chapter_pages(built_site)[-1]
    notebook = nbformat.read(built_site / module.dev_file(ROOT).relative_to(ROOT).with_suffix(".ipynb"), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(notebook)
    rendered = tmp_path / f"{module.folder}-exercise.html"
    rendered.write_text(body, encoding="utf-8")
    sized.viewport(*PHONE)
    sized.goto(rendered.as_uri(), settle=0.5)
    assert sized.evaluate(OVERFLOW) <= 0, f"the exercise notebook of {module.folder} is wider than a phone"
    text = sized.evaluate("document.body.innerText")
    assert "NotImplementedError" in text and "self_check" in text, "the rendered notebook is not the exercise"
    sized.screenshot(screenshots() / f"phone-exercise-{module.folder}.png")


def test_each_chapter_shows_every_solution_behind_a_closed_toggle(built_site, desktop, sized):
    from tito.solutions import count_regions

    problems, first = [], None
    for module, path in chapter_pages(built_site):
        regions = count_regions(module.dev_file(ROOT).read_text(encoding="utf-8"))
        toggles = desktop[path]["toggles"]
        if len(toggles) != regions:
            problems.append(f"{module.folder}: {len(toggles)} 'Show solution' toggles for {regions} solution regions")
        if any(is_open or height <= 0 for is_open, height in toggles):
            problems.append(f"{module.folder}: a solution toggle is open or invisible before it is clicked")
        if toggles and first is None:
            first = module, path
    if first is not None:  # a reader clicks the first toggle: the code shows
        module, path = first
        sized.viewport(*DESKTOP)
        sized.goto(path.as_uri(), settle=0.3)
        shown = sized.evaluate("""(() => {
            const d = document.querySelector('details.tt-solution');
            d.querySelector('summary').click();
            d.scrollIntoView({block: 'center'});
            return d.open && d.querySelector('pre').getBoundingClientRect().height > 0;
        })()""")
        if not shown:
            problems.append(f"{module.folder}: clicking 'Show solution' does not show the code")
        sized.browser.pump(0.3)
        sized.screenshot(screenshots() / f"desktop-solution-{module.folder}.png")
    assert not problems, "\n".join(problems)


def test_chapter_code_stays_within_the_column_on_a_desktop(built_site, desktop):
    hidden = [f"{module.folder}: {desktop[path]['wide_code']} code blocks scroll sideways"
              for module, path in chapter_pages(built_site) if desktop[path]["wide_code"]]
    assert not hidden, "\n".join(hidden)


def test_a_desktop_page_has_one_search_box(built_site, sized):
    sized.viewport(*DESKTOP)
    sized.goto((built_site / "book" / "quickstart.html").as_uri())
    boxes = sized.evaluate("""Array.from(document.querySelectorAll('.search-button-field, form.bd-search'))
        .filter(e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0
                       && getComputedStyle(e).visibility !== 'hidden'; }).length""")
    assert boxes == 1, f"{boxes} search boxes on a desktop page"
    sized.screenshot(screenshots() / "desktop-quickstart.png")
