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


def test_export_targets_are_unique_dotted_module_names():
    targets = [m.export for m in MODULES]
    assert len(set(targets)) == len(targets)
    for target in targets:
        assert re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", target), target


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
        "run 'jupyter-book build .' (it updates them) and commit _toc.yml"
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
