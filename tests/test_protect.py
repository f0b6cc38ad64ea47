"""`tito system protect`: generated files protected from hand edits, helpfully and reversibly.

Each test works on a copy of the repository (`repo_copy`), made a git checkout
where the pre-commit hook is involved. `disable` must put back every mode and
every byte that `enable` changed, and leave the user's own lines, hooks and
settings exactly as they were.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import json5
import pytest
from click.testing import CliRunner

from tito import protect
from tito.cli import cli
from tito.export import MANIFEST, read_manifest

SETUP_SOURCE = "modules/01_setup/setup_dev.py"
SETUP_TARGET = "tinytorch/utils/environment.py"


def tito(*args: str):
    return CliRunner().invoke(cli, list(args))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def generated(root: Path) -> list[Path]:
    return [root / "tinytorch" / rel for rel in read_manifest(root)] + [root / MANIFEST]


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture
def checkout(repo_copy: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository copy as a git checkout with one commit."""
    for key, value in {"GIT_AUTHOR_NAME": "Learner", "GIT_AUTHOR_EMAIL": "learner@example.org",
                       "GIT_COMMITTER_NAME": "Learner", "GIT_COMMITTER_EMAIL": "learner@example.org"}.items():
        monkeypatch.setenv(key, value)
    # The hook runs `python -m tito` with the checkout first on the path: the copy's own tito.
    git(repo_copy, "init", "-q")
    git(repo_copy, "config", "core.hooksPath", ".git/hooks")
    (repo_copy / ".gitignore").write_text("__pycache__/\n.tito/\n")
    git(repo_copy, "add", "-A")
    git(repo_copy, "commit", "-qm", "course")
    return repo_copy


def hand_edit(root: Path, rel: str = SETUP_TARGET) -> None:
    path = root / rel
    path.chmod(0o644)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n# edited by hand\n")


def edit_chapter(root: Path) -> None:
    """A real change to chapter 01's exported code (a comment in its first exported cell)."""
    path = root / SETUP_SOURCE
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("#| export\nimport os\n", "#| export\n# the standard library first\nimport os\n", 1), encoding="utf-8")


# --- file modes ------------------------------------------------------------------------------------


def test_enable_makes_every_generated_file_read_only_and_leaves_init_files_alone(repo_copy):
    inits = {p: mode(p) for p in (repo_copy / "tinytorch").rglob("__init__.py")}
    result = tito("system", "protect", "enable")
    assert result.exit_code == 0, result.output
    for path in generated(repo_copy):
        assert mode(path) & 0o222 == 0, f"{path} is still writable"
    assert {p: mode(p) for p in inits} == inits


def test_export_works_on_read_only_files_and_keeps_them_read_only(repo_copy):
    assert tito("system", "protect", "enable").exit_code == 0
    edit_chapter(repo_copy)
    result = tito("module", "export", "01_setup")
    assert result.exit_code == 0, result.output
    target = repo_copy / SETUP_TARGET
    assert "# the standard library first" in target.read_text()
    assert mode(target) & 0o222 == 0


@pytest.mark.slow
def test_complete_keeps_protection_on_even_for_a_new_generated_file(repo_copy):
    assert tito("system", "protect", "enable").exit_code == 0
    chapter = repo_copy / SETUP_SOURCE
    chapter.write_text(chapter.read_text() + "\n# %%\n#| export core.extra\nEXTRA = 1\n")
    result = tito("module", "complete", "01_setup")
    assert result.exit_code == 0, result.output
    extra = repo_copy / "tinytorch" / "core" / "extra.py"
    assert extra.is_file() and mode(extra) & 0o222 == 0
    assert mode(repo_copy / SETUP_TARGET) & 0o222 == 0
    before = {p: mode(p) for p in generated(repo_copy)}
    assert tito("system", "protect", "disable").exit_code == 0
    assert mode(extra) == 0o644, "disable gives a file the mode it had when it was first protected"
    assert all(mode(p) & 0o200 for p in before)


def test_disable_restores_each_files_own_mode(repo_copy):
    odd = repo_copy / SETUP_TARGET
    odd.chmod(0o664)
    modes = {p: mode(p) for p in generated(repo_copy)}
    assert tito("system", "protect", "enable").exit_code == 0
    assert tito("system", "protect", "disable").exit_code == 0
    assert {p: mode(p) for p in generated(repo_copy)} == modes


# --- .gitattributes ------------------------------------------------------------------------------


def test_gitattributes_block_is_added_beside_the_users_lines_and_removed_exactly(repo_copy):
    attributes = repo_copy / ".gitattributes"
    attributes.write_bytes(b"*.png binary\r\n*.ipynb diff=jupyternotebook")  # Windows line ending, no final newline
    assert tito("system", "protect", "enable").exit_code == 0
    text = attributes.read_text()
    assert attributes.read_bytes().startswith(b"*.png binary\r\n*.ipynb diff=jupyternotebook\n")
    assert "tinytorch/**/*.py linguist-generated=true\n" in text
    assert "tinytorch/**/__init__.py -linguist-generated\n" in text
    assert tito("system", "protect", "disable").exit_code == 0
    assert attributes.read_bytes() == b"*.png binary\r\n*.ipynb diff=jupyternotebook"


def test_gitattributes_keeps_lines_the_user_added_while_protection_was_on(repo_copy):
    attributes = repo_copy / ".gitattributes"
    assert tito("system", "protect", "enable").exit_code == 0
    attributes.write_text(attributes.read_text() + "*.csv text\n")
    assert tito("system", "protect", "disable").exit_code == 0
    assert attributes.read_text() == "*.csv text\n"


def test_git_sees_the_generated_files_as_generated(checkout):
    assert tito("system", "protect", "enable").exit_code == 0
    check = git(checkout, "check-attr", "linguist-generated", "--", SETUP_TARGET, "tinytorch/core/__init__.py",
                "tinytorch/_manifest.json").stdout.splitlines()
    assert check == [f"{SETUP_TARGET}: linguist-generated: true", "tinytorch/core/__init__.py: linguist-generated: unset",
                     "tinytorch/_manifest.json: linguist-generated: true"]


def test_enable_twice_adds_nothing_twice(repo_copy):
    assert tito("system", "protect", "enable").exit_code == 0
    first = (repo_copy / ".gitattributes").read_text(), (repo_copy / ".vscode" / "settings.json").read_text()
    assert tito("system", "protect", "enable").exit_code == 0
    assert ((repo_copy / ".gitattributes").read_text(), (repo_copy / ".vscode" / "settings.json").read_text()) == first
    assert tito("system", "protect", "disable").exit_code == 0
    assert not (repo_copy / ".gitattributes").exists() and not (repo_copy / ".vscode").exists()


# --- the pre-commit hook -----------------------------------------------------------------------


def user_hook(root: Path) -> Path:
    hook = root / ".git" / "hooks" / "pre-commit"
    hook.write_text('#!/bin/sh\necho "user hook ran" >> "$(git rev-parse --show-toplevel)/hook.log"\n')
    hook.chmod(0o750)
    return hook


@pytest.mark.slow
def test_the_hook_refuses_a_hand_edited_generated_file_and_names_the_chapter(checkout):
    assert tito("system", "protect", "enable").exit_code == 0
    hand_edit(checkout)
    git(checkout, "add", SETUP_TARGET)
    done = git(checkout, "commit", "-qm", "edit by hand", check=False)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"{SETUP_TARGET} differs from {SETUP_SOURCE}" in output
    assert "tito module export 01_setup" in output and "Commit refused" in output


@pytest.mark.slow
def test_the_hook_accepts_a_chapter_committed_with_its_export(checkout):
    assert tito("system", "protect", "enable").exit_code == 0
    edit_chapter(checkout)
    git(checkout, "add", SETUP_SOURCE)
    refused = git(checkout, "commit", "-qm", "chapter without its export", check=False)
    assert refused.returncode != 0 and f"{SETUP_TARGET} differs from {SETUP_SOURCE}" in refused.stdout + refused.stderr
    assert tito("module", "export", "01_setup").exit_code == 0
    git(checkout, "add", SETUP_SOURCE, SETUP_TARGET, "tinytorch/_manifest.json")
    git(checkout, "commit", "-qm", "chapter and its export")


@pytest.mark.slow
def test_the_hook_checks_what_is_staged_not_the_working_tree(checkout):
    assert tito("system", "protect", "enable").exit_code == 0
    edit_chapter(checkout)
    assert tito("module", "export", "01_setup").exit_code == 0
    git(checkout, "add", SETUP_SOURCE, SETUP_TARGET, "tinytorch/_manifest.json")
    hand_edit(checkout, "tinytorch/core/tensor.py")  # edited but not staged: this commit does not include it
    git(checkout, "commit", "-qm", "chapter 01 and its export")
    git(checkout, "add", "tinytorch/core/tensor.py")
    refused = git(checkout, "commit", "-qm", "now the hand edit", check=False)
    assert refused.returncode != 0 and "tinytorch/core/tensor.py differs from modules/02_tensor/tensor_dev.py" in refused.stdout + refused.stderr


def test_the_hook_reads_the_chapters_a_commit_can_put_out_of_step_and_all_when_it_cannot_tell():
    from tito import curriculum

    root = Path(__file__).resolve().parent.parent  # read only
    course = curriculum.load(root)

    def checked(*staged: str) -> list[str]:
        return [m.folder for m in protect._modules_to_check(course, root, list(staged), curriculum.CURRICULUM_FILE)]

    everything = [m.folder for m in course.written_modules()]
    assert checked(SETUP_SOURCE, "modules/01_setup/README.md", "notes.txt", "tinytorch/_manifest.json") == ["01_setup"]
    assert checked("tinytorch/core/tensor.py", SETUP_TARGET) == ["01_setup", "02_tensor"]  # their sources, in course order
    assert checked("notes.txt") == []
    assert checked(SETUP_SOURCE, curriculum.CURRICULUM_FILE) == everything  # which chapters exist may change
    assert checked(SETUP_SOURCE, "tinytorch/core/__init__.py") == everything  # whether a chapter exports may change
    assert checked("tinytorch/core/not_generated.py") == everything


@pytest.mark.slow
def test_an_existing_hook_is_kept_runs_after_ours_and_comes_back_exactly(checkout):
    hook = user_hook(checkout)
    original = hook.read_bytes()
    assert tito("system", "protect", "enable").exit_code == 0
    assert protect.HOOK_MARK in hook.read_text()
    (checkout / "notes.txt").write_text("a change\n")
    git(checkout, "add", "notes.txt")
    git(checkout, "commit", "-qm", "notes")
    assert (checkout / "hook.log").read_text() == "user hook ran\n"
    hand_edit(checkout)
    git(checkout, "add", SETUP_TARGET)
    assert git(checkout, "commit", "-qm", "edit", check=False).returncode != 0
    assert (checkout / "hook.log").read_text() == "user hook ran\n", "a refused commit stops before the user's hook"
    assert tito("system", "protect", "disable").exit_code == 0
    assert hook.read_bytes() == original and mode(hook) == 0o750
    assert not (hook.parent / protect.SAVED_HOOK).exists()


def test_without_a_hook_before_disable_leaves_none(checkout):
    hook = checkout / ".git" / "hooks" / "pre-commit"
    assert not hook.exists()
    assert tito("system", "protect", "enable").exit_code == 0
    assert hook.exists()
    assert tito("system", "protect", "disable").exit_code == 0
    assert not hook.exists()


def test_outside_a_git_checkout_there_is_no_hook_and_enable_says_so(repo_copy):
    result = tito("system", "protect", "enable")
    assert result.exit_code == 0
    assert "no git pre-commit hook" in result.output


@pytest.fixture
def shared_hooks(checkout: Path) -> Path:
    """core.hooksPath pointing at a hooks folder outside the repository, holding the user's own hook."""
    folder = checkout.parent / "shared-hooks"
    folder.mkdir()
    (folder / "pre-commit").write_text("#!/bin/sh\nexit 0\n")
    (folder / "pre-commit").chmod(0o755)
    git(checkout, "config", "core.hooksPath", str(folder))
    return folder


def test_a_hooks_folder_outside_the_repository_is_left_alone_and_enable_says_so(checkout, shared_hooks):
    before = {p.name: (p.read_bytes(), mode(p)) for p in shared_hooks.iterdir()}
    result = tito("system", "protect", "enable")
    assert result.exit_code == 0, result.output
    assert "outside this repository" in result.output and "--shared-hooks" in result.output
    assert {p.name: (p.read_bytes(), mode(p)) for p in shared_hooks.iterdir()} == before
    assert tito("system", "protect", "disable").exit_code == 0
    assert {p.name: (p.read_bytes(), mode(p)) for p in shared_hooks.iterdir()} == before


def test_shared_hooks_installs_there_only_when_asked_and_disable_puts_the_users_hook_back(checkout, shared_hooks):
    original = (shared_hooks / "pre-commit").read_bytes()
    result = tito("system", "protect", "enable", "--shared-hooks")
    assert result.exit_code == 0, result.output
    assert protect.HOOK_MARK in (shared_hooks / "pre-commit").read_text()
    assert tito("system", "protect", "disable").exit_code == 0
    assert (shared_hooks / "pre-commit").read_bytes() == original


def test_a_hooks_folder_inside_the_repository_is_still_used(checkout):
    git(checkout, "config", "core.hooksPath", ".githooks")
    assert tito("system", "protect", "enable").exit_code == 0
    assert protect.HOOK_MARK in (checkout / ".githooks" / "pre-commit").read_text()


def test_disable_changes_no_mode_outside_the_package_whatever_the_record_says(repo_copy):
    import json

    victim = repo_copy.parent / "victim.txt"
    victim.write_text("keep me\n")
    victim.chmod(0o600)
    assert tito("system", "protect", "enable").exit_code == 0
    record = repo_copy / ".tito" / "protect.json"
    state = json.loads(record.read_text())
    state["modes"]["../victim.txt"] = 0o777
    state["modes"][str(victim)] = 0o777
    record.chmod(0o644)
    record.write_text(json.dumps(state))
    assert tito("system", "protect", "disable").exit_code == 0
    assert mode(victim) == 0o600


# --- VS Code -------------------------------------------------------------------------------------

USER_SETTINGS = """{
  // my settings
  "editor.tabSize": 4,
  "files.readonlyInclude": {"secret/**": true,},
  /* a block comment */ "python.analysis.typeCheckingMode": "basic",
}
"""


def test_vscode_settings_are_merged_into_the_users_file_and_restored_exactly(repo_copy):
    settings = repo_copy / ".vscode" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(USER_SETTINGS)
    assert tito("system", "protect", "enable").exit_code == 0
    text = settings.read_text()
    assert "// my settings" in text and "/* a block comment */" in text
    merged = json5.loads(text)
    assert merged["editor.tabSize"] == 4 and merged["python.analysis.typeCheckingMode"] == "basic"
    assert merged["files.readonlyInclude"] == {"secret/**": True, "tinytorch/**/*.py": True, "tinytorch/_manifest.json": True}
    assert merged["files.readonlyExclude"] == {"tinytorch/**/__init__.py": True}
    assert tito("system", "protect", "disable").exit_code == 0
    assert settings.read_text() == USER_SETTINGS


# What VS Code accepts and a user may have written: CRLF line endings, comments that hold braces and
# our keys' names, trailing commas, the keys nested in a language section, no newline at the end.
AWKWARD_SETTINGS = (
    '/* settings { for "files.readonlyInclude": { */ // another {\r\n'
    '{ "editor.rulers": [80, 100,],  // "files.readonlyExclude": {\r\n'
    '  "[python]": {"files.readonlyInclude": {"nested/**": true,},},\r\n'
    '  "files.readonlyInclude": {},\r\n'
    '  "files.readonlyExclude": /* mine */ {"keep/**": true, /* trailing */ },\r\n'
    '}'
)


def test_vscode_settings_with_comments_and_trailing_commas_are_merged_and_restored_byte_for_byte(repo_copy):
    settings = repo_copy / ".vscode" / "settings.json"
    settings.parent.mkdir()
    settings.write_bytes(AWKWARD_SETTINGS.encode("utf-8"))
    assert tito("system", "protect", "enable").exit_code == 0
    merged = json5.loads(settings.read_bytes().decode("utf-8"))
    assert merged["files.readonlyInclude"] == {"tinytorch/**/*.py": True, "tinytorch/_manifest.json": True}
    assert merged["files.readonlyExclude"] == {"keep/**": True, "tinytorch/**/__init__.py": True}
    assert merged["[python]"] == {"files.readonlyInclude": {"nested/**": True}}  # the nested one is not ours
    assert merged["editor.rulers"] == [80, 100]
    assert tito("system", "protect", "disable").exit_code == 0
    assert settings.read_bytes() == AWKWARD_SETTINGS.encode("utf-8")


def test_vscode_settings_keep_what_the_user_changed_meanwhile(repo_copy):
    settings = repo_copy / ".vscode" / "settings.json"
    settings.parent.mkdir()
    settings.write_text(USER_SETTINGS)
    assert tito("system", "protect", "enable").exit_code == 0
    settings.write_text(settings.read_text().replace('"editor.tabSize": 4', '"editor.tabSize": 2'))
    assert tito("system", "protect", "disable").exit_code == 0
    assert settings.read_text() == USER_SETTINGS.replace('"editor.tabSize": 4', '"editor.tabSize": 2')


def test_vscode_settings_that_are_not_an_object_are_left_alone(repo_copy):
    settings = repo_copy / ".vscode" / "settings.json"
    settings.parent.mkdir()
    settings.write_text("[1, 2]\n")
    result = tito("system", "protect", "enable")
    assert result.exit_code == 0
    assert "left alone" in result.output and settings.read_text() == "[1, 2]\n"


def test_without_vscode_settings_enable_creates_them_and_disable_removes_them(repo_copy):
    assert tito("system", "protect", "enable").exit_code == 0
    settings = repo_copy / ".vscode" / "settings.json"
    assert json5.loads(settings.read_text())["files.readonlyInclude"]["tinytorch/**/*.py"] is True
    assert tito("system", "protect", "disable").exit_code == 0
    assert not settings.parent.exists()


# --- validate, status, doctor --------------------------------------------------------------------


def test_validate_names_each_hand_edited_file_and_its_source(repo_copy):
    result = tito("system", "protect", "validate")
    assert result.exit_code == 0, result.output
    assert "match the export manifest" in result.output
    hand_edit(repo_copy)
    result = tito("system", "protect", "validate")
    assert result.exit_code == 1
    assert f"✗ {SETUP_TARGET} was edited by hand; its source is {SETUP_SOURCE}" in result.output
    assert "tito module export 01_setup" in result.stderr


def test_status_says_off_on_and_what_broke(repo_copy):
    assert "Protection is off" in tito("system", "protect", "status").output
    assert tito("system", "protect", "enable").exit_code == 0
    result = tito("system", "protect", "status")
    assert result.exit_code == 0 and "Protection is on:" in result.output
    (repo_copy / SETUP_TARGET).chmod(0o644)
    result = tito("system", "protect", "status")
    assert result.exit_code == 1
    assert f"writable again: {SETUP_TARGET}" in result.stderr and "tito system protect enable" in result.stderr
    doctor = tito("system", "doctor")
    assert "writable again" in doctor.output


def test_disable_when_off_changes_nothing(repo_copy):
    result = tito("system", "protect", "disable")
    assert result.exit_code == 0 and "nothing to undo" in result.output


# --- no cost at import ---------------------------------------------------------------------------


def test_import_tinytorch_reads_no_manifest_and_loads_no_tito(repo_copy):
    assert tito("system", "protect", "enable").exit_code == 0
    probe = (
        "import sys\n"
        "opened = []\n"
        "sys.addaudithook(lambda event, args: opened.append(str(args[0])) if event == 'open' else None)\n"
        "import tinytorch\n"
        "assert not [p for p in opened if p.endswith('_manifest.json')], opened\n"
        "assert not [m for m in sys.modules if m == 'tito' or m.startswith('tito.')], 'tito was imported'\n"
        "print('ok', tinytorch.__file__)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(repo_copy))
    done = subprocess.run([sys.executable, "-c", probe], cwd=repo_copy, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok " + str(repo_copy))
