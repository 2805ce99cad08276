"""A killed training job resumes from its checkpoint: the finished shard is bit-identical to an uninterrupted one."""

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

import sgd_privacy.train.batched as batched_module
import sgd_privacy.train.checkpoint as checkpoint_module
from sgd_privacy.config import ConfigError, load_schema, validate_config
from sgd_privacy.io import write_table
from sgd_privacy.train.checkpoint import Checkpointer, checkpoint_path, discard_checkpoint
from sgd_privacy.train.shard import run_shard
from workflow_helpers import ROOT, SNAKEMAKE, copy_workflow, run_snakemake, tiny_config, write_config

# 6 runs of an MLP with dropout (the step-keyed hash is the only randomness), trained in two chunks
# (4 + 2 models); 29 rows of each D_i at batch 4: 7 steps an epoch, 21 steps a chunk.
SLICE = {"dtype": "float32", "dataset": "toy", "model": "mlp", "lr": 0.3, "batch_size": 4, "epochs": 3}
SLICE |= {"cadence": 5, "log_weights_at": None, "hidden": 5, "dropout": 0.25}
SPEC = {"seeds": [0, 1, 2], "replace": {"list": [3, 17]}, "init": "variable"}
STEPS_PER_CHUNK, CHUNKS = 21, 2


class Killed(Exception):
    """Stands for the job being killed right after a checkpoint was written."""


@pytest.fixture(scope="module")
def arrays():
    rng = np.random.default_rng(5)
    out = {}
    for split, n in (("train", 30), ("val", 8), ("test", 6)):
        out[f"x_{split}"] = rng.normal(size=(n, 6)).astype(np.float32)
        out[f"y_{split}"] = rng.integers(0, 2, n)
    return out


@pytest.fixture(autouse=True)
def two_chunks(monkeypatch):
    monkeypatch.setattr(batched_module, "chunking", lambda *args: (4, 50))  # chunks of 4 models, 50 eval rows


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shard(arrays, out, slice_=SLICE, **kwargs):
    """Train the toy shard (checkpointing beside `out` when asked) and write its table to `out`."""
    write_table(run_shard("toy", slice_, SPEC, arrays, None, device="cpu", progress=None, **kwargs), out)
    return out


def count_saves(monkeypatch, kill_at=None):
    """Count checkpoint writes; raise `Killed` right after the `kill_at`-th."""
    saves = []
    original = checkpoint_module.save_checkpoint

    def save(path, key, state):
        original(path, key, state)
        saves.append(state.batch.t)
        if len(saves) == kill_at:
            raise Killed

    monkeypatch.setattr(checkpoint_module, "save_checkpoint", save)
    return saves


@pytest.mark.parametrize("kill_at", [1, 9, STEPS_PER_CHUNK + 1, STEPS_PER_CHUNK + 13])
def test_resumed_shard_is_bit_identical(arrays, tmp_path, monkeypatch, kill_at):
    """Killed at the first step, mid-epoch of the first chunk, at the start and mid-way of the second chunk."""
    fresh = shard(arrays, tmp_path / "fresh.parquet")
    out = tmp_path / "resumed.parquet"
    ckpt = checkpoint_path(out)
    count_saves(monkeypatch, kill_at)
    with pytest.raises(Killed):
        shard(arrays, out, checkpoint=ckpt, checkpoint_s=0)
    assert ckpt.exists() and not out.exists()
    saves = count_saves(monkeypatch)
    messages = []
    table = run_shard("toy", SLICE, SPEC, arrays, None, device="cpu", progress=messages.append, checkpoint=ckpt)
    write_table(table, out)
    assert saves == []  # without checkpoint_s it resumes but writes none
    done = (kill_at - 1) // STEPS_PER_CHUNK * 4
    t = (kill_at - 1) % STEPS_PER_CHUNK
    assert any(m.startswith(f"resuming from checkpoint {ckpt}: {done} models done") for m in messages)
    assert any(m.endswith(f"at step {t}") for m in messages)
    assert sha256(out) == sha256(fresh)
    assert pq.read_table(out).equals(pq.read_table(fresh))


def test_resume_continues_from_the_saved_step(arrays, tmp_path, monkeypatch):
    """A resumed attempt takes up at the step boundary it saved last, not earlier: with a checkpoint at
    every boundary it saves each remaining boundary once (the first again), and the result is unchanged."""
    out = tmp_path / "resumed.parquet"
    ckpt = checkpoint_path(out)
    count_saves(monkeypatch, kill_at=30)
    with pytest.raises(Killed):
        shard(arrays, out, checkpoint=ckpt, checkpoint_s=0)
    saves = count_saves(monkeypatch)
    shard(arrays, out, checkpoint=ckpt, checkpoint_s=0)
    assert len(saves) == CHUNKS * STEPS_PER_CHUNK - 30 + 1
    assert saves[0] == (30 - 1) % STEPS_PER_CHUNK
    assert sha256(out) == sha256(shard(arrays, tmp_path / "fresh.parquet"))


KILLER = """
import json, os, signal, sys
import numpy as np
import sgd_privacy.train.batched as batched
import sgd_privacy.train.checkpoint as checkpoint
from sgd_privacy.train.shard import run_shard

batched.chunking = lambda *args: (4, 50)
original, saves = checkpoint.save_checkpoint, []

def save(path, key, state):
    original(path, key, state)
    saves.append(state.batch.t)
    if len(saves) == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)

checkpoint.save_checkpoint = save
slice_, spec = json.loads(sys.argv[2])
arrays = dict(np.load(sys.argv[1]))
run_shard("toy", slice_, spec, arrays, None, device="cpu", progress=None, checkpoint=sys.argv[4], checkpoint_s=0)
print("finished")
"""


def test_sigkilled_process_resumes(arrays, tmp_path):
    """A process killed with SIGKILL (no clean-up runs) right after its 26th checkpoint resumes from it."""
    np.savez(tmp_path / "arrays.npz", **arrays)
    out = tmp_path / "resumed.parquet"
    ckpt = checkpoint_path(out)
    args = [str(tmp_path / "arrays.npz"), json.dumps([SLICE, SPEC]), "26", str(ckpt)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", KILLER, *args], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "finished" not in proc.stdout and ckpt.exists()
    shard(arrays, out, checkpoint=ckpt)
    assert sha256(out) == sha256(shard(arrays, tmp_path / "fresh.parquet"))
    discard_checkpoint(ckpt)  # what the job does once the table is written
    assert not ckpt.exists()


SIGTERMED = """
import json, sys, time
import numpy as np
import sgd_privacy.train.batched as batched
import sgd_privacy.train.checkpoint as checkpoint
from sgd_privacy.io import write_table
from sgd_privacy.train.shard import run_shard

batched.chunking = lambda *args: (4, 50)
original = checkpoint.Checkpointer.__call__

def slowly(self, snapshot):  # a step boundary every 50 ms; the test sends SIGTERM once training runs
    print("training", flush=True)
    time.sleep(0.05)
    original(self, snapshot)

checkpoint.Checkpointer.__call__ = slowly
slice_, spec = json.loads(sys.argv[2])
arrays = dict(np.load(sys.argv[1]))
with checkpoint.job_checkpoints(sys.argv[3], 60) as (path, every_s):  # what the job script does
    table = run_shard("toy", slice_, spec, arrays, None, device="cpu", checkpoint=path, checkpoint_s=every_s)
    write_table(table, sys.argv[3])
print("finished")
"""


def test_sigterm_writes_a_checkpoint_and_stops(arrays, tmp_path, monkeypatch):
    """SIGTERM (Slurm's time limit, preemption, scancel) makes the job write a checkpoint at the next step
    boundary, long before its hour-long interval, and exit with 143; the next attempt resumes from it."""
    np.savez(tmp_path / "arrays.npz", **arrays)
    out = tmp_path / "resumed.parquet"
    ckpt = checkpoint_path(out)
    args = [str(tmp_path / "arrays.npz"), json.dumps([SLICE, SPEC]), str(out)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SIGTERMED, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert [proc.stdout.readline() for _ in range(3)] == ["training\n"] * 3  # 3 step boundaries reached
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "finished" not in stdout and ckpt.exists() and not out.exists()
    assert "SIGTERM received: writing a checkpoint at the next step boundary, then stopping" in stderr
    assert f"stopping after SIGTERM; the next attempt resumes from {ckpt}" in stderr
    saves = count_saves(monkeypatch)
    messages = []
    write_table(
        run_shard("toy", SLICE, SPEC, arrays, None, device="cpu", progress=messages.append, checkpoint=ckpt), out
    )
    assert saves == []
    step = [
        int(m.rsplit(" ", 1)[1]) for m in messages if m.startswith(f"resuming from checkpoint {ckpt}: 0 models done")
    ]
    assert len(step) == 1 and 2 <= step[0] < STEPS_PER_CHUNK  # at a later boundary, within the first chunk
    assert sha256(out) == sha256(shard(arrays, tmp_path / "fresh.parquet"))


@pytest.mark.parametrize(
    "change",
    ["slice", "data", "version", "numba"],
)
def test_checkpoint_of_other_settings_is_discarded(arrays, tmp_path, monkeypatch, caplog, change):
    """A checkpoint made with another learning rate, other data or another code version of the step (the
    project's, or numba's, which compiles the CPU's dense step) is never resumed from: it is discarded
    with a log line and the result equals a fresh run."""
    out = tmp_path / "shard.parquet"
    ckpt = checkpoint_path(out)
    count_saves(monkeypatch, kill_at=25)
    with pytest.raises(Killed):
        shard(arrays, out, checkpoint=ckpt, checkpoint_s=0)
    slice_, data = SLICE, arrays
    if change == "slice":
        slice_ = {**SLICE, "lr": 0.2}
    elif change == "data":
        data = {**arrays, "x_val": arrays["x_val"] + np.float32(1)}
    elif change == "version":
        monkeypatch.setattr(checkpoint_module, "CHECKPOINT_VERSION", checkpoint_module.CHECKPOINT_VERSION + 1)
    else:
        monkeypatch.setattr(checkpoint_module, "_numba_version", lambda: "0.0.0")
    messages = []
    with caplog.at_level(logging.WARNING, logger="sgd_privacy.train.checkpoint"):
        table = run_shard("toy", slice_, SPEC, data, None, device="cpu", progress=messages.append, checkpoint=ckpt)
    write_table(table, out)
    assert f"discarding checkpoint {ckpt}: it was made with other settings or another code version" in caplog.text
    assert not any("resuming" in m for m in messages)
    assert not ckpt.exists()
    fresh = tmp_path / "fresh.parquet"
    write_table(run_shard("toy", slice_, SPEC, data, None, device="cpu", progress=None), fresh)
    assert sha256(out) == sha256(fresh)


def test_unreadable_checkpoint_is_discarded(arrays, tmp_path, caplog):
    out = tmp_path / "shard.parquet"
    ckpt = checkpoint_path(out)
    ckpt.write_bytes(b"not a checkpoint")
    (tmp_path / f".{ckpt.name}.x1y2.tmp").write_bytes(b"half-written")  # left by a killed write
    with caplog.at_level(logging.WARNING, logger="sgd_privacy.train.checkpoint"):
        shard(arrays, out, checkpoint=ckpt)
    assert f"discarding unreadable checkpoint {ckpt}" in caplog.text
    assert list(tmp_path.iterdir()) == [out]
    assert sha256(out) == sha256(shard(arrays, tmp_path / "fresh.parquet"))


def test_checkpoints_are_written_every_interval(tmp_path, monkeypatch):
    """The hook saves only once `every_s` seconds have passed since the last save (a fake clock)."""
    now, taken = [100.0], []
    monkeypatch.setattr(checkpoint_module, "save_checkpoint", lambda path, key, state: taken.append(now[0]))
    saver = Checkpointer(tmp_path / "c", "key", 60, clock=lambda: now[0])
    empty = batched_module.BatchState(0, [], {}, np.zeros(0), np.zeros(0, bool))
    for tick in (30, 59.9, 60, 61, 119, 120.5, 200):
        now[0] = 100.0 + tick
        saver(lambda: batched_module.TrainState(1, 0, 16, None, empty))
    assert taken == [160.0, 220.5, 300.0]


def test_resume_under_another_memory_budget(arrays, tmp_path, monkeypatch):
    """The budget is a resource: a retry given another one (here chunks of 3 models) finishes the chunk in
    progress at its saved size and gives the same bits (the grouping contract)."""
    out = tmp_path / "resumed.parquet"
    ckpt = checkpoint_path(out)
    count_saves(monkeypatch, kill_at=9)
    with pytest.raises(Killed):
        shard(arrays, out, checkpoint=ckpt, checkpoint_s=0)
    monkeypatch.setattr(batched_module, "chunking", lambda *args: (3, 50))
    shard(arrays, out, checkpoint=ckpt)
    monkeypatch.setattr(batched_module, "chunking", lambda *args: (4, 50))
    assert sha256(out) == sha256(shard(arrays, tmp_path / "fresh.parquet"))


SHARD = "results/train/tiny/shards/s0_r0_variable.parquet"


@pytest.mark.slow
def test_workflow_job_killed_mid_shard_resumes(tmp_path):
    """Snakemake's train_shard job, killed with SIGKILL (it and Snakemake) once its checkpoint exists,
    resumes from it on the rerun; the shard equals an uninterrupted job's."""
    work = copy_workflow(tmp_path / "wf")
    long = {"epochs": 150, "cadence": 10_000, "init_modes": ["variable"]}
    config = tiny_config(training={"checkpoint_minutes": 0.002})  # about every 0.1 s
    config["experiments"]["tiny"] |= long
    write_config(work, config)
    env = {**os.environ, "PYTHONPATH": str(work / "src")}
    prepared = run_snakemake(work, "--until", "prepare_dataset")
    assert prepared.returncode == 0, prepared.stderr
    ckpt = work / f"{SHARD}.ckpt"
    job = subprocess.Popen(
        [*SNAKEMAKE, "--cores", "1", SHARD], cwd=work, env=env, start_new_session=True, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not ckpt.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    assert ckpt.exists() and not (work / SHARD).exists(), "the job finished before it could be killed"
    assert run_snakemake(work, "--unlock").returncode == 0  # the killed Snakemake left its lock
    resumed = run_snakemake(work, "--rerun-incomplete", SHARD, cores=1)
    assert resumed.returncode == 0, resumed.stderr
    log = (work / "logs/train/tiny/s0_r0_variable.log").read_text()
    assert f"resuming from checkpoint {SHARD}.ckpt" in log
    assert not ckpt.exists()
    digest = sha256(work / SHARD)
    config["training"]["checkpoint_minutes"] = 0  # a resource: reruns nothing (test_workflow.py dry-runs it)
    write_config(work, config)
    fresh = run_snakemake(work, "--force", SHARD, cores=1)
    assert fresh.returncode == 0, fresh.stderr
    assert "resuming" not in (work / "logs/train/tiny/s0_r0_variable.log").read_text()
    assert sha256(work / SHARD) == digest


def test_checkpoint_minutes_in_the_schema():
    schema = load_schema(ROOT / "workflow" / "schemas" / "config.schema.yaml")
    experiments = {"e": {"dataset": "digits_binary", "model": "logreg"}}
    assert validate_config({"experiments": experiments}, schema)["training"]["checkpoint_minutes"] == 10
    assert validate_config({"experiments": experiments, "training": {"checkpoint_minutes": 0.5}}, schema)
    with pytest.raises(ConfigError, match=r"'training.checkpoint_minutes': value -1 .* less than the minimum of 0"):
        validate_config({"experiments": experiments, "training": {"checkpoint_minutes": -1}}, schema)
