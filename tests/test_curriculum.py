"""curriculum.toml is the one list of the course; the folders, _toc.yml and the chapters agree with it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tito.curriculum import load

ROOT = Path(__file__).resolve().parent.parent
CURRICULUM = load(ROOT)
MODULES = CURRICULUM.modules
WRITTEN = CURRICULUM.written_modules()


def _toc_files(node) -> list[str]:
    """Every `file:` in _toc.yml, in order, at any depth."""
    found = []
    if isinstance(node, dict):
        if "file" in node:
            found.append(str(node["file"]))
        for value in node.values():
            found += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += _toc_files(item)
    return found


def _toc() -> dict:
    return yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))


def test_the_course_has_18_modules_with_unique_folders():
    assert len(MODULES) == 18
    assert len({m.folder for m in MODULES}) == 18


def test_module_folders_are_numbered_01_to_18_in_order():
    assert [int(m.number) for m in MODULES] == list(range(1, 19))


def test_every_chapter_has_the_checkpoint_of_its_own_number():
    assert [cp.number for cp in CURRICULUM.checkpoints] == list(range(1, 19))
    for module in MODULES:
        assert module.checkpoint is not None, module.folder
        assert f"{module.checkpoint.number:02d}" == module.number, module.folder
        assert module.checkpoint.name == module.name, module.folder


def test_checkpoint_files_are_named_for_their_chapter():
    for module in MODULES:
        assert module.checkpoint.filename == f"checkpoint_{module.folder}.py"
    files = sorted(p.name for p in (ROOT / "checkpoints").glob("checkpoint_*.py"))
    assert files == sorted(m.checkpoint.filename for m in MODULES), "a checkpoint file belongs to no chapter"


def test_checkpoint_number_means_the_same_chapter_as_module_number():
    for number in ("2", "02", "11", "17", "18"):
        assert CURRICULUM.checkpoint(number).module_folder == CURRICULUM.module(number).folder


def test_a_checkpoint_entry_cannot_set_its_own_number(tmp_path):
    from tito.errors import TitoError

    (tmp_path / "curriculum.toml").write_text(
        '[[module]]\nfolder = "01_setup"\ntitle = "Setup"\nbuilds = "x"\nexport = "core.setup"\n'
        'checkpoint = { number = 0, question = "Can I?" }\n', encoding="utf-8")
    with pytest.raises(TitoError, match="only 'question' belongs there"):
        load(tmp_path)


def test_each_checkpoint_file_states_its_number_and_question():
    for cp in CURRICULUM.checkpoints:
        first = cp.path(ROOT).read_text(encoding="utf-8").splitlines()[0]
        assert first == f'"""Checkpoint {cp.number:02d} ({cp.name}): {cp.question}', first


def test_every_checkpoint_asks_a_question():
    for cp in CURRICULUM.checkpoints:
        assert cp.question.startswith("Can I ") and cp.question.endswith("?"), cp.id


def test_export_targets_are_unique_module_names():
    targets = [target for m in MODULES for target in m.exports]
    assert len(set(targets)) == len(targets), "two chapters export to one file"
    for target in targets:
        assert re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*", target), target


def _manifest_targets() -> dict[str, set[str]]:
    """chapter folder -> the package modules tinytorch/_manifest.json says it wrote."""
    import json

    files = json.loads((ROOT / "tinytorch" / "_manifest.json").read_text(encoding="utf-8"))["files"]
    targets: dict[str, set[str]] = {}
    for rel, entry in files.items():
        targets.setdefault(Path(entry["source"]).parent.name, set()).add(rel.removesuffix(".py").replace("/", "."))
    return targets


@pytest.mark.parametrize("module", WRITTEN, ids=lambda m: m.folder)
def test_curriculum_lists_every_file_the_chapter_exports(module):
    written = _manifest_targets().get(module.folder, set())
    assert set(module.exports) == written, (
        f"curriculum.toml says {module.folder} exports {sorted(module.exports)}, the package's manifest "
        f"{sorted(written)}; list every `#| export` target in its `exports`")


@pytest.mark.parametrize("module", WRITTEN, ids=lambda m: m.folder)
def test_curriculum_exports_are_the_chapters_export_lines(module):
    text = module.dev_file(ROOT).read_text(encoding="utf-8")
    named = re.findall(r"^#\|[ \t]*exports?i?[ \t]+(\S+)[ \t]*$", text, flags=re.MULTILINE)
    assert set(named) | {module.export} == set(module.exports), (module.folder, sorted(set(named)))


def test_every_chapter_is_in_a_part_of_the_book():
    captions = [part.caption for part in CURRICULUM.parts]
    assert all(m.part in captions for m in MODULES)
    assert CURRICULUM.book_root == "book/intro"


def test_the_committed_toc_is_the_one_the_curriculum_gives():
    from tito.book import toc_text

    assert (ROOT / "_toc.yml").read_text(encoding="utf-8") == toc_text(CURRICULUM), (
        "_toc.yml is not what curriculum.toml gives; run 'tito book toc' and commit _toc.yml")


def _course(tmp_path, text: str):
    (tmp_path / "curriculum.toml").write_text(text, encoding="utf-8")
    return load(tmp_path)


PARTS = '[book]\nroot = "book/intro"\n\n[[part]]\ncaption = "A"\nnumbered = true\n\n[[part]]\ncaption = "Pages"\npages = ["book/results/x"]\n\n'


def test_a_new_chapter_or_page_is_one_entry_in_the_curriculum(tmp_path):
    from tito.book import toc_text

    one = PARTS + '[[module]]\nfolder = "01_a"\npart = "A"\ntitle = "A"\nbuilds = "x"\nexports = ["core.a"]\n'
    two = one + '\n[[module]]\nfolder = "02_b"\npart = "A"\ntitle = "B"\nbuilds = "y"\nexports = ["core.b", "core.c"]\n'
    (tmp_path / "modules" / "02_b").mkdir(parents=True)
    (tmp_path / "modules" / "02_b" / "b_dev.py").write_text("# %%\n", encoding="utf-8")
    toc = toc_text(_course(tmp_path, two.replace('pages = ["book/results/x"]', 'pages = ["book/results/x", "book/milestones"]')))
    assert toc.endswith("  - caption: A\n    numbered: true\n    chapters:\n      - file: modules/01_a/README\n"
                        "      - file: modules/02_b/b_dev\n  - caption: Pages\n    chapters:\n"
                        "      - file: book/results/x\n      - file: book/milestones\n"), toc
    assert toc == toc_text(_course(tmp_path, two.replace('pages = ["book/results/x"]', 'pages = ["book/results/x", "book/milestones"]')))
    assert _course(tmp_path, two).module("02").exports == ("core.b", "core.c")


def test_a_chapter_in_an_unknown_or_out_of_order_part_is_refused(tmp_path):
    from tito.errors import TitoError

    entry = '[[module]]\nfolder = "{folder}"\npart = "{part}"\ntitle = "T"\nbuilds = "x"\nexports = ["core.{name}"]\n\n'
    with pytest.raises(TitoError, match="names part 'Nope', which no \\[\\[part\\]\\] has"):
        _course(tmp_path, PARTS + entry.format(folder="01_a", part="Nope", name="a"))
    with pytest.raises(TitoError, match="comes before the part of the chapter above it"):
        _course(tmp_path, PARTS + entry.format(folder="01_a", part="Pages", name="a") + entry.format(folder="02_b", part="A", name="b"))
    with pytest.raises(TitoError, match="has exports = 'core.a'"):
        _course(tmp_path, PARTS + entry.format(folder="01_a", part="A", name="a").replace('["core.a"]', '"core.a"'))


def test_tito_book_toc_check_fails_on_a_stale_toc(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from tito.cli import cli

    _course(tmp_path, PARTS + '[[module]]\nfolder = "01_a"\npart = "A"\ntitle = "A"\nbuilds = "x"\nexports = ["core.a"]\n')
    monkeypatch.setenv("TINYTORCH_ROOT", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(cli, ["book", "toc", "--check"]).exit_code == 1      # no _toc.yml yet
    assert runner.invoke(cli, ["book", "toc"]).exit_code == 0
    assert "modules/01_a/README" in (tmp_path / "_toc.yml").read_text(encoding="utf-8")
    assert runner.invoke(cli, ["book", "toc", "--check"]).exit_code == 0
    (tmp_path / "_toc.yml").write_text("format: jb-book\n", encoding="utf-8")
    stale = runner.invoke(cli, ["book", "toc", "--check"])
    assert stale.exit_code == 1 and "tito book toc" in stale.output


def test_the_architecture_diagram_names_the_package_modules_that_exist():
    """The layers diagram on the architecture page is drawn from the curriculum; every module it names exists."""
    import sys

    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    from tinytorch_pipeline import layers_mermaid

    source = layers_mermaid(ROOT)
    named = set(re.findall(r"tinytorch\.([a-z0-9_.]+[a-z0-9_])", source))
    files = {rel.removesuffix(".py").replace("/", ".") for rel in
             __import__("json").loads((ROOT / "tinytorch" / "_manifest.json").read_text())["files"]}
    assert named == files, (sorted(named - files), sorted(files - named))


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.folder)
def test_module_folder_exists_with_a_readme(module):
    assert module.dir(ROOT).is_dir(), f"modules/{module.folder}/ is missing"
    assert module.readme(ROOT).is_file(), f"modules/{module.folder}/README.md is missing"


def test_no_module_folder_is_missing_from_the_curriculum():
    folders = sorted(p.name for p in (ROOT / "modules").iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    assert folders == sorted(m.folder for m in MODULES)


def test_toc_chapter_entries_are_each_modules_page_in_course_order():
    files = [f.removesuffix(".py").removesuffix(".md") for f in _toc_files(_toc())]
    chapters = [f for f in files if f.startswith("modules/")]
    assert chapters == [m.toc_entry(ROOT) for m in MODULES], (
        "_toc.yml's module entries are out of step with curriculum.toml; "
        "run 'tito book toc' and commit _toc.yml"
    )


def test_toc_lists_nothing_chapter_like_outside_modules():
    files = [f for f in _toc_files(_toc()) if not f.startswith("modules/")]
    assert [f for f in files if "_dev" in f or "checkpoint" in f] == []
    assert all(f.startswith("book/") for f in files), files
    assert _toc()["root"].startswith("book/")


def test_toc_lists_the_progress_page_the_build_writes():
    assert "book/progress" in _toc_files(_toc())


@pytest.mark.parametrize("module", WRITTEN, ids=lambda m: m.folder)
def test_written_chapter_default_exp_is_the_curriculum_export(module):
    text = module.dev_file(ROOT).read_text(encoding="utf-8")
    declared = re.findall(r"^#\|\s*default_exp\s+(\S+)\s*$", text, flags=re.MULTILINE)
    assert declared == [module.export], f"{module.dev_file(ROOT).relative_to(ROOT)} declares {declared}"


@pytest.mark.parametrize("module", [m for m in WRITTEN if m.checkpoint], ids=lambda m: m.folder)
def test_written_module_has_its_checkpoint_file(module):
    path = module.checkpoint.path(ROOT)
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
