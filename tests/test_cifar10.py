"""download_cifar10 and CIFAR10Dataset on generated archives served through file:// URLs (no network)."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

import tinytorch.data.cifar10 as cifar10
from tinytorch.data import CIFAR10Dataset, DataLoader, DatasetError, Normalize, download_cifar10, write_cifar10_archive
from tinytorch.data.transforms import Compose, ConvertImageDtype

FOLDER = "cifar-10-batches-py"
BATCH_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


@pytest.fixture(autouse=True)
def no_mirror_settings(monkeypatch):
    """Tests start without the mirror environment variables, whatever the shell has."""
    monkeypatch.delenv(cifar10.URL_ENV, raising=False)
    monkeypatch.delenv(cifar10.CHECKSUM_ENV, raising=False)


@pytest.fixture
def archive(tmp_path) -> tuple[Path, str]:
    """A small CIFAR-10 archive (12 train, 4 test) in the official layout, and its checksum."""
    path = tmp_path / "mirror" / "cifar-10-python.tar.gz"
    path.parent.mkdir()
    return path, write_cifar10_archive(path, n_train=12, n_test=4, seed=0)


@pytest.fixture
def root(tmp_path) -> Path:
    """A data folder that already holds a file of the user's."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    return folder


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def fetch(root: Path, archive: Path, checksum: str) -> Path:
    return download_cifar10(root, url=archive.as_uri(), checksum=checksum, progress=False)


def tar_gz(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return cifar10.file_checksum(path)


def member(name: str, data: bytes | None = b"x", kind=tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, data if kind == tarfile.REGTYPE else None


def good_members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive) as tar:
        return [(m, tar.extractfile(m).read()) for m in tar.getmembers() if m.isfile()]


# ---- the generated archive ------------------------------------------------------------------------

def test_generated_archive_has_the_official_layout(archive):
    with tarfile.open(archive[0]) as tar:
        names = tar.getnames()
        batch = pickle.load(tar.extractfile(f"{FOLDER}/data_batch_1"), encoding="bytes")
        meta = pickle.load(tar.extractfile(f"{FOLDER}/batches.meta"), encoding="bytes")
    assert sorted(names) == sorted([FOLDER] + [f"{FOLDER}/{n}" for n in BATCH_FILES])
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (3, 3072)
    assert len(batch[b"labels"]) == 3 and meta[b"label_names"][3] == b"cat"


def test_generated_archive_is_deterministic(tmp_path, archive):
    assert write_cifar10_archive(tmp_path / "again.tar.gz", n_train=12, n_test=4, seed=0) == archive[1]
    assert write_cifar10_archive(tmp_path / "other.tar.gz", n_train=12, n_test=4, seed=1) != archive[1]
    assert archive[1] == cifar10.file_checksum(archive[0])


def test_generated_archive_refuses_negative_counts(tmp_path):
    with pytest.raises(ValueError, match=">= 0"):
        write_cifar10_archive(tmp_path / "x.tar.gz", n_train=-1)


# ---- a good download --------------------------------------------------------------------------------

def test_download_extracts_the_batches_and_a_verification_record(root, archive):
    folder = fetch(root, *archive)
    assert folder == root / FOLDER
    assert sorted(p.name for p in folder.iterdir()) == sorted(BATCH_FILES + [cifar10.MARKER])
    assert listing(root) == sorted(["keep.txt", FOLDER] + [f"{FOLDER}/{n}" for n in BATCH_FILES + [cifar10.MARKER]])


def test_download_creates_a_missing_root(tmp_path, archive):
    assert fetch(tmp_path / "a" / "b", *archive).is_dir()


def test_a_verified_copy_is_reused_without_downloading(root, archive):
    folder = fetch(root, *archive)
    before = {p: p.stat().st_mtime_ns for p in folder.iterdir()}
    archive[0].unlink()                                   # a second download could not succeed
    assert fetch(root, *archive) == folder
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_a_verified_copy_with_a_missing_file_is_downloaded_again(root, archive):
    folder = fetch(root, *archive)
    (folder / "data_batch_2").unlink()
    fetch(root, *archive)
    assert (folder / "data_batch_2").is_file() and len(CIFAR10Dataset(root)) == 12


def test_a_copy_verified_for_another_checksum_is_replaced(tmp_path, root, archive):
    fetch(root, *archive)
    other = tmp_path / "other.tar.gz"
    other_sum = write_cifar10_archive(other, n_train=20, n_test=3, seed=5)
    fetch(root, other, other_sum)
    assert len(CIFAR10Dataset(root)) == 20
    assert listing(root) == sorted(["keep.txt", FOLDER] + [f"{FOLDER}/{n}" for n in BATCH_FILES + [cifar10.MARKER]])


def test_an_md5_checksum_works_too(root, archive):
    md5 = "md5:" + hashlib.md5(archive[0].read_bytes()).hexdigest()
    assert fetch(root, archive[0], md5.upper().replace("MD5", "md5")).is_dir()


# ---- CIFAR10Dataset ---------------------------------------------------------------------------------

def test_dataset_has_the_official_shapes_dtypes_and_classes(root, archive):
    fetch(root, *archive)
    train, test = CIFAR10Dataset(root, train=True), CIFAR10Dataset(root, train=False)
    assert train.data.shape == (12, 3, 32, 32) and train.data.dtype == np.uint8
    assert train.targets.shape == (12,) and train.targets.dtype == np.int64
    assert test.data.shape == (4, 3, 32, 32) and len(test) == 4
    assert train.classes == ["airplane", "automobile", "bird", "cat", "deer",
                             "dog", "frog", "horse", "ship", "truck"]
    assert train.class_to_idx["truck"] == 9


def test_dataset_labels_and_pixels_are_those_in_the_archive(root, archive):
    fetch(root, *archive)
    with tarfile.open(archive[0]) as tar:
        raw = [pickle.load(tar.extractfile(f"{FOLDER}/data_batch_{i}"), encoding="bytes") for i in range(1, 6)]
    labels = [label for batch in raw for label in batch[b"labels"]]
    pixels = np.concatenate([batch[b"data"] for batch in raw])
    train = CIFAR10Dataset(root)
    assert train.targets.tolist() == labels
    assert np.array_equal(train.data.reshape(12, 3072), pixels)
    # rows are 1024 red, 1024 green, 1024 blue values: pixel (row 0, col 1) of channel 2 is element 2049
    assert train.data[0, 2, 0, 1] == pixels[0, 2 * 1024 + 1]


def test_getitem_and_get_batch_agree(root, archive):
    fetch(root, *archive)
    train = CIFAR10Dataset(root)
    image, label = train[7]
    assert image.shape == (3, 32, 32) and image.dtype == np.uint8 and isinstance(label, int)
    images, labels = train.get_batch(np.array([7, 1]))
    assert np.array_equal(images.data[0], image.data) and labels.tolist() == [label, train[1][1]]
    assert labels.dtype == np.int64


def test_the_transform_is_applied_to_samples_and_to_whole_batches(root, archive):
    fetch(root, *archive)
    calls = []

    def transform(x):
        calls.append(x.shape)
        return ConvertImageDtype()(x)

    train = CIFAR10Dataset(root, transform=transform)
    assert train[0][0].dtype == np.float32
    batches = list(DataLoader(train, batch_size=5))
    assert calls == [(3, 32, 32), (5, 3, 32, 32), (5, 3, 32, 32), (2, 3, 32, 32)]
    assert [b[0].shape[0] for b in batches] == [5, 5, 2]


def test_a_loader_over_cifar10_yields_normalised_float_batches(root, archive):
    fetch(root, *archive)
    pipeline = Compose([ConvertImageDtype(), Normalize([0.5, 0.5, 0.5], [0.25, 0.25, 0.25])])
    loader = DataLoader(CIFAR10Dataset(root, transform=pipeline), batch_size=8, shuffle=True, seed=0)
    (x1, y1), (x2, y2) = list(loader)
    assert x1.shape == (8, 3, 32, 32) and x1.dtype == np.float32 and x2.shape == (4, 3, 32, 32)
    assert y1.dtype == np.int64 and sorted(y1.tolist() + y2.tolist()) == sorted(CIFAR10Dataset(root).targets.tolist())


def test_dataset_without_data_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError, match=r"download_cifar10\(.*\) or pass download=True") as err:
        CIFAR10Dataset(tmp_path / "empty")
    assert "\n" not in str(err.value)


def test_dataset_refuses_a_folder_that_was_not_verified(root, archive):
    folder = fetch(root, *archive)
    (folder / cifar10.MARKER).unlink()
    with pytest.raises(DatasetError, match="no verification record"):
        CIFAR10Dataset(root)


def test_dataset_download_true_uses_the_environment_mirror(monkeypatch, root, archive):
    monkeypatch.setenv(cifar10.URL_ENV, archive[0].as_uri())
    monkeypatch.setenv(cifar10.CHECKSUM_ENV, archive[1])
    assert len(CIFAR10Dataset(root, train=False, download=True)) == 4


def test_a_batch_file_changed_after_download_is_refused(root, archive):
    folder = fetch(root, *archive)
    data = bytearray((folder / "data_batch_3").read_bytes())
    data[-100] ^= 0xFF
    (folder / "data_batch_3").write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="does not match the checksum recorded"):
        CIFAR10Dataset(root)


class _RunsACommand:
    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return os.system, (f"touch {self.path}",)


def test_a_pickle_that_would_run_code_is_refused_before_running(tmp_path, root, archive):
    folder = fetch(root, *archive)
    witness = tmp_path / "the-command-ran"
    evil = pickle.dumps({b"data": _RunsACommand(witness), b"labels": []}, protocol=2)
    (folder / "data_batch_1").write_bytes(evil)
    marker = (folder / cifar10.MARKER)
    record = cifar10.json.loads(marker.read_text())
    record["files"]["data_batch_1"] = {"sha256": hashlib.sha256(evil).hexdigest(), "size": len(evil)}
    marker.write_text(cifar10.json.dumps(record))            # as if the attacker also rewrote the record
    with pytest.raises(DatasetError, match="refusing to load posix.system|refusing to load nt.system"):
        CIFAR10Dataset(root)
    assert not witness.exists()


def test_batches_pickled_by_numpy_1_load(root, archive):
    """The official files name numpy.core.multiarray._reconstruct; NumPy 2 writes numpy._core."""
    folder = fetch(root, *archive)
    path = folder / "data_batch_1"
    old_style = path.read_bytes().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in old_style
    path.write_bytes(old_style)
    marker = folder / cifar10.MARKER
    record = cifar10.json.loads(marker.read_text())
    record["files"]["data_batch_1"] = {"sha256": hashlib.sha256(old_style).hexdigest(), "size": len(old_style)}
    marker.write_text(cifar10.json.dumps(record))
    assert CIFAR10Dataset(root).data.shape == (12, 3, 32, 32)


# ---- bad archives: each raises DatasetError and leaves root exactly as it was ----------------------------

def _wrong_checksum(tmp, archive):
    return archive[0], "sha256:" + "0" * 64


def _corrupt_with_the_good_checksum(tmp, archive):
    blob = bytearray(archive[0].read_bytes())
    blob[len(blob) // 2:len(blob) // 2 + 64] = bytes(64)
    path = tmp / "corrupt.tar.gz"
    path.write_bytes(bytes(blob))
    return path, archive[1]


def _corrupt_with_its_own_checksum(tmp, archive):
    path, _ = _corrupt_with_the_good_checksum(tmp, archive)
    return path, cifar10.file_checksum(path)


def _truncated(tmp, archive):
    path = tmp / "truncated.tar.gz"
    path.write_bytes(archive[0].read_bytes()[:-500])
    return path, cifar10.file_checksum(path)


def _not_gzip(tmp, archive):
    path = tmp / "page.html"
    path.write_bytes(b"<html>Service unavailable</html>")
    return path, cifar10.file_checksum(path)


def _traversal(tmp, archive):
    path = tmp / "traversal.tar.gz"
    members = good_members(archive[0])[:2] + [member(f"{FOLDER}/../../escaped.txt")] + good_members(archive[0])[2:]
    return path, tar_gz(path, members)


def _absolute(tmp, archive):
    path = tmp / "absolute.tar.gz"
    return path, tar_gz(path, [member(str(tmp.resolve() / "escaped.txt"))] + good_members(archive[0]))


def _symlink(tmp, archive):
    path = tmp / "symlink.tar.gz"
    link = member(f"{FOLDER}/data_batch_1", kind=tarfile.SYMTYPE, link=str(tmp.resolve()))
    return path, tar_gz(path, [link] + good_members(archive[0])[1:])


def _hardlink(tmp, archive):
    path = tmp / "hardlink.tar.gz"
    link = member(f"{FOLDER}/data_batch_1", kind=tarfile.LNKTYPE, link="../../escaped.txt")
    return path, tar_gz(path, [link] + good_members(archive[0])[1:])


def _device(tmp, archive):
    path = tmp / "device.tar.gz"
    return path, tar_gz(path, good_members(archive[0]) + [member(f"{FOLDER}/tty", kind=tarfile.CHRTYPE)])


def _fifo(tmp, archive):
    path = tmp / "fifo.tar.gz"
    return path, tar_gz(path, good_members(archive[0]) + [member(f"{FOLDER}/pipe", kind=tarfile.FIFOTYPE)])


def _missing_a_batch(tmp, archive):
    path = tmp / "incomplete.tar.gz"
    members = [(m, d) for m, d in good_members(archive[0]) if not m.name.endswith("data_batch_5")]
    return path, tar_gz(path, members)


BAD = {
    "wrong checksum": (_wrong_checksum, "checksum mismatch"),
    "corrupt bytes": (_corrupt_with_the_good_checksum, "checksum mismatch"),
    "corrupt bytes, checksum of the corrupt file": (_corrupt_with_its_own_checksum, "not a readable tar.gz"),
    "truncated": (_truncated, "not a readable tar.gz"),
    "not gzip at all": (_not_gzip, "not a readable tar.gz"),
    "path traversal": (_traversal, r"escaped.txt', a path that climbs out"),
    "absolute path": (_absolute, "an absolute path"),
    "symlink": (_symlink, "a link"),
    "hardlink": (_hardlink, "a link"),
    "device file": (_device, "special file"),
    "fifo": (_fifo, "special file"),
    "missing batch": (_missing_a_batch, "has no cifar-10-batches-py/data_batch_5"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_archive_is_refused_and_root_is_left_as_it_was(case, tmp_path, root, archive):
    make, message = BAD[case]
    path, checksum = make(tmp_path, archive)
    before = listing(root)
    with pytest.raises(DatasetError, match=message) as err:
        fetch(root, path, checksum)
    assert "\n" not in str(err.value)
    assert listing(root) == before, f"left behind: {set(listing(root)) - set(before)}"
    assert (root / "keep.txt").read_text() == "mine"
    assert not (tmp_path / "escaped.txt").exists()


def test_a_failed_download_keeps_a_previously_verified_copy(tmp_path, root, archive):
    folder = fetch(root, *archive)
    before = listing(root)
    path, checksum = _traversal(tmp_path, archive)
    with pytest.raises(DatasetError):
        fetch(root, path, checksum)
    assert listing(root) == before and len(CIFAR10Dataset(root)) == 12 and folder.is_dir()


def test_a_root_created_by_a_failed_download_is_removed(tmp_path, archive):
    with pytest.raises(DatasetError):
        fetch(tmp_path / "new", archive[0], "sha256:" + "1" * 64)
    assert not (tmp_path / "new").exists()


def test_an_unreachable_url_is_a_dataset_error(root, tmp_path):
    with pytest.raises(DatasetError, match="cannot download"):
        fetch(root, tmp_path / "no-such-file.tar.gz", "sha256:" + "0" * 64)
    assert listing(root) == ["keep.txt"]


def test_an_unverified_folder_in_the_way_is_left_alone(root, archive):
    (root / FOLDER).mkdir()
    (root / FOLDER / "data_batch_1").write_text("someone else's")
    with pytest.raises(DatasetError, match="was not verified by download_cifar10"):
        fetch(root, *archive)
    assert (root / FOLDER / "data_batch_1").read_text() == "someone else's"


# ---- where the URL and checksum come from ----------------------------------------------------------------

def test_the_default_is_the_official_url_with_its_md5(monkeypatch, root):
    seen = {}

    def fake_download(url, dest, algorithm, progress):
        seen.update(url=url, algorithm=algorithm)
        raise DatasetError("offline")

    monkeypatch.setattr(cifar10, "_download", fake_download)
    with pytest.raises(DatasetError, match="offline"):
        download_cifar10(root, progress=False)
    assert seen == {"url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "algorithm": "md5"}
    assert cifar10.CIFAR10_CHECKSUM == "md5:c58f30108f718f92721af3b95e74349a"
    assert listing(root) == ["keep.txt"]


def test_environment_variables_select_the_mirror_and_its_checksum(monkeypatch, root, archive):
    monkeypatch.setenv(cifar10.URL_ENV, archive[0].as_uri())
    monkeypatch.setenv(cifar10.CHECKSUM_ENV, archive[1])
    assert download_cifar10(root, progress=False) == root / FOLDER


def test_arguments_take_precedence_over_the_environment(monkeypatch, tmp_path, root, archive):
    monkeypatch.setenv(cifar10.URL_ENV, (tmp_path / "missing.tar.gz").as_uri())
    monkeypatch.setenv(cifar10.CHECKSUM_ENV, "sha256:" + "0" * 64)
    assert fetch(root, *archive).is_dir()


@pytest.mark.parametrize("algorithm", ["sha256", "md5"])
def test_a_checksum_file_next_to_the_mirror_is_used(root, archive, algorithm):
    digest = hashlib.new(algorithm, archive[0].read_bytes()).hexdigest()
    Path(f"{archive[0]}.{algorithm}").write_text(f"{digest}  cifar-10-python.tar.gz\n")
    assert download_cifar10(root, url=archive[0].as_uri(), progress=False).is_dir()


def test_a_wrong_checksum_file_next_to_the_mirror_fails_the_download(root, archive):
    Path(f"{archive[0]}.sha256").write_text("0" * 64 + "\n")
    with pytest.raises(DatasetError, match="checksum mismatch"):
        download_cifar10(root, url=archive[0].as_uri(), progress=False)


def test_a_mirror_without_any_checksum_is_refused(root, archive):
    with pytest.raises(DatasetError, match="no checksum for") as err:
        download_cifar10(root, url=archive[0].as_uri(), progress=False)
    assert "TINYTORCH_CIFAR10_CHECKSUM" in str(err.value)
    assert listing(root) == ["keep.txt"]


@pytest.mark.parametrize("bad", ["abc", "sha256:123", "sha1:" + "0" * 40, "md5:" + "g" * 32, "0" * 64])
def test_a_malformed_checksum_is_a_value_error(root, archive, bad):
    with pytest.raises(ValueError, match="is not 'sha256:<64 hex digits>'"):
        fetch(root, archive[0], bad)


def test_progress_goes_to_stderr_and_stdout_stays_clean(capsys, root, archive):
    download_cifar10(root, url=archive[0].as_uri(), checksum=archive[1], progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "cifar-10-python.tar.gz" in err


def test_no_progress_prints_nothing(capsys, root, archive):
    fetch(root, *archive)
    assert capsys.readouterr() == ("", "")


# ---- what a killed download leaves behind, and downloads of single files (tiny-shakespeare) ----------------------
KILLED_DOWNLOAD = """
import os, signal, sys
sys.path.insert(0, {repo!r})
import tinytorch.data.cifar10 as cifar10

real = cifar10._download
def die(url, dest, *args, **kwargs):
    real(url, dest, *args, **kwargs)                     # the archive is on disk, hidden, then the process dies
    os.makedirs(os.path.join(os.path.dirname(dest), ".cifar-10-extract.{{}}.half".format(os.getpid())))
    os.kill(os.getpid(), signal.SIGKILL)
cifar10._download = die
cifar10.download_cifar10({root!r}, url={url!r}, checksum={checksum!r}, progress=False)
"""


def test_a_killed_download_leaves_temporaries_that_the_next_download_removes(root, archive):
    import subprocess
    import sys

    path, checksum = archive
    repo = str(Path(__file__).resolve().parents[1])
    script = KILLED_DOWNLOAD.format(repo=repo, root=str(root), url=path.as_uri(), checksum=checksum)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode < 0, done.stderr
    hidden = [name for name in listing(root) if name.startswith(".cifar-10-")]
    assert len(hidden) == 2, listing(root)                   # the partial archive and the extraction folder
    fetch(root, path, checksum)
    assert not [name for name in listing(root) if name.startswith(".")], listing(root)
    assert (root / "keep.txt").read_text() == "mine"


@pytest.fixture
def text_mirror(tmp_path, monkeypatch) -> tuple[Path, str]:
    from tinytorch.data import shakespeare

    monkeypatch.delenv(shakespeare.SHAKESPEARE_URL_ENV, raising=False)
    monkeypatch.delenv(shakespeare.SHAKESPEARE_CHECKSUM_ENV, raising=False)
    text = "ROMEO:\nBut, soft! what light through yonder window breaks?\n" * 30
    path = tmp_path / "mirror" / "input.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_the_pinned_checksum_and_url_are_those_of_the_public_file():
    from tinytorch.data import shakespeare

    assert shakespeare.SHAKESPEARE_CHECKSUM == "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert shakespeare.SHAKESPEARE_URL.startswith("https://") and shakespeare.SHAKESPEARE_URL.endswith("input.txt")


def test_download_shakespeare_uses_the_mirror_setting_and_verifies_it(root, text_mirror, monkeypatch):
    from tinytorch.data import download_shakespeare, shakespeare

    path, checksum = text_mirror
    monkeypatch.setenv(shakespeare.SHAKESPEARE_URL_ENV, path.as_uri())
    with pytest.raises(DatasetError, match="checksum mismatch"):       # the mirror's bytes are not the pinned ones
        download_shakespeare(root, progress=False)
    assert listing(root) == ["keep.txt"]
    monkeypatch.setenv(shakespeare.SHAKESPEARE_CHECKSUM_ENV, checksum)
    got = download_shakespeare(root, progress=False)
    assert got == root / "tinyshakespeare.txt" and got.read_bytes() == path.read_bytes()
    assert listing(root) == ["keep.txt", "tinyshakespeare.txt"]


def test_download_shakespeare_honours_the_umask(root, text_mirror):
    from tinytorch.data import download_shakespeare

    path, checksum = text_mirror
    old = os.umask(0o077)
    try:
        got = download_shakespeare(root, url=path.as_uri(), checksum=checksum, progress=False)
    finally:
        os.umask(old)
    assert got.stat().st_mode & 0o777 == 0o600


def test_a_users_file_of_the_same_name_is_never_overwritten(root, text_mirror):
    from tinytorch.data import download_shakespeare

    path, checksum = text_mirror
    (root / "tinyshakespeare.txt").write_text("my notes")
    with pytest.raises(DatasetError, match="move or delete it"):
        download_shakespeare(root, url=path.as_uri(), checksum=checksum, progress=False)
    assert (root / "tinyshakespeare.txt").read_text() == "my notes"


@pytest.mark.parametrize("url, message", [("file:///nonexistent/input.txt", "cannot download"),
                                          ("notaurl", "cannot download")])
def test_an_unreachable_mirror_is_one_line_and_keeps_nothing(root, text_mirror, url, message):
    from tinytorch.data import download_shakespeare

    with pytest.raises(DatasetError, match=message) as caught:
        download_shakespeare(root, url=url, checksum=text_mirror[1], progress=False)
    assert "\n" not in str(caught.value) and "TINYTORCH_SHAKESPEARE_URL" in str(caught.value)
    assert listing(root) == ["keep.txt"]


def test_download_file_refuses_a_malformed_checksum(root, text_mirror):
    from tinytorch.data import download_file

    with pytest.raises(ValueError, match="not 'sha256"):
        download_file(text_mirror[0].as_uri(), root / "x.txt", "sha256:xyz", progress=False)


def test_leftovers_named_before_temporaries_carried_a_pid_are_removed_too(root, archive):
    path, checksum = archive
    (root / ".cifar-10-download-k1ll3d__.tar.gz").write_bytes(b"\x1f\x8b half an archive")
    (root / ".cifar-10-extract-k1ll3d__").mkdir()
    (root / ".cifar-10-extract-k1ll3d__" / "data_batch_1").write_bytes(b"half")
    fetch(root, path, checksum)
    assert not [name for name in listing(root) if name.startswith(".")], listing(root)
