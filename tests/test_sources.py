"""Locating raw files: data_dir, cache, checksums, and the offline error message."""

import gzip
import hashlib

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
    write_mnist(tmp_path / "mnist", gz=True)  # tiny fake files: neither container nor content is MNIST's
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.gz: decompresses to 94096 bytes, the canonical"):
        locate(SOURCES["mnist"], tmp_path, tmp_path / "cache", allow_download=False)  # 16 + 120 * 784 bytes


CONTENT = b"\x00\x00\x08\x01" + (5).to_bytes(4, "big") + bytes(range(5))


def gz_source(tmp_path, content=None, content_size=None):
    """A one-file source whose canonical container is gzip of CONTENT written with mtime 0."""
    canonical = gzip.compress(CONTENT, mtime=0)
    raw = RawFile("toy.gz", None, ("md5", hashlib.md5(canonical).hexdigest()), (), content, content_size)  # noqa: S324
    (tmp_path / "toy").mkdir(exist_ok=True)
    return Source("toy", (raw,), "nowhere"), tmp_path / "toy" / "toy.gz"


@pytest.mark.parametrize("by", ["digest", "size"])
def test_other_gzip_container_with_canonical_content_is_accepted(tmp_path, caplog, by):
    content = ("sha256", hashlib.sha256(CONTENT).hexdigest()) if by == "digest" else None
    source, path = gz_source(tmp_path, content, len(CONTENT) if by == "size" else None)
    path.write_bytes(gzip.compress(CONTENT, compresslevel=1, mtime=1_700_000_000))  # another packager's header
    with caplog.at_level("WARNING"):
        assert locate(source, tmp_path, tmp_path / "cache", allow_download=False)["toy.gz"] == path
    assert "container differs" in caplog.text and "decompressed content checks out" in caplog.text
    recorded = path.with_name("toy.gz.content.sha256")
    assert recorded.read_text().strip() == hashlib.sha256(CONTENT).hexdigest()  # independent of the container
    # the canonical container itself passes without a note
    path.write_bytes(gzip.compress(CONTENT, mtime=0))
    caplog.clear()
    locate(source, tmp_path, tmp_path / "cache", allow_download=False)
    assert "container differs" not in caplog.text


def test_corrupt_gzip_still_stops_with_its_name(tmp_path):
    source, path = gz_source(tmp_path, None, len(CONTENT))
    good = gzip.compress(CONTENT, mtime=5)
    path.write_bytes(good[:-6])  # truncated: the gzip trailer (CRC-32, length) is cut
    with pytest.raises(DataError, match=r"toy.gz: does not decompress .*corrupt or truncated"):
        locate(source, tmp_path, tmp_path / "cache", allow_download=False)
    flipped = bytearray(good)
    flipped[-9] ^= 0xFF  # a flipped data byte: the CRC-32 check fails
    path.write_bytes(bytes(flipped))
    with pytest.raises(DataError, match="toy.gz"):
        locate(source, tmp_path, tmp_path / "cache", allow_download=False)
    other = CONTENT[:-1] + b"\xff"  # valid gzip of different content of the same size
    source, path = gz_source(tmp_path, ("sha256", hashlib.sha256(CONTENT).hexdigest()), len(CONTENT))
    path.write_bytes(gzip.compress(other, mtime=5))
    with pytest.raises(DataError, match=r"toy.gz: the decompressed content's sha256 differs"):
        locate(source, tmp_path, tmp_path / "cache", allow_download=False)


def test_recorded_content_catches_a_later_change(tmp_path):
    source, path = gz_source(tmp_path, None, len(CONTENT))
    path.write_bytes(gzip.compress(CONTENT, mtime=5))
    locate(source, tmp_path, tmp_path / "cache", allow_download=False)
    path.write_bytes(gzip.compress(CONTENT[:-1] + b"\x07", mtime=5))  # same size, other bytes
    with pytest.raises(DataError, match="toy.gz: decompressed content changed since it was first checked"):
        locate(source, tmp_path, tmp_path / "cache", allow_download=False)


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
