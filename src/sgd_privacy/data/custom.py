"""User datasets declared in the config (`custom_datasets`): a CSV, Parquet or npz file, checked and
preprocessed with the built-in sets' steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from pandas.api.types import is_bool_dtype, is_numeric_dtype

from ..io import file_digest
from .errors import DataError
from .preprocess import images_to_unit, one_hot_aligned, random_split, validation_split
from .registry import Fit, Prepared, chain, clip_only, finish, minmax_scale, pca_project, unit_only

TABLE_SUFFIXES = (".csv", ".parquet")
SUFFIXES = (*TABLE_SUFFIXES, ".npz")
NORMS: dict[str, Fit | None] = {"unit": unit_only, "clip": clip_only, "none": None}
PREPROCESSING_KEYS = ("minmax", "pca_components", "norm")
CUSTOM_DEFAULTS: dict = {
    "test_file": None,
    "test_fraction": 0.2,
    "split_seed": 0,
    "validation_fraction": 0.1,
    "label": None,
    "positive": None,
    "classes": None,
    "features": None,
    "categorical": [],
    "minmax": None,
    "pca_components": None,
    "norm": None,
}


def custom_options(spec: dict) -> dict:
    """A custom dataset's full option dict: the schema's defaults, then `spec`."""
    return {**CUSTOM_DEFAULTS, **spec}


def custom_files(spec: dict) -> list[str]:
    """The data files a custom dataset reads: its file and, when set, its test file."""
    return [f for f in (spec["file"], spec.get("test_file")) if f]


def config_problems(name: str, spec: dict) -> list[tuple[str, str]]:
    """Problems of one custom dataset entry visible without reading its data: (key, message) pairs."""
    opts = custom_options(spec)
    out: list[tuple[str, str]] = []
    suffixes = {Path(f).suffix for f in custom_files(opts)}
    for key in ("file", "test_file"):
        path = opts[key]
        if path is None:
            continue
        if Path(path).suffix not in SUFFIXES:
            out.append((key, f"file {path!r} has an unsupported type; use one of {', '.join(SUFFIXES)}"))
        elif not Path(path).is_file():
            out.append((key, f"file {path!r} not found (from {Path.cwd()}); fix the path or create the file"))
    if ".npz" in suffixes and len(suffixes) > 1:
        out.append(("test_file", "file and test_file must both be npz or both be tables (csv/parquet)"))
    tabular = Path(opts["file"]).suffix in TABLE_SUFFIXES
    if tabular and opts["label"] is None:
        out.append(("label", "a table needs the name of its label column; set label"))
    if not tabular:
        for key in ("label", "features", "categorical"):
            if opts[key]:
                out.append((key, "an npz file holds arrays 'x' and 'y', not columns; remove this key"))
    if (opts["positive"] is None) == (opts["classes"] is None):
        out.append(("positive", "set exactly one of positive (binary: this label value is 1) or classes (all classes)"))
    if opts["label"] is not None and opts["label"] in (opts["features"] or []):
        out.append(("features", f"the label column {opts['label']!r} cannot also be a feature"))
    if opts["features"] is not None:
        stray = [c for c in opts["categorical"] if c not in opts["features"]]
        if stray:
            out.append(("categorical", f"columns {stray} are not in features; add them there or remove them here"))
    return out


# ---------------------------------------------------------------- reading and checking
class _Where:
    """How error messages name a custom dataset's file and its config keys."""

    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = name, path

    def error(self, problem: str, fix: str) -> DataError:
        """A DataError naming the dataset, the file, the problem and the fix."""
        return DataError(f"custom dataset {self.name!r}, file {self.path}: {problem}; {fix}")

    def key(self, key: str) -> str:
        """The config key of an option of this dataset."""
        return f"custom_datasets.{self.name}.{key}"


def _first_bad(mask: np.ndarray) -> int:
    """Index of the first row where a boolean mask (rows, or rows x columns) is set."""
    return int(np.flatnonzero(mask.reshape(len(mask), -1).any(axis=1))[0])


def _read_npz(where: _Where) -> tuple[np.ndarray, np.ndarray]:
    """Arrays x and y of an npz file, checked for names, ranks and lengths."""
    try:
        with np.load(where.path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise where.error(f"not a readable npz file ({exc})", "write it with numpy.savez(path, x=..., y=...)") from exc
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise where.error(
            f"missing array(s) {missing} (found {sorted(arrays)})",
            "store the features as 'x' and the labels as 'y' (numpy.savez(path, x=..., y=...))",
        )
    x, y = arrays["x"], arrays["y"]
    if x.ndim not in (2, 4):
        raise where.error(
            f"array x has shape {x.shape} (rank {x.ndim})",
            "x must be (n, features) or images (n, C, H, W); add a channel axis to grey images: x[:, None]",
        )
    if y.ndim != 1 or len(y) != len(x):
        raise where.error(f"array y has shape {y.shape}, x has {len(x)} rows", "y must be one label per row of x")
    if not (is_numeric_dtype(x.dtype) or is_bool_dtype(x.dtype)):
        raise where.error(f"array x has dtype {x.dtype}", "store numeric features")
    return x, y


def _read_table(where: _Where) -> pd.DataFrame:
    """A CSV or Parquet file as a DataFrame (pandas parses CSV floats to the nearest double)."""
    try:
        if where.path.suffix == ".csv":
            return pd.read_csv(where.path)
        return pd.read_parquet(where.path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise where.error(f"cannot read it as {where.path.suffix} ({exc})", "check the file's format") from exc


def _table_columns(frame: pd.DataFrame, opts: dict, where: _Where) -> tuple[pd.DataFrame, np.ndarray]:
    """The feature columns and the raw labels of a table, checked for missing and non-numeric columns."""
    label, categorical = opts["label"], list(opts["categorical"])
    features = opts["features"] or [c for c in frame.columns if c != label]
    for key, columns in (("label", [label]), ("features", features), ("categorical", categorical)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise where.error(
                f"column {missing[0]!r} not found (columns: {', '.join(map(str, frame.columns))})",
                f"fix {where.key(key)} or the file's header",
            )
    x = frame[features].copy()
    for col in features:
        if col in categorical:
            continue
        if is_bool_dtype(x[col]) or is_numeric_dtype(x[col]):
            x[col] = x[col].astype(np.float64)
            continue
        parsed = pd.to_numeric(x[col], errors="coerce")  # numbers stored as text are numbers
        bad = (parsed.isna() & x[col].notna()).to_numpy()
        if bad.any():
            row = _first_bad(bad)
            raise where.error(
                f"feature column {col!r} is not numeric (data row {row + 1}: {x[col].iloc[row]!r})",
                f"list it under {where.key('categorical')} to one-hot encode it, or leave it out of {where.key('features')}",
            )
        x[col] = parsed.astype(np.float64)
    return x, frame[label].to_numpy()


def _check_finite(x: pd.DataFrame | np.ndarray, labels: np.ndarray, where: _Where) -> None:
    """Refuse NaN or infinite features and missing labels, with their count and first row."""
    if isinstance(x, pd.DataFrame):
        bad = np.column_stack(
            [
                ~np.isfinite(x[c].to_numpy(dtype=np.float64)) if is_numeric_dtype(x[c]) else x[c].isna().to_numpy()
                for c in x.columns
            ]
        )
    else:
        bad = ~np.isfinite(x) if x.dtype.kind == "f" else np.zeros(x.shape, dtype=bool)
    if bad.any():
        row = _first_bad(bad)
        column = f", column {x.columns[int(np.flatnonzero(bad[row])[0])]!r}" if isinstance(x, pd.DataFrame) else ""
        raise where.error(
            f"{int(bad.sum())} missing (NaN) or infinite feature value(s), the first in data row {row + 1}{column}",
            "fill or drop those rows before using the file",
        )
    missing = pd.isna(labels)
    if missing.any():
        raise where.error(
            f"{int(missing.sum())} missing label(s), the first in data row {_first_bad(missing) + 1}",
            "fill or drop those rows",
        )


def encode_labels(labels: np.ndarray, opts: dict, where: _Where) -> tuple[np.ndarray, np.ndarray]:
    """Rows kept and their integer labels: `positive` -> 1 else 0, or the index in `classes` (others dropped)."""
    if opts["positive"] is not None:
        keep = np.ones(len(labels), dtype=bool)
        y = (labels == opts["positive"]).astype(np.int64)
        setting = f"positive: {opts['positive']!r}"
    else:
        index = pd.Index(opts["classes"]).get_indexer(pd.Index(labels))
        keep, y = index >= 0, index[index >= 0].astype(np.int64)
        setting = f"classes: {opts['classes']!r}"
    present = np.unique(y)
    if len(present) < 2:
        seen = pd.unique(pd.Series(labels)).tolist()[:10]
        raise where.error(
            f"the label column has only one class after mapping with {setting} (label values found: {seen})",
            f"fix {where.key('positive' if opts['positive'] is not None else 'classes')} to name values the file holds",
        )
    if opts["classes"] is not None and len(present) < len(opts["classes"]):
        absent = [c for k, c in enumerate(opts["classes"]) if k not in present]
        raise where.error(f"classes {absent} have no rows", f"remove them from {where.key('classes')}")
    return keep, y


def read_custom(name: str, path: str | Path, opts: dict) -> tuple[pd.DataFrame | np.ndarray, np.ndarray, str, int]:
    """Features, integer labels, SHA-256 and rows dropped (labels outside `classes`) of one checked data file."""
    where = _Where(name, Path(path))
    if not where.path.is_file():
        raise where.error("file not found", f"fix the path in {where.key('file')} (relative to {Path.cwd()})")
    digest = file_digest(where.path)
    x: pd.DataFrame | np.ndarray
    if where.path.suffix == ".npz":
        x, labels = _read_npz(where)
        if x.ndim == 2:
            x = pd.DataFrame(x.astype(np.float64), columns=[f"x{k}" for k in range(x.shape[1])])
    else:
        x, labels = _table_columns(_read_table(where), opts, where)
    _check_finite(x, labels, where)
    keep, y = encode_labels(labels, opts, where)
    kept = x[keep] if isinstance(x, np.ndarray) else x.loc[keep].reset_index(drop=True)
    return kept, y, digest, int((~keep).sum())


def table_fit(opts: dict, n_fit: int, n_features: int, where: _Where) -> Fit | None:
    """The preprocessing chain of a table: min-max (default on), PCA to k (optional), then the norm step."""
    k = opts["pca_components"]
    if k is not None and k > min(n_fit, n_features):
        raise where.error(
            f"PCA to {k} components needs at least {k} training rows and features, there are {n_fit} and {n_features}",
            f"lower {where.key('pca_components')}",
        )
    steps: list[Fit] = [minmax_scale] if opts["minmax"] in (None, True) else []
    steps += [pca_project(k)] if k is not None else []
    norm = NORMS[opts["norm"] or "unit"]
    steps += [norm] if norm is not None else []
    return chain(*steps) if steps else None


def prepare_custom(name: str, spec: dict) -> tuple[Prepared, dict[str, str]]:
    """Read, check, split and preprocess a custom dataset; return it with its files' SHA-256."""
    opts = custom_options(spec)
    where = _Where(name, Path(opts["file"]))
    x, y, digest, dropped = read_custom(name, opts["file"], opts)
    digests = {opts["file"]: digest}
    if opts["test_file"]:
        x_test, y_test, digests[opts["test_file"]], dropped_test = read_custom(name, opts["test_file"], opts)
        dropped += dropped_test
        x_test = _same_features(x, x_test, opts["test_file"], where)
        train_rows = np.arange(len(y))
    else:
        train_rows, test_rows = random_split(len(y), opts["test_fraction"], opts["split_seed"])
        x_test, y_test = _rows(x, test_rows), y[test_rows]
    fit_rows, y_fit, val_rows, y_val = validation_split(train_rows, y[train_rows], opts["validation_fraction"])
    if len(np.unique(y_fit)) < 2:
        raise where.error(
            f"the training split ({len(y_fit)} rows) holds one class only",
            f"add rows of the other class(es) or lower {where.key('test_fraction')} / {where.key('validation_fraction')}",
        )
    splits = [_rows(x, fit_rows), _rows(x, val_rows), x_test]
    params: dict = {"source": "custom", "rows_dropped_by_classes": dropped}
    fit: Fit | None = None
    if isinstance(x, np.ndarray):
        set_keys = [k for k in PREPROCESSING_KEYS if opts[k] not in (None, False)]
        if set_keys:
            raise where.error(
                f"x holds images of shape {x.shape[1:]} but {', '.join(where.key(k) for k in set_keys)} is set",
                "images are used as they are (uint8 pixels divided by 255); remove those keys, "
                "or store x flattened as (n, features) to preprocess it as feature vectors",
            )
        images = [np.asarray(s) for s in splits]
        arrays = [images_to_unit(s) if s.dtype == np.uint8 else s for s in images]
        params["images"] = "uint8 pixels / 255" if x.dtype == np.uint8 else "as given"
    else:
        frames = [s for s in splits if isinstance(s, pd.DataFrame)]
        if opts["categorical"]:
            fitted, others = one_hot_aligned(frames[0], frames[1:], list(opts["categorical"]))
            frames = [fitted, *others]
            params["one_hot_columns"] = int(fitted.shape[1])
        arrays = [f.to_numpy(dtype=np.float64) for f in frames]
        params["features"] = [str(c) for c in frames[0].columns]
        fit = table_fit(opts, len(arrays[0]), arrays[0].shape[1], where)
    prepared = finish((arrays[0], y_fit), (arrays[1], y_val), (arrays[2], y_test), fit)
    prepared.params = {**params, **prepared.params, "options": opts}
    return prepared, digests


def _same_features(
    x: pd.DataFrame | np.ndarray, x_test: pd.DataFrame | np.ndarray, test_file: str, where: _Where
) -> pd.DataFrame | np.ndarray:
    """The test file's features in the training file's column order (tables) or checked shape (arrays)."""
    if isinstance(x, pd.DataFrame) and isinstance(x_test, pd.DataFrame):
        missing = [c for c in x.columns if c not in x_test.columns]
        if not missing:
            return x_test[list(x.columns)]
        problem = f"test file {test_file} lacks feature column {missing[0]!r}"
    elif np.shape(x)[1:] == np.shape(x_test)[1:]:
        return x_test
    else:
        problem = f"test file {test_file} has rows of shape {np.shape(x_test)[1:]}, this file {np.shape(x)[1:]}"
    raise where.error(problem, f"both files must hold the same features (or set {where.key('features')})")


def _rows(x: pd.DataFrame | np.ndarray, rows: np.ndarray) -> pd.DataFrame | np.ndarray:
    """Rows of a frame (renumbered) or an array, by position."""
    return x.iloc[rows].reset_index(drop=True) if isinstance(x, pd.DataFrame) else x[rows]
