"""Custom datasets from the config: formats, preprocessing, clear errors, and reruns driven by the file."""

import copy
import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sgd_privacy.config import ConfigError, load_schema, validate_config
from sgd_privacy.data import DataError, check_batch_fits, load_prepared, prepare_custom, write_prepared
from sgd_privacy.data.custom import CUSTOM_DEFAULTS
from sgd_privacy.data.preprocess import random_split
from workflow_helpers import copy_workflow, planned, run_snakemake

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")


def table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Five float features (one constant) and a 0/1 label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)) * [1.0, 10.0, 0.1, 3.0, 0.0] + [0.0, 5.0, 1.0, -2.0, 7.0]
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d", "e"])
    frame["target"] = (x[:, 0] + 0.1 * x[:, 1] > 0.5).astype(np.int64)
    return frame


def write_formats(frame: pd.DataFrame, folder: Path) -> dict[str, Path]:
    """The same data as CSV, Parquet and npz (x, y)."""
    paths = {s: folder / f"data.{s}" for s in ("csv", "parquet", "npz")}
    frame.to_csv(paths["csv"], index=False)
    frame.to_parquet(paths["parquet"], index=False)
    np.savez(paths["npz"], x=frame.drop(columns="target").to_numpy(), y=frame["target"].to_numpy())
    return paths


def spec_for(path: Path, **extra) -> dict:
    tabular = {"label": "target"} if path.suffix != ".npz" else {}
    return {"file": str(path), "positive": 1, **tabular, **extra}


def test_csv_parquet_and_npz_give_identical_arrays(tmp_path):
    paths = write_formats(table(), tmp_path)
    prepared = {s: prepare_custom("mine", spec_for(p))[0].arrays for s, p in paths.items()}
    for fmt in ("parquet", "npz"):
        for key, arr in prepared["csv"].items():
            np.testing.assert_array_equal(prepared[fmt][key], arr, err_msg=f"{fmt} {key}")
    arrays = prepared["csv"]
    assert arrays["x_train"].shape == (43, 4)  # 60 rows - 12 test - 5 validation; constant column e dropped
    assert len(arrays["x_val"]) == 5 and len(arrays["x_test"]) == 12


def test_preprocessing_matches_a_hand_computation(tmp_path):
    frame = table()
    path = write_formats(frame, tmp_path)["csv"]
    arrays = prepare_custom("mine", spec_for(path))[0].arrays
    tr, te = random_split(60, 0.2, 0)
    x = frame[["a", "b", "c", "d"]].to_numpy()  # e is constant
    fit = x[tr][5:]
    lo, hi = fit.min(axis=0), fit.max(axis=0)
    scaled = (x[te] - lo) / (hi - lo)
    expected = scaled / np.linalg.norm(scaled, axis=1, keepdims=True)
    np.testing.assert_allclose(arrays["x_test"], expected, rtol=1e-6)
    np.testing.assert_array_equal(arrays["y_val"], frame["target"].to_numpy()[tr][:5])
    assert arrays["x_train"].min() >= 0 and np.allclose(np.linalg.norm(arrays["x_train"], axis=1), 1.0)
    clipped = prepare_custom("mine", spec_for(path, pca_components=2, norm="clip", minmax=False))[0]
    assert clipped.arrays["x_train"].shape[1] == 2 and clipped.params["pca_components"] == 2
    assert np.linalg.norm(clipped.arrays["x_test"], axis=1).max() <= 1 + 1e-6


def test_categorical_columns_classes_and_test_file(tmp_path):
    frame = table(40)
    frame["colour"] = np.array(["red", "green", "blue", "green"])[np.arange(40) % 4]
    frame["target"] = np.array(["x", "y", "z"])[np.arange(40) % 3]
    frame.iloc[:30].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[30:].to_csv(tmp_path / "test.csv", index=False)
    spec = {
        "file": str(tmp_path / "train.csv"),
        "test_file": str(tmp_path / "test.csv"),
        "label": "target",
        "classes": ["y", "x"],  # z rows are dropped; y is class 0, x class 1
        "features": ["a", "colour"],
        "categorical": ["colour"],
    }
    prepared, digests = prepare_custom("mine", spec)
    arrays = prepared.arrays
    kept = frame.iloc[:30][frame.iloc[:30]["target"] != "z"]
    assert prepared.params["rows_dropped_by_classes"] == 13  # 10 of 30 train rows, 3 of 10 test rows
    assert prepared.params["features"] == ["a", "colour_green", "colour_red"]  # 'blue' dropped as first level
    # the file's order is kept (no shuffling with a test file); validation = first 10% of rows
    np.testing.assert_array_equal(arrays["y_val"], (kept["target"] == "x").to_numpy()[:2])
    assert len(arrays["y_test"]) == 7 and arrays["x_test"].shape[1] == 3
    assert digests[spec["test_file"]] == hashlib.sha256((tmp_path / "test.csv").read_bytes()).hexdigest()


def test_images_keep_their_shape(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(50, 1, 6, 6), dtype=np.uint8)
    np.savez(tmp_path / "img.npz", x=x, y=np.arange(50) % 3)
    arrays = prepare_custom("img", {"file": str(tmp_path / "img.npz"), "classes": [0, 1, 2]})[0].arrays
    assert arrays["x_train"].shape == (36, 1, 6, 6)
    _, te = random_split(50, 0.2, 0)
    np.testing.assert_array_equal(arrays["x_test"], x[te].astype(np.float32) / 255)
    with pytest.raises(DataError, match=r"x holds images of shape \(1, 6, 6\) but custom_datasets.img.pca_components"):
        prepare_custom("img", {"file": str(tmp_path / "img.npz"), "classes": [0, 1, 2], "pca_components": 3})


def bad_csv(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def _missing_file(tmp_path):
    return {"file": str(tmp_path / "nope.csv"), "label": "target", "positive": 1}


def _missing_column(tmp_path):
    return spec_for(bad_csv(tmp_path, table()), features=["a", "zz"])


def _non_numeric(tmp_path):
    frame = table()
    frame["colour"] = "red"
    frame.loc[3, "colour"] = "blue"
    return spec_for(bad_csv(tmp_path, frame))


def _nan_inf(tmp_path):
    frame = table()
    frame.loc[4, "b"] = np.nan
    frame.loc[9, "a"] = np.inf
    frame.loc[9, "c"] = np.nan
    return spec_for(bad_csv(tmp_path, frame))


def _one_class(tmp_path):
    return spec_for(bad_csv(tmp_path, table()), positive=5)


def _wrong_rank(tmp_path):
    np.savez(tmp_path / "img.npz", x=np.zeros((20, 8, 8), np.uint8), y=np.arange(20) % 2)
    return {"file": str(tmp_path / "img.npz"), "positive": 1}


@pytest.mark.parametrize(
    "make, message",
    [
        (_missing_file, r"nope.csv: file not found; fix the path in custom_datasets.mine.file"),
        (
            _missing_column,
            r"column 'zz' not found \(columns: a, b, c, d, e, target\); fix custom_datasets.mine.features",
        ),
        (
            _non_numeric,
            r"feature column 'colour' is not numeric \(data row 1: 'red'\); list it under custom_datasets.mine.categorical",
        ),
        (_nan_inf, r"3 missing \(NaN\) or infinite feature value\(s\), the first in data row 5, column 'b'"),
        (
            _one_class,
            r"only one class after mapping with positive: 5 \(label values found: \[.*\]\); fix custom_datasets.mine.positive",
        ),
        (_wrong_rank, r"img.npz: array x has shape \(20, 8, 8\) \(rank 3\); .* x\[:, None\]"),
    ],
)
def test_bad_input_is_named_and_leaves_no_output(tmp_path, make, message):
    spec = make(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=message):
        prepared, sources = prepare_custom("mine", spec)
        write_prepared("mine", prepared, out / "mine.npz", out / "mine.json", "x", sources)
    assert not out.exists()


def test_fewer_rows_than_one_batch(tmp_path):
    path = bad_csv(tmp_path, table(30))
    prepared, sources = prepare_custom("mine", spec_for(path))
    meta = write_prepared("mine", prepared, tmp_path / "m.npz", tmp_path / "m.json", "x", sources)
    assert meta["n_train"] == 22
    check_batch_fits(meta, 21, "e")  # neighbouring datasets have 21 rows
    with pytest.raises(
        DataError, match=rf"'mine' \(files: {path}\) has 22 training rows.*batch_size \(22\) to at most 21"
    ):
        check_batch_fits(meta, 22, "e")


def config_with(custom: dict, experiments: dict | None = None, prepare: list | None = None) -> dict:
    return {"custom_datasets": custom, "experiments": experiments or {}, "prepare": prepare or []}


def test_schema_defaults_are_the_library_defaults(tmp_path):
    path = bad_csv(tmp_path, table())
    cfg = validate_config(config_with({"mine": {"file": str(path), "label": "target", "positive": 1}}), SCHEMA)
    assert cfg["custom_datasets"]["mine"] == {**CUSTOM_DEFAULTS, "file": str(path), "label": "target", "positive": 1}


@pytest.mark.parametrize(
    "custom, experiments, message",
    [
        (
            {"breast_cancer": {"file": "{csv}", "label": "target", "positive": 1}},
            None,
            r"'custom_datasets.breast_cancer': the name clashes with the built-in dataset 'breast_cancer'; rename",
        ),
        (
            {"mine": {"file": "{dir}/missing.csv", "label": "target", "positive": 1}},
            None,
            r"'custom_datasets.mine.file': file '.*missing.csv' not found",
        ),
        (
            {"mine": {"file": "{dir}/data.xlsx", "label": "t", "positive": 1}},
            None,
            r"unsupported type; use one of .csv, .parquet, .npz",
        ),
        (
            {"mine": {"file": "{csv}", "positive": 1}},
            None,
            r"'custom_datasets.mine.label': a table needs the name of its label column",
        ),
        (
            {"mine": {"file": "{csv}", "label": "target"}},
            None,
            r"'custom_datasets.mine.positive': set exactly one of positive",
        ),
        (
            {"mine": {"file": "{csv}", "label": "target", "positive": 1, "features": ["a"], "categorical": ["b"]}},
            None,
            r"'custom_datasets.mine.categorical': columns \['b'\] are not in features",
        ),
        (
            {"mine": {"file": "{csv}", "label": "target", "positive": 1}},
            {"e": {"dataset": "mien", "model": "logreg"}},
            r"'experiments.e.dataset': unknown dataset 'mien'; built-in datasets: .*; custom datasets \(custom_datasets\): mine",
        ),
    ],
)
def test_config_errors_before_any_job(tmp_path, custom, experiments, message):
    path = bad_csv(tmp_path, table())
    custom = yaml.safe_load(yaml.safe_dump(custom).replace("{csv}", str(path)).replace("{dir}", str(tmp_path)))
    with pytest.raises(ConfigError, match=message):
        validate_config(config_with(custom, experiments), SCHEMA)


# ---------------------------------------------------------------- the workflow
def snakemake(workdir: Path, *args: str, fails: bool = False) -> subprocess.CompletedProcess:
    return run_snakemake(workdir, *args, timeout=600, fails=fails)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    copy_workflow(tmp_path)
    (tmp_path / "mydata").mkdir()
    table(60, seed=1).to_csv(tmp_path / "mydata" / "one.csv", index=False)
    table(40, seed=2).to_parquet(tmp_path / "mydata" / "two.parquet", index=False)
    config = {
        "custom_datasets": {
            "one": {"file": "mydata/one.csv", "label": "target", "positive": 1},
            "two": {"file": "mydata/two.parquet", "label": "target", "positive": 1},
        },
        "prepare": ["two"],
        "experiments": {
            "on_one": {
                "dataset": "one",
                "model": "logreg",
                "batch_size": 8,
                "epochs": 1,
                "cadence": 2,
                "seeds": 2,
                "replace_indices": 2,
                "init_modes": ["variable"],
            }
        },
        "analysis": {"experiments": []},
    }
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def edit(workdir: Path, name: str) -> None:
    """Change one value of a data file; outputs are made older (order kept) so the edit is newer."""
    for out in (workdir / "results").rglob("*"):
        stat = out.stat()
        os.utime(out, (stat.st_atime - 60, stat.st_mtime - 60))
    path = workdir / "mydata" / name
    frame = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    frame.loc[0, "a"] += 1.0
    frame.to_csv(path, index=False) if path.suffix == ".csv" else frame.to_parquet(path, index=False)


@pytest.mark.slow
def test_editing_a_data_file_reruns_only_what_depends_on_it(workdir):
    result = snakemake(workdir)
    assert result.returncode == 0, result.stderr
    meta = yaml.safe_load((workdir / "results/data/one.json").read_text())
    digest = hashlib.sha256((workdir / "mydata/one.csv").read_bytes()).hexdigest()
    assert meta["source_files"] == {"mydata/one.csv": digest} and meta["n_train"] == 43
    assert planned(snakemake(workdir, "-n")) == {}
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["custom_datasets"]["one"] = dict(reversed(config["custom_datasets"]["one"].items()))
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    assert planned(snakemake(workdir, "-n")) == {}  # the order of keys in the config does not matter
    edit(workdir, "two.parquet")
    dry = snakemake(workdir, "-n")
    assert planned(dry) == {"prepare_dataset": 1, "report": 1, "all": 1}  # the report lists every dataset
    assert "dataset=two" in dry.stdout and "dataset=one" not in dry.stdout
    snakemake(workdir, "--touch")  # up to date again (what running those two jobs would leave), in a second
    edit(workdir, "one.csv")
    dry = snakemake(workdir, "-n")
    downstream = {"train_shard": 1, "convergence": 1, "intrinsic_epsilon": 1, "bolt_on_utility": 1, "query_attack": 1}
    # output perturbation is on; its query experiment's DP-SGD model is booked in the privacy ledger
    assert planned(dry) == {"prepare_dataset": 1, **downstream, "privacy_ledger": 1, "report": 1, "all": 1}
    assert "dataset=one" in dry.stdout and "dataset=two" not in dry.stdout


def test_bad_file_fails_the_data_job_without_outputs(workdir):
    frame = table(60, seed=1)
    frame.loc[7, "c"] = np.nan
    frame.to_csv(workdir / "mydata" / "one.csv", index=False)
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config = copy.deepcopy(config) | {"prepare": ["one"], "experiments": {}}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(workdir, fails=True)
    log = (workdir / "logs" / "data" / "one.log").read_text()
    assert "custom dataset 'one', file mydata/one.csv: 1 missing (NaN) or infinite feature value(s)" in log
    assert "data row 8, column 'c'" in log
    leftovers = list((workdir / "results").rglob("*")) if (workdir / "results").exists() else []
    assert [p for p in leftovers if p.is_file()] == []


def test_load_prepared_reads_a_custom_dataset(tmp_path):
    path = write_formats(table(), tmp_path)["parquet"]
    prepared, sources = prepare_custom("mine", spec_for(path))
    write_prepared("mine", prepared, tmp_path / "m.npz", tmp_path / "m.json", "mine", sources)
    np.testing.assert_array_equal(
        load_prepared(tmp_path / "m.npz", tmp_path / "m.json")["x_val"], prepared.arrays["x_val"]
    )
