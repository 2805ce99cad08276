"""Where raw files come from: a local data_dir, the download cache, or (opt-in) the canonical URL."""

from __future__ import annotations

import gzip
import hashlib
import logging
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..io import atomic_path, file_digest
from .errors import DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RawFile:
    """One canonical raw file, its download URL and checksum (None: recorded on first download).

    For a .gz file, `content` (a digest of the decompressed bytes) or `content_size` (their published
    length) lets a file whose gzip container differs from the canonical one (another packager's
    header or compression level) be accepted when its content checks out; `alternatives` are names
    of the already decompressed file."""

    name: str
    url: str | None
    checksum: tuple[str, str] | None = None
    alternatives: tuple[str, ...] = ()
    content: tuple[str, str] | None = None
    content_size: int | None = None


@dataclass(frozen=True)
class Source:
    """A group of raw files kept in one folder (`data_dir/<key>/` or `cache_dir/<key>/`)."""

    key: str
    files: tuple[RawFile, ...]
    homepage: str


_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
SOURCES: dict[str, Source] = {
    "mnist": Source(
        "mnist",
        (
            RawFile(
                "train-images-idx3-ubyte.gz",
                _MNIST + "train-images-idx3-ubyte.gz",
                ("md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
                ("train-images-idx3-ubyte",),
                content_size=16 + 60_000 * 28 * 28,
            ),
            RawFile(
                "train-labels-idx1-ubyte.gz",
                _MNIST + "train-labels-idx1-ubyte.gz",
                ("md5", "d53e105ee54ea40749a09fcbcd1e9432"),
                ("train-labels-idx1-ubyte",),
                content_size=8 + 60_000,
            ),
            RawFile(
                "t10k-images-idx3-ubyte.gz",
                _MNIST + "t10k-images-idx3-ubyte.gz",
                ("md5", "9fb629c4189551a2d022fa330f9573f3"),
                ("t10k-images-idx3-ubyte",),
                content_size=16 + 10_000 * 28 * 28,
            ),
            RawFile(
                "t10k-labels-idx1-ubyte.gz",
                _MNIST + "t10k-labels-idx1-ubyte.gz",
                ("md5", "ec29112dd5afa0611ce80d1b7f02629c"),
                ("t10k-labels-idx1-ubyte",),
                content_size=8 + 10_000,
            ),
        ),
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "cifar10": Source(
        "cifar10",
        (
            RawFile(
                "cifar-10-python.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                ("md5", "c58f30108f718f92721af3b95e74349a"),
            ),
        ),
        "https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
    "cifar100": Source(
        "cifar100",
        (
            RawFile(
                "cifar-100-python.tar.gz",
                "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                ("md5", "eb9058c3a382ffc7106e4002c42a8d85"),
            ),
        ),
        "https://www.cs.toronto.edu/~kriz/cifar.html",
    ),
    "adult": Source(
        "adult",
        (
            RawFile("adult.data", "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/adult.data"),
            RawFile("adult.test", "https://archive.ics.uci.edu/ml/machine-learning-databases/adult/adult.test"),
        ),
        "https://archive.ics.uci.edu/dataset/2/adult",
    ),
    "forest": Source(
        "forest",
        (
            RawFile(
                "covtype.data.gz",
                "https://ndownloader.figshare.com/files/5976039",
                ("sha256", "614360d0257557dd1792834a85a1cdebfadc3c4f30b011d56afee7ffb5b15771"),
                ("covtype.data",),
            ),
        ),
        "https://archive.ics.uci.edu/dataset/31/covertype",
    ),
}

# Per-batch checksums of an extracted CIFAR-10 archive (cifar-10-batches-py/).
CIFAR10_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
# Per-file checksums of an extracted CIFAR-100 archive (cifar-100-python/).
CIFAR100_FILE_MD5 = {"train": "16019d7e3df5f24257cddd939b257f8d", "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"}


def verify_checksum(path: Path, checksum: tuple[str, str] | None) -> None:
    """Raise DataError naming `path` if its digest differs from `checksum`."""
    if checksum is None:
        return
    algorithm, expected = checksum
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataError(
            f"{path}: {algorithm} checksum mismatch (got {actual}, expected {expected}); "
            "the file is corrupt or truncated: delete it and fetch it again"
        )


def content_digest(path: Path, algorithm: str = "sha256") -> tuple[str, int]:
    """Digest and length of a gzip file's decompressed bytes; DataError naming the file if it does not
    decompress (gzip checks its CRC-32 and length, so a truncated or corrupt file fails here)."""
    digest, size = hashlib.new(algorithm), 0
    try:
        with gzip.open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
                size += len(block)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            f"{path}: does not decompress ({exc}); the file is corrupt or truncated: delete it and fetch it again"
        ) from exc
    return digest.hexdigest(), size


def _recorded_content(path: Path) -> Path:
    return path.with_name(path.name + ".content.sha256")


def verify_raw(path: Path, raw: RawFile) -> None:
    """Check a canonical raw file: its container checksum, or else (for .gz files with a known content
    digest or size) its decompressed content, saying when only the container differs. The content's
    sha256 is recorded beside the file then, so a later change is caught."""
    try:
        verify_checksum(path, raw.checksum)
        return
    except DataError:
        if not path.name.endswith(".gz") or (raw.content is None and raw.content_size is None):
            raise
    algorithm, expected = raw.content or ("sha256", None)
    actual, size = content_digest(path, algorithm)
    if expected is not None and actual != expected:
        raise DataError(
            f"{path}: the decompressed content's {algorithm} differs (got {actual}, expected {expected}); "
            "the file is corrupt or not the canonical data: delete it and fetch it again"
        )
    if raw.content_size is not None and size != raw.content_size:
        raise DataError(
            f"{path}: decompresses to {size} bytes, the canonical file has {raw.content_size}; "
            "the file is corrupt, truncated or not the canonical data: delete it and fetch it again"
        )
    sha = actual if algorithm == "sha256" else content_digest(path)[0]
    recorded = _recorded_content(path)
    if recorded.is_file() and recorded.read_text().strip() != sha:
        raise DataError(
            f"{path}: decompressed content changed since it was first checked (sha256 {sha}, recorded "
            f"{recorded.read_text().strip()} in {recorded.name}); delete both files and fetch it again"
        )
    if not recorded.is_file():
        with atomic_path(recorded) as tmp:
            tmp.write_text(sha + "\n")
    log.warning(
        "%s: the gzip container differs from the canonical download (another packager's header or "
        "compression), but the decompressed content checks out (%s); using it",
        path,
        "digest" if expected is not None else f"{size} bytes, content sha256 recorded in {recorded.name}",
    )


def _candidates(folder: Path | None, key: str, raw: RawFile) -> list[tuple[Path, bool]]:
    """Paths where a raw file may lie, each with whether it is the canonical (checksummed) name."""
    if folder is None:
        return []
    out = []
    for base in (folder / key, folder):
        out.append((base / raw.name, True))
        out.extend((base / alt, False) for alt in raw.alternatives)
    return out


def _recorded_digest(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def download(raw: RawFile, target: Path) -> None:
    """Fetch `raw.url` into `target` atomically and verify (or record) its checksum."""
    if raw.url is None:
        raise DataError(f"{raw.name}: no download URL is known; put the file into data_dir")
    log.info("downloading %s -> %s", raw.url, target)
    with atomic_path(target) as tmp:
        try:
            urllib.request.urlretrieve(raw.url, tmp)  # noqa: S310 - fixed https URLs
        except OSError as exc:
            raise DataError(f"downloading {raw.url} failed ({exc}); put {raw.name} into data_dir instead") from exc
        verify_checksum(tmp, raw.checksum)  # the canonical URL serves the canonical container
    if raw.checksum is None:
        _recorded_digest(target).write_text(file_digest(target) + "\n")


def locate(source: Source, data_dir: str | Path | None, cache_dir: str | Path, allow_download: bool) -> dict[str, Path]:
    """Find every raw file of `source` (data_dir, then cache, then download); name what is missing."""
    data_dir = Path(data_dir) if data_dir else None
    cache = Path(cache_dir)
    found: dict[str, Path] = {}
    missing: list[RawFile] = []
    for raw in source.files:
        hit = next(
            (
                (p, canon)
                for p, canon in _candidates(data_dir, source.key, raw) + _candidates(cache, source.key, raw)
                if p.is_file()
            ),
            None,
        )
        if hit is None:
            missing.append(raw)
            continue
        path, canonical = hit
        if canonical:
            verify_raw(path, raw)
        recorded = _recorded_digest(path)
        if raw.checksum is None and recorded.is_file():
            verify_checksum(path, ("sha256", recorded.read_text().strip()))
        found[raw.name] = path
    if missing and allow_download:
        for raw in missing:
            target = cache / source.key / raw.name
            download(raw, target)
            found[raw.name] = target
    elif missing:
        names = ", ".join(r.name for r in missing)
        where = (
            f"{data_dir / source.key}/" if data_dir else f"<data_dir>/{source.key}/ (set `data.data_dir` in the config)"
        )
        raise DataError(
            f"dataset files for '{source.key}' not found: {names}. Put them into {where} "
            f"(source: {source.homepage}), or set `data.download: true` in the config to fetch them "
            f"into {cache / source.key}/."
        )
    return found
