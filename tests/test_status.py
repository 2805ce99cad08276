"""`python -m sgd_privacy.status`: per job of the latest run, its state, latest progress line, ETA and log,
and a summary, from the run's plan, the logs and the outputs (the same for local and Slurm runs)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from sgd_privacy.io import write_json
from sgd_privacy.status import PLAN, eta_of, failed_in, latest_attempt, main, progress_line, run_status, summary
from workflow_helpers import TINY_EXPERIMENT, copy_workflow, tiny_config, write_config

# A training job's log as the real code writes it (recorded from a run of the tiny config), retried once on
# Slurm: the first attempt was cancelled after its first epoch.
TRAIN_LOG = """\
===== attempt started 2026-12-02T20:15:12Z on vm, slurm job 41 =====
2026-12-02 20:15:12,790 sgd_privacy.job: versions: python=3.11.7 torch=2.13.0+cpu numpy=2.4.6
2026-12-02 20:15:12,857 sgd_privacy.job: tiny: 4 runs of 65 parameters on cpu (float32)
2026-12-02 20:15:15,575 sgd_privacy.job: trained 2/4 models (epoch 1/2 of models 1-4), 0.7 models/s, ETA 3 s
===== attempt started 2026-12-02T20:16:40Z on vm, slurm job 43 =====
2026-12-02 20:16:40,101 sgd_privacy.job: versions: python=3.11.7 torch=2.13.0+cpu numpy=2.4.6
2026-12-02 20:16:40,160 sgd_privacy.job: tiny: 4 runs of 65 parameters on cpu (float32)
2026-12-02 20:16:43,010 sgd_privacy.job: trained 2/4 models (epoch 1/2 of models 1-4), 0.7 models/s, ETA 95 s
"""
FAILED_LOG = """\
===== attempt started 2026-12-02T20:15:12Z on vm =====
2026-12-02 20:15:12,790 sgd_privacy.job: versions: python=3.11.7
2026-12-02 20:15:13,001 sgd_privacy.job: TrainingError: batch_size 512 is larger than the 263 training rows
Traceback (most recent call last):
  File "/w/.snakemake/scripts/tmpa1b2c3.train_shard.py", line 14, in <module>
    check_batch_fits(read_json(smk.input.meta), run["training"]["batch_size"], smk.wildcards.experiment)
sgd_privacy.errors.TrainingError: batch_size 512 is larger than the 263 training rows
"""
SLURM_CANCELLED = "slurmstepd: error: *** JOB 41 ON vm CANCELLED AT 2026-12-02T20:15:16 ***\n"


def test_the_latest_attempt_its_progress_line_and_eta():
    lines, slurm = latest_attempt(TRAIN_LOG)
    assert slurm == "43" and lines[0].endswith("versions: python=3.11.7 torch=2.13.0+cpu numpy=2.4.6")
    message, at = progress_line(lines)
    assert message == "trained 2/4 models (epoch 1/2 of models 1-4), 0.7 models/s, ETA 95 s"
    assert eta_of(message, at) == "20:18:18"  # 20:16:43 + 95 s
    assert eta_of("tiny: 4 runs of 65 parameters", at) == ""
    # an attempt that has logged only the versions line has no progress yet
    assert progress_line(TRAIN_LOG.splitlines()[:2]) == ("", None)


def test_why_an_attempt_failed():
    lines, _ = latest_attempt(FAILED_LOG)
    assert (
        failed_in(lines, None)
        == "sgd_privacy.errors.TrainingError: batch_size 512 is larger than the 263 training rows"
    )
    running, _ = latest_attempt(TRAIN_LOG)
    assert failed_in(running, None) == ""
    assert failed_in(running, "slurmstepd: started\n" + SLURM_CANCELLED).startswith(
        "ended by Slurm: *** JOB 41 ON vm CANC"
    )


def plan_entry(rule: str, log: str | None, *outputs: str, **wildcards: str) -> dict:
    return {"rule": rule, "wildcards": wildcards, "log": [log] if log else [], "output": list(outputs)}


def test_states_from_logs_and_outputs(tmp_path, capsys):
    """Four planned jobs: one done (output present), one running (log, no output), one failed (traceback),
    one waiting (no log); the Slurm job of a failed attempt is found through its own log."""
    shards = "results/train/tiny/shards"
    plan = {
        "started": "2026-12-02T20:15:00Z",
        "jobs": [
            plan_entry("train_shard", "logs/train/tiny/s0.log", f"{shards}/s0.parquet", experiment="tiny", shard="s0"),
            plan_entry("train_shard", "logs/train/tiny/s1.log", f"{shards}/s1.parquet", experiment="tiny", shard="s1"),
            plan_entry("train_shard", "logs/train/tiny/s2.log", f"{shards}/s2.parquet", experiment="tiny", shard="s2"),
            plan_entry("train_shard", "logs/train/tiny/s3.log", f"{shards}/s3.parquet", experiment="tiny", shard="s3"),
        ],
    }
    write_json(plan, tmp_path / PLAN)
    (tmp_path / "logs/train/tiny").mkdir(parents=True)
    (tmp_path / shards).mkdir(parents=True)
    done = (
        TRAIN_LOG
        + "2026-12-02 20:16:44,500 sgd_privacy.job: trained 4/4 models (epoch 2/2 of models 1-4), 1.4 models/s, ETA 0 s\n"
    )
    (tmp_path / "logs/train/tiny/s0.log").write_text(done)
    (tmp_path / shards / "s0.parquet").write_bytes(b"x")
    (tmp_path / "logs/train/tiny/s1.log").write_text(TRAIN_LOG)
    (tmp_path / "logs/train/tiny/s2.log").write_text(TRAIN_LOG.replace("slurm job 43", "slurm job 44"))
    slurm_logs = tmp_path / ".snakemake/slurm_logs/rule_train_shard/tiny_s2"
    slurm_logs.mkdir(parents=True)
    (slurm_logs / "44.log").write_text(SLURM_CANCELLED.replace("41", "44"))
    _, jobs = run_status(tmp_path)
    assert [(j.name, j.state, j.eta, j.trained) for j in jobs] == [
        ("train_shard tiny/s0", "done", "", (4, 4)),
        ("train_shard tiny/s1", "running", "20:18:18", (2, 4)),
        ("train_shard tiny/s2", "failed", "20:18:18", (2, 4)),
        ("train_shard tiny/s3", "waiting", "", None),
    ]
    assert summary(jobs) == (
        "jobs: 4 planned, 1 done, 1 running, 1 failed, 1 waiting; "
        "models: 8/12 trained (1 training job not reporting yet)"
    )
    assert main([str(tmp_path / "results")]) == 0  # the results folder is accepted too
    out = capsys.readouterr().out
    assert re.search(
        r"running +train_shard tiny/s1 +20:18:18 +logs/train/tiny/s1.log \(slurm job 43\)\n +\[20:16:43\] trained 2/4",
        out,
    )
    assert re.search(r"failed +train_shard tiny/s2 .*\n +ended by Slurm: \*\*\* JOB 44 ON vm CANCELLED", out)
    assert "tiny/s3" not in out  # waiting jobs are counted, not listed


def test_no_plan_is_a_clear_error(tmp_path, capsys):
    assert main([str(tmp_path)]) == 1
    assert f"no run plan at {tmp_path / PLAN}" in capsys.readouterr().err


@pytest.mark.slow
def test_status_of_a_real_run_in_progress_then_done(tmp_path):
    """A real local run training one shard for 60 epochs: frozen (SIGSTOP) once its log has a progress line,
    the status shows it running with its ETA; resumed to the end, done with every model trained."""
    copy_workflow(tmp_path)
    experiment = {**TINY_EXPERIMENT, "epochs": 60, "seeds": 2, "init_modes": ["variable"]}
    experiment["shard"] = {"seeds": 2, "replace_indices": 2}  # 2 seeds x 2 datasets: 4 models per shard
    write_config(tmp_path, tiny_config(experiments={"tiny": experiment}, training={"threads": 1}))
    target = "results/train/tiny/shards/s0_r0_variable.parquet"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "1", target],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, the jobs included: frozen and resumed together
    )
    log = tmp_path / "logs/train/tiny/s0_r0_variable.log"
    try:
        deadline = time.monotonic() + 600
        while not (log.exists() and re.search(r"trained [0-3]/4 models", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.stdout else ""
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGSTOP)
        status = subprocess.run(
            [sys.executable, "-m", "sgd_privacy.status", str(tmp_path)], capture_output=True, text=True, check=True
        ).stdout
    finally:
        os.killpg(proc.pid, signal.SIGCONT)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    lines = status.splitlines()
    running = [i for i, line in enumerate(lines) if line.startswith("running")]
    assert len(running) == 1, status
    row = lines[running[0]].split()
    assert row[1:3] == ["train_shard", "tiny/s0_r0_variable"] and row[4] == "logs/train/tiny/s0_r0_variable.log"
    assert re.fullmatch(r"\d\d:\d\d:\d\d", row[3]), status  # an ETA clock time
    assert re.search(
        r"trained [0-3]/4 models \(epoch \d+/60 of models 1-4\), [\d.]+ models/s, ETA \d+ s", lines[running[0] + 1]
    )
    assert re.search(r"^done +prepare_dataset digits_binary +- +logs/data/digits_binary.log$", status, re.M), status
    assert re.search(r"jobs: 2 planned, 1 done, 1 running, 0 failed, 0 waiting; models: [0-3]/4 trained$", status)

    after = subprocess.run(
        [sys.executable, "-m", "sgd_privacy.status", str(tmp_path)], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(
        r"^done +train_shard tiny/s0_r0_variable +- +logs/train/tiny/s0_r0_variable.log\n.*trained 4/4", after, re.M
    )
    assert after.rstrip().endswith("jobs: 2 planned, 2 done, 0 running, 0 failed, 0 waiting; models: 4/4 trained")
