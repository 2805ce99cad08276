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
