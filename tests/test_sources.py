"""Locating raw files: data_dir, cache, checksums, and the offline error message."""

import pytest

from conftest import write_mnist
from sgd_privacy.data import DataError
from sgd_privacy.data.sources import SOURCES, RawFile, Source, locate


def test_missing_files_error_says_what_and_where(tmp_path):
    with pytest.raises(DataError) as err:
        locate(SOURCES["adult"], tmp_path / "raw", tmp_path / "cache", allow_download=False)
    msg = str(err.value)
    assert "adult.data" in msg and "adult.test" in msg
    assert str(tmp_path / "raw" / "adult") in msg
    assert "data.download: true" in msg


def test_finds_ungzipped_alternatives_in_data_dir(tmp_path):
    write_mnist(tmp_path / "mnist", gz=False)
    found = locate(SOURCES["mnist"], tmp_path, tmp_path / "cache", allow_download=False)
    assert found["train-images-idx3-ubyte.gz"].name == "train-images-idx3-ubyte"


def test_checksum_mismatch_names_file(tmp_path):
    write_mnist(tmp_path / "mnist", gz=True)  # tiny fake files: their md5 differs from the real ones
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: md5 checksum mismatch"):
        locate(SOURCES["mnist"], tmp_path, tmp_path / "cache", allow_download=False)


def test_recorded_digest_catches_later_corruption(tmp_path):
    source = Source("toy", (RawFile("toy.csv", None),), "nowhere")
    folder = tmp_path / "cache" / "toy"
    folder.mkdir(parents=True)
    (folder / "toy.csv").write_text("1,2\n")
    (folder / "toy.csv.sha256").write_text("0" * 64 + "\n")
    with pytest.raises(DataError, match="toy.csv: sha256 checksum mismatch"):
        locate(source, None, tmp_path / "cache", allow_download=False)


def test_download_without_url_is_explained(tmp_path):
    source = Source("toy", (RawFile("toy.csv", None),), "nowhere")
    with pytest.raises(DataError, match="no download URL is known; put the file into data_dir"):
        locate(source, None, tmp_path / "cache", allow_download=True)
    assert not (tmp_path / "cache" / "toy" / "toy.csv").exists()


def test_download_verifies_checksum_and_leaves_nothing_when_wrong(tmp_path):
    import hashlib

    remote = tmp_path / "remote" / "toy.csv"
    remote.parent.mkdir()
    remote.write_text("1,2\n3,4\n")
    md5 = hashlib.md5(remote.read_bytes()).hexdigest()  # noqa: S324 - a checksum, as the real sources use
    good = Source("toy", (RawFile("toy.csv", remote.as_uri(), ("md5", md5)),), "nowhere")
    found = locate(good, None, tmp_path / "cache", allow_download=True)
    assert found["toy.csv"].read_text() == "1,2\n3,4\n"
    bad = Source("bad", (RawFile("toy.csv", remote.as_uri(), ("md5", "0" * 32)),), "nowhere")
    with pytest.raises(DataError, match="md5 checksum mismatch"):
        locate(bad, None, tmp_path / "cache", allow_download=True)
    assert list((tmp_path / "cache" / "bad").glob("*")) == []  # no half-written or corrupt file kept


def test_download_without_published_checksum_records_one(tmp_path):
    remote = tmp_path / "adult.data"
    remote.write_text("first version\n")
    source = Source("adult", (RawFile("adult.data", remote.as_uri()),), "nowhere")
    path = locate(source, None, tmp_path / "cache", allow_download=True)["adult.data"]
    assert (path.parent / "adult.data.sha256").is_file()
    path.write_text("tampered\n")
    with pytest.raises(DataError, match="adult.data: sha256 checksum mismatch"):
        locate(source, None, tmp_path / "cache", allow_download=False)
