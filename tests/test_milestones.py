"""`tito milestone list|run` on the learner's package: passes on the complete one, fails with the number
reached once `Linear` is broken, refuses in one line while a chapter it needs holds stubs, and never
touches the network (the digits come from a generated file given through the mirror variables)."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tito import curriculum, milestones
from tito.cli import cli

REPO = Path(__file__).resolve().parent.parent
BIAS_LINE = "        return out + self.bias if self.bias is not None else out\n"
MATMUL_LINE = "        out = x @ self.weight.T          # (..., in) @ (in, out) -> (..., out)\n"


def tito(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def course(repo_copy: Path) -> Path:
    """A copy of the repository with its milestone scripts."""
    shutil.copytree(REPO / "milestones", repo_copy / "milestones", ignore=shutil.ignore_patterns("__pycache__"))
    return repo_copy


# Linear.forward's optional fast path (LinearFused, given code): a learner who planted a bug in the
# composition below it may well have left this out, and with it in, batches would never reach the bug.
FAST_PATH = (
    "        if x.ndim >= 2 and np.issubdtype(x.dtype, np.floating):   # a batch: one primitive, bias in place\n"
    "            inputs = (x, self.weight) if self.bias is None else (x, self.weight, self.bias)\n"
    "            return LinearFused.apply(*inputs)\n")


def plant(root: Path, old: str, new: str) -> None:
    """A bug in chapter 04's Linear, written the plain way (no fast path), exported into the copy's package."""
    source = root / "modules" / "04_layers" / "layers_dev.py"
    text = source.read_text(encoding="utf-8")
    assert text.count(old) == 1 and text.count(FAST_PATH) == 1, "chapter 04's Linear.forward changed; update this test"
    source.write_text(text.replace(FAST_PATH, "").replace(old, new), encoding="utf-8")
    assert tito("module", "export", "04_layers").exit_code == 0


def progress_of(root: Path) -> dict:
    return json.loads((root / ".tito" / "progress.json").read_text(encoding="utf-8"))


@pytest.fixture
def digits_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A generated digits file served through the mirror variables; returns the data folder to use."""
    from tinytorch.data import write_digits_file

    mirror = tmp_path / "mirror" / "digits.csv.gz"
    mirror.parent.mkdir()
    checksum = write_digits_file(mirror, n=300, seed=4)
    monkeypatch.setenv("TINYTORCH_DIGITS_URL", mirror.as_uri())
    monkeypatch.setenv("TINYTORCH_DIGITS_CHECKSUM", checksum)
    return tmp_path / "data"


def test_every_script_describes_itself_and_needs_chapters_that_exist():
    course = curriculum.load(REPO)
    found = milestones.discover(REPO)
    assert [m.year for m in found] == [1958, 1969, 1986, 1998, 2017, 2018]
    for m in found:
        assert m.needs and all(course.module(folder).folder == folder for folder in m.needs)
        text = (REPO / m.script).read_text(encoding="utf-8")
        imports = {line.split()[1].split(".")[0] for line in text.splitlines() if line.startswith(("import ", "from "))}
        assert imports <= {"sys", "time", "pathlib", "importlib", "json", "os", "platform", "datetime", "numpy",
                           "tinytorch", "_milestone", "__future__"}, f"{m.script} imports {imports}"


def test_list_shows_each_year_its_chapters_and_whether_it_can_run(course):
    result = tito("milestone", "list")
    assert result.exit_code == 0, result.output
    for year in ("1958", "1969", "1986", "1998", "2017", "2018"):
        assert year in result.output
    assert "needs chapters 02 04" in result.output
    assert "6 of 6 milestones can run on your package" in result.output


def test_1958_passes_on_the_complete_package_and_is_recorded(course):
    result = tito("milestone", "run", "1958")
    assert result.exit_code == 0, result.output
    assert "epoch  1:" in result.output and "PASSED 1958" in result.output
    record = progress_of(course)["milestones"]["1958"]
    assert record["passed"] and record["summary"].startswith("train accuracy 100.0%")
    assert "tinytorch/nn/layers.py" in record["package"]
    assert "your last run: passed" in tito("milestone", "list").output


def test_a_linear_that_ignores_its_bias_fails_1958_and_1969_with_the_numbers_reached(course):
    plant(course, BIAS_LINE, "        return out\n")
    for year, reached in (("1958", "train accuracy "), ("1969", "AND ")):
        result = tito("milestone", "run", year)
        assert result.exit_code == 1, result.output
        assert f"Milestone {year} failed: {reached}" in result.output
        assert "Traceback" not in result.output
    summary = progress_of(course)["milestones"]["1958"]["summary"]
    accuracy = float(summary.split("train accuracy ")[1].split("%")[0])
    assert accuracy < 99.0, summary
    assert not progress_of(course)["milestones"]["1958"]["passed"]


def test_a_linear_that_crashes_fails_the_run_in_one_line_naming_its_chapter(course):
    plant(course, MATMUL_LINE, "        out = x @ self.weight             # a transposition forgotten\n")
    result = tito("milestone", "run", "1958")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    line = next(line for line in result.output.splitlines() if "Milestone 1958 failed" in line)
    assert "the run stopped on ValueError at tinytorch/core/" in line and "(code from chapter" in line, line


def test_a_chapter_that_still_holds_stubs_is_named_before_anything_runs(course):
    assert tito("module", "start", "04_layers").exit_code == 0
    assert tito("module", "export", "04_layers").exit_code == 0
    result = tito("milestone", "run", "1958")
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0].startswith("✗ Milestone 1958 cannot run yet: chapter 04_layers is not complete"), lines
    assert "finish it first (tito module complete 04_layers)" in lines[0]
    assert "epoch" not in result.output, "nothing ran"
    assert "not yet: chapter 04_layers" in tito("milestone", "list").output


def test_an_unknown_year_is_one_line():
    result = tito("milestone", "run", "1999")
    assert result.exit_code == 1
    assert "There is no milestone '1999' (the milestones are 1958, 1969, 1986, 1998, 2017, 2018)." in result.output


def test_1986_runs_on_a_generated_digits_file_given_through_the_mirror(course, digits_mirror):
    result = tito("milestone", "run", "1986", "--data", str(digits_mirror), "--epochs", "3", "--write-book")
    assert "XOR 100%" in result.output, result.output
    assert "240 training images, 60 test images" in result.output
    record = json.loads((course / "book" / "results" / "milestones" / "1986.json").read_text(encoding="utf-8"))
    assert record["command"] == f"tito milestone run 1986 --data {digits_mirror} --epochs 3"
    assert record["summary"] == progress_of(course)["milestones"]["1986"]["summary"]
    assert {"date", "machine", "log", "seconds"} <= set(record) and len(record["details"]["curve"]["epoch"]) == 3


def test_a_damaged_digits_file_is_one_clear_error(tmp_path):
    from tinytorch.data import DatasetError
    from tinytorch.data.digits import read_digits

    short = tmp_path / "short.csv.gz"
    with gzip.open(short, "wt") as f:
        f.write("1,2,3\n")
    with pytest.raises(DatasetError, match=r"has shape \(1, 3\), expected rows of 64 pixels and a label"):
        read_digits(short)
    garbage = tmp_path / "garbage.csv.gz"
    garbage.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="is not a gzipped CSV of digits"):
        read_digits(garbage)
    labels = tmp_path / "labels.csv.gz"
    with gzip.open(labels, "wt") as f:
        f.write(",".join(["0"] * 64) + ",10\n")
    with pytest.raises(DatasetError, match="labels outside 0..9"):
        read_digits(labels)


def test_the_split_is_stratified_disjoint_and_seeded():
    from tinytorch.data import split_digits

    target = np.repeat(np.arange(10), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])   # the real class counts
    train, test = split_digits(target, test_fraction=0.2, seed=0)
    assert (len(train), len(test)) == (1438, 359)
    assert not set(train) & set(test)
    assert all(abs(np.mean(target[test] == c) - np.mean(target == c)) < 0.005 for c in range(10))
    assert not np.array_equal(test, split_digits(target, test_fraction=0.2, seed=1)[1])


def test_a_linear_that_cuts_the_graph_passes_1958_but_fails_1986_with_the_numbers_reached(course, digits_mirror):
    # The pitfall chapter 04 warns about: NumPy arrays instead of Tensor operations, so no gradient reaches
    # the weights. The perceptron rule needs no gradients and still passes; backpropagation learns nothing.
    plant(course, MATMUL_LINE, "        out = Tensor(x.data @ self.weight.data.T)\n")
    assert tito("milestone", "run", "1958").exit_code == 0
    result = tito("milestone", "run", "1986", "--data", str(digits_mirror), "--epochs", "3")
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "Milestone 1986 failed" in line)
    assert "failed: XOR " in line and "failed: XOR 100%" not in line, line
    assert "test accuracy (needs XOR 100%, digits >= 95%)" in line


def test_the_runs_recorded_for_the_book_passed_and_say_how_to_reproduce_them():
    for m in milestones.discover(REPO):
        record = milestones.recorded(REPO, m.year)
        assert record is not None, f"no recorded run of {m.year}: tito milestone run {m.year} --write-book"
        assert record["passed"] and record["command"].startswith(f"tito milestone run {m.year}")
        assert record["script"].startswith(f"python {m.script.as_posix()}")
        assert {"date", "machine", "seconds", "log", "summary"} <= set(record)


def test_the_progress_page_lists_the_learners_last_run(course, capsys):
    assert tito("milestone", "run", "1969").exit_code == 0
    lines = "\n".join(milestones.progress_lines(curriculum.load(course)))
    assert "| 1969 | {doc}`The XOR problem </book/milestones/1969_xor>` |" not in lines   # the copy has no pages
    assert "| 1969 | The XOR problem | AND and OR 100%, XOR stays <= 75% | **PASSED** AND 100%, OR 100%" in lines
    assert "| 1958 | The perceptron | train accuracy >= 99% | not run here yet |" in lines
    milestones.show_recorded(course, 1969)
    assert "No run of milestone 1969 is recorded for the book yet" in capsys.readouterr().out
