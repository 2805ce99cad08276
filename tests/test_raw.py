"""Raw-format parsers on tiny files written in each real format."""

import gzip

import numpy as np
import pytest

from conftest import (
    ADULT_ROWS,
    ADULT_TEST,
    cifar_batch_bytes,
    idx_bytes,
    write_adult,
    write_cifar_archive,
    write_covtype,
)
from sgd_privacy.data import DataError, raw


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path, gz):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(idx_bytes(arr)) if gz else idx_bytes(arr))
    np.testing.assert_array_equal(raw.read_idx(path), arr)


def test_idx_truncated_names_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((4, 28, 28), np.uint8))[:-10])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        raw.read_idx(path)


def test_idx_bad_magic_and_broken_gzip(tmp_path):
    with pytest.raises(DataError, match="bad magic"):
        raw.parse_idx(b"\x01\x02\x03\x04", "x")
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(100, np.uint8)))[:-8])
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*corrupt or truncated gzip"):
        raw.read_idx(path)


def test_cifar_batch_and_archive(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    x, y = raw.parse_cifar_batch(cifar_batch_bytes(images, np.array([3, 1, 4, 1, 5])))
    np.testing.assert_array_equal(x, images)
    assert y.tolist() == [3, 1, 4, 1, 5]
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(archive, per_batch=4)
    members = raw.read_cifar_members(archive, ["data_batch_1", "test_batch"])
    assert raw.parse_cifar_batch(members["test_batch"])[0].shape == (4, 3, 32, 32)


def test_cifar_corrupt_pickle_and_archive(tmp_path):
    with pytest.raises(DataError, match="data_batch_2: not a readable CIFAR"):
        raw.parse_cifar_batch(b"garbage", "data_batch_2")
    archive = tmp_path / "cifar-10-python.tar.gz"
    write_cifar_archive(archive, per_batch=4)
    archive.write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataError, match="cifar-10-python.tar.gz: corrupt or truncated archive"):
        raw.read_cifar_members(archive, ["data_batch_1"])


def test_adult_parsing_handles_test_file_quirks(tmp_path):
    write_adult(tmp_path)
    train, test = raw.read_adult(tmp_path / "adult.data"), raw.read_adult(tmp_path / "adult.test")
    assert len(train) == len(ADULT_ROWS) and len(test) == len(ADULT_TEST)
    assert set(test["income"]) == {"<=50K", ">50K"}  # trailing dots stripped, first line skipped
    assert train.loc[6, "workclass"] == "?" and train.loc[0, "age"] == 39.0
    assert test.loc[1, "native_country"] == "Holand-Netherlands"


def test_adult_bad_rows_are_named(tmp_path):
    (tmp_path / "adult.data").write_text(ADULT_ROWS[0] + "\n" + ADULT_ROWS[1].replace(">50K", "rich") + "\n")
    with pytest.raises(DataError, match=r"adult.data: data row 2 has income 'rich'"):
        raw.read_adult(tmp_path / "adult.data")
    (tmp_path / "adult.data").write_text(ADULT_ROWS[0].replace("39", "old") + "\n")
    with pytest.raises(DataError, match="column 'age' is not numeric"):
        raw.read_adult(tmp_path / "adult.data")
    (tmp_path / "adult.data").write_text("1, 2, 3\n")
    with pytest.raises(DataError, match="expected 15 comma-separated columns"):
        raw.read_adult(tmp_path / "adult.data")


def test_covtype(tmp_path):
    path = tmp_path / "covtype.data.gz"
    write_covtype(path, n=9)
    x, y = raw.read_covtype(path)
    assert x.shape == (9, 54) and y.tolist() == [1, 2, 3] * 3
    (tmp_path / "covtype.data").write_text("1,2,3\n")
    with pytest.raises(DataError, match="covtype.data: expected 55 columns"):
        raw.read_covtype(tmp_path / "covtype.data")
