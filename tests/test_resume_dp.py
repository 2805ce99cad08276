"""A killed DP-study or LiRA training job resumes from its checkpoint: its tables are bit-identical to an
uninterrupted job's (sha256 of the Parquet files); a checkpoint of other settings is discarded."""

import hashlib
import logging
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import sgd_privacy.train.checkpoint as checkpoint_module
from sgd_privacy.attacks.mia import lira_shadow_table
from sgd_privacy.dp.settings import resolve
from sgd_privacy.dp.study import run_job, shadow_features
from sgd_privacy.dp.train import study_split
from sgd_privacy.io import write_table
from sgd_privacy.train.checkpoint import checkpoint_path

# A small CNN with dropout and momentum on the 49 members of 96 rows at batch 12: 5 batches an epoch, 3
# epochs, 15 step boundaries; every randomness of the run matters (shuffle or Poisson masks, noise, dropout).
BASE = {"dataset": "tiny", "model": "cnn", "epochs": 3, "batch_size": 12, "lr": 0.1, "momentum": 0.9}
BASE |= {"l2": 1e-4, "dropout": 0.25, "seed": 3, "rho": 0.05, "max_grad_norm": 1.0, "backbone_weights": None}
ALGORITHMS = {
    "sgd": {"noise_multiplier": None, "target_epsilon": None},
    "dpsgd": {"noise_multiplier": 1.0, "target_epsilon": None},
    "dpsam": {"noise_multiplier": 0.8, "target_epsilon": None},
}
PER_EPOCH = 5
SETTINGS = {"delta": 1e-5, "split_seed": 0, "attack": {"top_k": 3, "hidden": 8, "epochs": 5, "lr": 0.01}}
SHADOW = {"epochs": 1, "batch_size": 12, "lr": 0.1, "momentum": 0.0, "seed": 1}


class Killed(Exception):
    """Stands for the job being killed right after a checkpoint was written."""


def dp_arrays():
    rng = np.random.default_rng(2)
    return {
        "x_train": rng.random((96, 1, 16, 16), dtype=np.float32),
        "y_train": rng.integers(0, 3, 96),
        "x_test": rng.random((40, 1, 16, 16), dtype=np.float32),
        "y_test": rng.integers(0, 3, 40),
    }


@pytest.fixture(scope="module")
def arrays():
    return dp_arrays()


@pytest.fixture(scope="module")
def shadow(arrays):
    return shadow_features({"model": "cnn"}, SHADOW, arrays, 0, "tiny")


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def count_writes(monkeypatch, kill_at=None):
    """Count checkpoint writes; raise `Killed` right after the `kill_at`-th."""
    writes = []
    original = checkpoint_module.write_checkpoint

    def write(path, key, meta, arrays):
        original(path, key, meta, arrays)
        writes.append(meta)
        if len(writes) == kill_at:
            raise Killed

    monkeypatch.setattr(checkpoint_module, "write_checkpoint", write)
    return writes


def conf(algorithm, **over):
    return resolve("c", {**BASE, "algorithm": algorithm, **ALGORITHMS[algorithm], **over})


def job(arrays, shadow, c, folder, **kwargs):
    """Run the DP job and write its two tables into `folder`; their sha256."""
    epochs, examples = run_job("c", c, 0, arrays, shadow, SETTINGS, **kwargs)
    write_table(epochs, folder / "epochs.parquet")
    write_table(examples, folder / "examples.parquet")
    return sha256(folder / "epochs.parquet"), sha256(folder / "examples.parquet")


@pytest.mark.parametrize(
    ("algorithm", "kill_at"),
    [("dpsgd", 1), ("dpsgd", 7), ("dpsgd", 10), ("sgd", 8), ("dpsam", 6), ("dpsgd", 3 * PER_EPOCH)],
)
def test_resumed_dp_job_is_bit_identical(arrays, shadow, tmp_path, monkeypatch, algorithm, kill_at):
    """Killed after the first step, mid-epoch, at an epoch's last step (before its attack), after the last."""
    c = conf(algorithm)
    (tmp_path / "fresh").mkdir()
    (tmp_path / "resumed").mkdir()
    fresh = job(arrays, shadow, c, tmp_path / "fresh")
    ckpt = checkpoint_path(tmp_path / "resumed" / "epochs.parquet")
    count_writes(monkeypatch, kill_at)
    with pytest.raises(Killed):
        job(arrays, shadow, c, tmp_path / "resumed", checkpoint=ckpt, checkpoint_s=0)
    assert ckpt.exists() and not (tmp_path / "resumed" / "epochs.parquet").exists()
    writes = count_writes(monkeypatch)
    assert len(study_split(arrays["y_train"], arrays["y_test"], 0).members) == 49  # PER_EPOCH batches of 12
    messages = []
    resumed = job(arrays, shadow, c, tmp_path / "resumed", checkpoint=ckpt, progress=messages.append)
    assert writes == []  # without checkpoint_s it resumes but writes none
    epoch, done = (kill_at - 1) // PER_EPOCH + 1, (kill_at - 1) % PER_EPOCH + 1
    assert f"resuming from checkpoint {ckpt}: epoch {epoch} after {done} batches" in messages
    assert resumed == fresh


def test_resumed_dp_shadow_is_bit_identical(arrays, shadow, tmp_path, monkeypatch):
    out = tmp_path / "shadow.parquet"
    ckpt = checkpoint_path(out)
    settings = {**SHADOW, "epochs": 2}
    assert len(study_split(arrays["y_train"], arrays["y_test"], 0).shadow_members) == 47  # 4 batches of 12
    count_writes(monkeypatch, kill_at=6)
    with pytest.raises(Killed):
        shadow_features({"model": "cnn"}, settings, arrays, 0, "tiny", checkpoint=ckpt, checkpoint_s=0)
    count_writes(monkeypatch)
    messages = []
    write_table(
        shadow_features({"model": "cnn"}, settings, arrays, 0, "tiny", checkpoint=ckpt, progress=messages.append), out
    )
    assert any(m.startswith(f"resuming from checkpoint {ckpt}: epoch 2 after 2 batches") for m in messages)
    write_table(shadow_features({"model": "cnn"}, settings, arrays, 0, "tiny"), tmp_path / "fresh.parquet")
    assert sha256(out) == sha256(tmp_path / "fresh.parquet")


SIGTERMED = """
import sys, time
import sgd_privacy.train.checkpoint as checkpoint
from pathlib import Path
from test_resume_dp import conf, dp_arrays, job, SHADOW
from sgd_privacy.dp.study import shadow_features

original = checkpoint.Checkpointer.__call__

def slowly(self, snapshot):  # a step boundary every 50 ms; the test sends SIGTERM once training runs
    print("training", flush=True)
    time.sleep(0.05)
    original(self, snapshot)

checkpoint.Checkpointer.__call__ = slowly
arrays, folder = dp_arrays(), Path(sys.argv[1])
shadow = shadow_features({"model": "cnn"}, SHADOW, arrays, 0, "tiny")
with checkpoint.job_checkpoints(folder / "epochs.parquet", 60) as (path, every_s):  # as the job script
    job(arrays, shadow, conf("dpsgd"), folder, checkpoint=path, checkpoint_s=every_s)
print("finished")
"""


def test_sigterm_writes_a_dp_checkpoint_and_stops(arrays, shadow, tmp_path, monkeypatch):
    """A DP job sent SIGTERM writes a checkpoint at the next step boundary and exits with 143; resumed, its
    tables equal an uninterrupted job's."""
    (tmp_path / "fresh").mkdir()
    fresh = job(arrays, shadow, conf("dpsgd"), tmp_path / "fresh")
    ckpt = checkpoint_path(tmp_path / "epochs.parquet")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERMED, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert [proc.stdout.readline() for _ in range(3)] == ["training\n"] * 3  # 3 step boundaries reached
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "finished" not in stdout and ckpt.exists() and not (tmp_path / "epochs.parquet").exists()
    assert f"stopping after SIGTERM; the next attempt resumes from {ckpt}" in stderr
    writes = count_writes(monkeypatch)
    messages = []
    assert job(arrays, shadow, conf("dpsgd"), tmp_path, checkpoint=ckpt, progress=messages.append) == fresh
    assert writes == [] and any(m.startswith(f"resuming from checkpoint {ckpt}: epoch 1 after") for m in messages)


@pytest.mark.parametrize("change", ["noise", "version"])
def test_dp_checkpoint_of_other_settings_is_discarded(arrays, shadow, tmp_path, monkeypatch, caplog, change):
    c = conf("dpsgd")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ckpt = checkpoint_path(tmp_path / "a" / "epochs.parquet")
    count_writes(monkeypatch, kill_at=6)
    with pytest.raises(Killed):
        job(arrays, shadow, c, tmp_path / "a", checkpoint=ckpt, checkpoint_s=0)
    count_writes(monkeypatch)
    if change == "noise":
        c = conf("dpsgd", noise_multiplier=1.1)
    else:
        monkeypatch.setattr(checkpoint_module, "CHECKPOINT_VERSION", checkpoint_module.CHECKPOINT_VERSION + 1)
    messages = []
    with caplog.at_level(logging.WARNING, logger="sgd_privacy.train.checkpoint"):
        got = job(arrays, shadow, c, tmp_path / "a", checkpoint=ckpt, progress=messages.append)
    assert f"discarding checkpoint {ckpt}: it was made with other settings or another code version" in caplog.text
    assert not any("resuming" in m for m in messages) and not ckpt.exists()
    assert got == job(arrays, shadow, c, tmp_path / "b")


# LiRA: 4 subsets of a pool of 40 rows (20 each) at batch 5: 4 steps an epoch, 3 epochs.
LIRA_SLICE = {"dtype": "float32", "dataset": "toy", "model": "mlp", "lr": 0.3, "batch_size": 5}
LIRA_SLICE |= {"hidden": 6, "dropout": 0.25}
LIRA = {"pool_size": 40, "shadows": 4, "subset_seed": 0, "epochs": 3}


@pytest.fixture(scope="module")
def lira_arrays():
    rng = np.random.default_rng(8)
    out = {}
    for split, n in (("train", 50), ("val", 8), ("test", 10)):
        out[f"x_{split}"] = rng.normal(size=(n, 6)).astype(np.float32)
        out[f"y_{split}"] = rng.integers(0, 2, n)
    return out


def lira(arrays, out, lira_settings=LIRA, **kwargs):
    write_table(lira_shadow_table(LIRA_SLICE, arrays, 7, lira_settings, device="cpu", **kwargs), out)
    return sha256(out)


@pytest.mark.parametrize("kill_at", [1, 7, 12])
def test_resumed_lira_job_is_bit_identical(lira_arrays, tmp_path, monkeypatch, kill_at):
    fresh = lira(lira_arrays, tmp_path / "fresh.parquet")
    out = tmp_path / "seed7.parquet"
    ckpt = checkpoint_path(out)
    count_writes(monkeypatch, kill_at)
    with pytest.raises(Killed):
        lira(lira_arrays, out, checkpoint=ckpt, checkpoint_s=0)
    writes = count_writes(monkeypatch)
    messages = []
    assert lira(lira_arrays, out, checkpoint=ckpt, checkpoint_s=0, progress=messages.append) == fresh
    assert [w["t"] for w in writes] == list(range(kill_at - 1, 12))  # from the saved step on, not from 0
    assert any(
        m.startswith(f"resuming from checkpoint {ckpt}: 0 models done, models 1-4 at step {kill_at - 1}")
        for m in messages
    )


def test_lira_checkpoint_of_other_settings_is_discarded(lira_arrays, tmp_path, monkeypatch, caplog):
    out = tmp_path / "seed7.parquet"
    ckpt = checkpoint_path(out)
    count_writes(monkeypatch, 5)
    with pytest.raises(Killed):
        lira(lira_arrays, out, checkpoint=ckpt, checkpoint_s=0)
    count_writes(monkeypatch)
    other = {**LIRA, "subset_seed": 1}
    with caplog.at_level(logging.WARNING, logger="sgd_privacy.train.checkpoint"):
        got = lira(lira_arrays, out, other, checkpoint=ckpt)
    assert f"discarding checkpoint {ckpt}: it was made with other settings or another code version" in caplog.text
    assert not ckpt.exists()
    assert got == lira(lira_arrays, tmp_path / "fresh.parquet", other)
