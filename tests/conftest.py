"""Shared fixtures: writers for tiny raw files in each dataset's real format, the shared pipeline run,
the test services' skip-or-fail rule and the order in which files run."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

ADULT_ROWS = [
    "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K",
    "50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, >50K",
    "38, Private, 215646, HS-grad, 9, Divorced, Handlers-cleaners, Not-in-family, White, Male, 0, 0, 40, United-States, <=50K",
    "53, Private, 234721, 11th, 7, Married-civ-spouse, Handlers-cleaners, Husband, Black, Male, 0, 0, 40, United-States, <=50K",
    "28, Private, 338409, Bachelors, 13, Married-civ-spouse, Prof-specialty, Wife, Black, Female, 0, 0, 40, Cuba, >50K",
    "37, Private, 284582, Masters, 14, Married-civ-spouse, Exec-managerial, Wife, White, Female, 0, 0, 40, United-States, >50K",
    "49, ?, 160187, 9th, 5, Married-spouse-absent, ?, Not-in-family, Black, Female, 0, 0, 16, Jamaica, <=50K",
    "52, Self-emp-not-inc, 209642, HS-grad, 9, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 45, United-States, >50K",
    "31, Private, 45781, Masters, 14, Never-married, Prof-specialty, Not-in-family, White, Female, 14084, 0, 50, United-States, >50K",
    "42, Private, 159449, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 5178, 0, 40, United-States, >50K",
    "37, Private, 280464, Some-college, 10, Married-civ-spouse, Exec-managerial, Husband, Black, Male, 0, 0, 80, United-States, >50K",
    "30, State-gov, 141297, Bachelors, 13, Married-civ-spouse, Prof-specialty, Husband, Asian-Pac-Islander, Male, 0, 0, 40, India, >50K",
]
ADULT_TEST = [
    "25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.",
    "38, Private, 89814, HS-grad, 9, Married-civ-spouse, Farming-fishing, Husband, White, Male, 0, 0, 50, Holand-Netherlands, <=50K.",
    "28, Local-gov, 336951, Assoc-acdm, 12, Married-civ-spouse, Protective-serv, Husband, White, Male, 0, 0, 40, United-States, >50K.",
]


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format."""
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in arr.shape)
    return header + arr.astype(np.uint8).tobytes()


def cifar_batch_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """Encode a CIFAR python batch pickle (bytes keys, as the real files)."""
    return pickle.dumps(
        {b"data": images.reshape(len(images), -1).astype(np.uint8), b"labels": labels.tolist(), b"batch_label": b"test"}
    )


def write_mnist(folder: Path, n_train: int = 120, n_test: int = 40, gz: bool = True, seed: int = 0) -> None:
    """Tiny MNIST in IDX files, digits cycling through 0..9."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte"
            data = idx_bytes(arr)
            if gz:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)


def write_cifar_archive(path: Path, per_batch: int = 20, seed: int = 0) -> None:
    """Tiny CIFAR-10 .tar.gz with the real member layout."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
            images = rng.integers(0, 256, size=(per_batch, 3, 32, 32), dtype=np.uint8)
            data = cifar_batch_bytes(images, np.arange(per_batch) % 10)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_adult(folder: Path) -> None:
    """adult.data and adult.test with the test file's odd first line and trailing dots."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "adult.data").write_text("\n".join(ADULT_ROWS) + "\n\n")
    (folder / "adult.test").write_text("|1x3 Cross validator\n" + "\n".join(ADULT_TEST) + "\n")


def write_covtype(path: Path, n: int = 60, seed: int = 0) -> None:
    """covtype.data.gz: 10 quantitative, 4 wilderness and 40 soil columns, then the cover type."""
    rng = np.random.default_rng(seed)
    quant = rng.integers(0, 3000, size=(n, 10))
    wild = np.eye(4, dtype=int)[rng.integers(0, 4, n)]
    soil = np.eye(40, dtype=int)[rng.integers(0, 20, n)]  # soil types 20..39 never occur: constant columns
    cover = 1 + np.arange(n) % 3  # covers 1, 2, 3
    rows = np.column_stack([quant, wild, soil, cover])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress("\n".join(",".join(map(str, r)) for r in rows).encode() + b"\n"))


@pytest.fixture
def raw_dir(tmp_path: Path) -> Path:
    """A data_dir holding tiny raw files of every real dataset."""
    root = tmp_path / "raw"
    write_mnist(root / "mnist")
    write_cifar_archive(root / "cifar10" / "cifar-10-python.tar.gz")
    write_adult(root / "adult")
    write_covtype(root / "forest" / "covtype.data.gz")
    return root


@pytest.fixture
def unchecked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip checksums: the tiny fake raw files cannot match the real files' digests."""
    from sgd_privacy.data import registry, sources

    monkeypatch.setattr(sources, "verify_checksum", lambda path, checksum: None)
    monkeypatch.setattr(registry, "verify_checksum", lambda path, checksum: None)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of the workflow (not of results) to run Snakemake in."""
    from workflow_helpers import copy_workflow

    return copy_workflow(tmp_path)


@pytest.fixture(scope="session")
def pipeline_results(tmp_path_factory: pytest.TempPathFactory):
    """The one small pipeline run of workflow_helpers.PIPELINE_CONFIG, shared by every test of the session
    (and by both pytest-xdist workers, through a file lock in the session's common temporary folder).
    Read it (`.table(path)`, `.files(glob)`, `.workdir`); to change its config, rerun or dry-run it, use
    `pipeline_clone`. Tests that use it are marked slow."""
    from workflow_helpers import shared_pipeline

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    return shared_pipeline(root)


@pytest.fixture
def pipeline_clone(pipeline_results, tmp_path: Path) -> Path:
    """A private copy of the shared pipeline run (results and Snakemake's records included) to change and rerun."""
    return pipeline_results.clone(tmp_path / "pipeline")


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium binary (workflow_helpers.find_chromium: installed when missing where root and apt allow)."""
    from workflow_helpers import find_chromium

    return find_chromium()


@pytest.fixture(scope="session")
def service():
    """workflow_helpers.require_service: `service(name, reason)` skips the test where the service is unavailable
    (reason not None) and fails it under CI=true."""
    from workflow_helpers import require_service

    return require_service


PIPELINE_FIXTURES = {"pipeline_results", "pipeline_clone"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that use the shared pipeline run slow and those with a copied workflow snakemake; then order the files: the real-Slurm test's file,
    the files using the shared pipeline run (the first starts it), the other files with end-to-end Snakemake
    tests, then the rest, each file kept in one piece (its module fixtures are set up once). With `make
    test`'s two workers (`-n 2 --dist loadfile --no-loadscope-reorder`, without which pytest-xdist re-sorts
    files by their number of tests) the long files then overlap with the rest instead of trailing."""
    rank: dict[Path, int] = {}
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        uses_pipeline = bool(PIPELINE_FIXTURES & fixtures)
        if uses_pipeline and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
        if "workdir" in fixtures:  # a copied workflow: the test calls Snakemake (`make test-fast` leaves it out)
            item.add_marker(pytest.mark.snakemake)
        if item.get_closest_marker("slurm"):
            own = 0
        elif uses_pipeline:
            own = 1
        elif item.get_closest_marker("slow"):
            own = 2
        else:
            own = 3
        rank[item.path] = min(rank.get(item.path, 3), own)
    items.sort(key=lambda item: rank[item.path])
