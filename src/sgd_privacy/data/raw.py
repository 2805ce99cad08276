"""Parsers for the raw formats of the standard datasets (IDX, CIFAR pickles, adult CSV, covtype)."""

from __future__ import annotations

import gzip
import io
import pickle
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError

_IDX_DTYPES: dict[int, str | type] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

ADULT_COLUMNS = [
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education_num",
    "marital_status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital_gain",
    "capital_loss",
    "hours_per_week",
    "native_country",
    "income",
]
ADULT_NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
COVTYPE_COLUMNS = 55


def read_bytes(path: str | Path) -> bytes:
    """Read a file, transparently gunzipping `*.gz`; a broken gzip stream names the file."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix == ".gz" or data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"{path}: corrupt or truncated gzip file ({exc}); delete it and fetch it again") from exc
    return data


def parse_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode an IDX array (the MNIST format): magic, dims, then big-endian data."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise DataError(f"{name}: not an IDX file (bad magic number)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise DataError(f"{name}: unknown IDX element type 0x{code:02x}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(data[4 + 4 * k : 8 + 4 * k], "big") for k in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise DataError(f"{name}: IDX file is truncated or padded: {len(data)} bytes, header says {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file, gzipped or not."""
    return parse_idx(read_bytes(path), str(path))


def parse_cifar_batch(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """Decode one CIFAR python pickle batch into (N, 3, 32, 32) uint8 images and labels."""
    try:
        batch = pickle.loads(data, encoding="bytes")  # noqa: S301 - the CIFAR-10 files are pickles; checksummed first
        images = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch.get(b"labels", batch.get(b"fine_labels")), dtype=np.int64)
    except Exception as exc:
        raise DataError(f"{name}: not a readable CIFAR python batch ({exc})") from exc
    if images.ndim != 2 or images.shape[1] != 3072 or labels.shape != (images.shape[0],):
        raise DataError(
            f"{name}: CIFAR batch has shape {images.shape} / labels {labels.shape}, expected (N, 3072) / (N,)"
        )
    return images.reshape(-1, 3, 32, 32), labels


def read_cifar_members(archive: str | Path, members: list[str]) -> dict[str, bytes]:
    """Read named members (basenames) from a CIFAR .tar.gz archive."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for info in tar.getmembers():
                base = info.name.rsplit("/", 1)[-1]
                member = tar.extractfile(info) if base in members and info.isfile() else None
                if member is not None:
                    out[base] = member.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive}: corrupt or truncated archive ({exc}); delete it and fetch it again") from exc
    missing = sorted(set(members) - set(out))
    if missing:
        raise DataError(f"{archive}: archive lacks {', '.join(missing)}")
    return out


def parse_adult(text: str, name: str = "<text>") -> pd.DataFrame:
    """Parse adult.data or adult.test text: skips the test file's '|1x3 Cross validator' line, strips trailing dots."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("|")]
    frame = pd.read_csv(io.StringIO("\n".join(lines)), header=None, skipinitialspace=True, dtype=str)
    if frame.shape[1] != len(ADULT_COLUMNS):
        raise DataError(f"{name}: expected {len(ADULT_COLUMNS)} comma-separated columns, found {frame.shape[1]}")
    frame.columns = ADULT_COLUMNS
    frame = frame.apply(lambda col: col.str.strip())
    frame["income"] = frame["income"].str.rstrip(".")
    bad_label = ~frame["income"].isin(["<=50K", ">50K"])
    if bad_label.any():
        row = int(np.flatnonzero(bad_label.to_numpy())[0])
        raise DataError(
            f"{name}: data row {row + 1} has income {frame['income'].iloc[row]!r}, expected '<=50K' or '>50K'"
        )
    for col in ADULT_NUMERIC:
        values = pd.to_numeric(frame[col], errors="coerce")
        if values.isna().any():
            row = int(np.flatnonzero(values.isna().to_numpy())[0])
            raise DataError(f"{name}: data row {row + 1} column {col!r} is not numeric: {frame[col].iloc[row]!r}")
        frame[col] = values.astype(np.float64)
    return frame


def read_adult(path: str | Path) -> pd.DataFrame:
    """Read adult.data / adult.test."""
    return parse_adult(read_bytes(path).decode("utf-8", errors="replace"), str(path))


def parse_covtype(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, np.ndarray]:
    """Parse covtype.data: 54 integer features then the cover type (1..7)."""
    try:
        arr = np.loadtxt(io.BytesIO(data), delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{name}: not a valid covtype.data file ({exc})") from exc
    if arr.shape[1] != COVTYPE_COLUMNS:
        raise DataError(f"{name}: expected {COVTYPE_COLUMNS} columns, found {arr.shape[1]}")
    labels = arr[:, -1]
    if labels.min() < 1 or labels.max() > 7:
        raise DataError(f"{name}: cover types must lie in 1..7, found {labels.min()}..{labels.max()}")
    return arr[:, :-1].astype(np.float64), labels


def read_covtype(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read covtype.data or covtype.data.gz."""
    return parse_covtype(read_bytes(path), str(path))
