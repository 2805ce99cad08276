"""The Slurm profile on a real one-node Slurm (tests/slurm/setup.sh): every job through sbatch,
outputs byte-identical to a local run, growing the grid submits only new shards, a training job
cancelled mid-shard writes a checkpoint on Slurm's SIGTERM and its retry resumes from it to the same
result, with both attempts' logs kept."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from workflow_helpers import TINY_EXPERIMENT, copy_workflow, require_service, tiny_config, write_config

ROOT = Path(__file__).resolve().parents[1]
SETUP = ROOT / "tests" / "slurm" / "setup.sh"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# The documented site settings (slurm/site.example.yaml) for the test cluster: no account
# (it has no accounting); the plugin picks each job's partition from the file's `partitions`:
# GPU jobs on `gpu`, all others on `cpu`.
SITE = {"slurm-partition-config": "slurm/site.yaml", "partitions": {"cpu": {}, "gpu": {"max_gpu": 1}}}
SHARD = {"seeds": 2, "replace_indices": 2}


def config(seeds: int) -> dict:
    """A reduced config: one small experiment, variable init only, two seeds per training job."""
    experiment = {**TINY_EXPERIMENT, "seeds": seeds, "init_modes": ["variable"], "shard": SHARD}
    # device cpu: the test node's GPU is a GRES with no CUDA device behind it, and a job given a GPU whose
    # PyTorch cannot use CUDA stops by design (tests/test_device.py); GPU routing is checked by
    # tests/test_preflight.py on the plugin's own partition choice and by the preflight test below
    training = {"device": "cpu", "dtype": "float32", "memory_budget_mb": 256, "threads": 1}
    # the output-perturbation stage is left out to keep the test short; the report runs locally (localrule)
    return tiny_config(training=training, experiments={"tiny": experiment}, perturbation={"experiments": []})


def slurm_up() -> str | None:
    """Start the test cluster if needed; the reason it cannot run, or None when it is up."""
    if shutil.which("sinfo") is None and os.geteuid() != 0:
        return "no Slurm client here and not root, so tests/slurm/setup.sh cannot install one"
    if os.geteuid() == 0:
        setup = subprocess.run(["bash", str(SETUP)], capture_output=True, text=True, timeout=600)
        if setup.returncode != 0:
            return f"tests/slurm/setup.sh could not start Slurm: {(setup.stdout + setup.stderr)[-1500:]}"
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    if state.returncode != 0 or not re.search(r"idle|mixed|allocated", state.stdout):
        return f"Slurm is not up (sinfo: {state.stdout.strip()} {state.stderr.strip()})"
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    require_service("Slurm", slurm_up())


def workflow_copy(path: Path, seeds: int) -> Path:
    """A copy of the workflow with the reduced config (and the site settings file)."""
    copy_workflow(path, extra=("slurm",))
    write_config(path, config(seeds))
    (path / "slurm" / "site.yaml").write_text(yaml.safe_dump(SITE))
    return path


def start(workdir: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        SNAKEMAKE + ["--cores", "8", *args],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


# The plugin first checks the jobs' status this many seconds after a submission, then 10 s later each
# time, up to 180 s, until one has finished: the profile's 10 s (for clusters) would leave each of the
# test's few-second jobs waiting 30 s for its second check.
STATUS_CHECK_AFTER = "2"


def on_slurm(workdir: Path) -> subprocess.Popen:
    """The README's cluster command, with the test's first status check after 2 s."""
    return start(
        workdir,
        "--profile",
        "slurm",
        "--profile",
        "slurm/site.yaml",
        "--slurm-init-seconds-before-status-checks",
        STATUS_CHECK_AFTER,
    )


def finish(proc: subprocess.Popen) -> str:
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-5000:]
    return out


def submitted(out: str) -> list[str]:
    """The Slurm log folder (rule_<rule>/<wildcards> or group_<name>) of every sbatch submission."""
    logs = re.findall(r"has been submitted with SLURM jobid \d+ \(log: (\S+)\)", out)
    return [str(Path(p).parent.relative_to(Path(p).parents[2])) if "/rule_" in p else Path(p).parent.name for p in logs]


def attempts(log: Path) -> list[str]:
    """Slurm job ids of the attempts recorded in a rule log ('' for an attempt outside Slurm)."""
    return re.findall(r"===== attempt started \S+ on \S+?(?:, slurm job (\d+))? =====", log.read_text())


def outputs(workdir: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(workdir)): p.read_bytes() for p in sorted((workdir / "results").rglob("*")) if p.is_file()
    }


def squeue(comment: str) -> dict[str, str]:
    """Job id -> state of the Slurm jobs whose comment contains `comment`."""
    queue = subprocess.run(["squeue", "-h", "-o", "%i|%k|%T"], capture_output=True, text=True).stdout
    return {i: state for i, k, state in (line.split("|") for line in queue.split()) if comment in k}


def training_script(workdir: Path) -> int | None:
    """The pid of the Python process running a train_shard job's script in `workdir`, if one runs."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if (
                Path(argv[0].decode()).name.startswith("python")
                and any(a.endswith(b"train_shard.py") for a in argv)
                and os.readlink(proc / "cwd") == str(workdir)
            ):
                return int(proc.name)
        except (OSError, ValueError, IndexError):
            continue
    return None


def cancel_when_training(comment: str, proc: subprocess.Popen, workdir: Path, log: Path) -> str:
    """scancel the running Slurm job whose comment contains `comment` once its training script checkpoints on
    SIGTERM (its log says so); its id. The script is frozen (SIGSTOP) from then until Slurm's cancel reaches
    it (SIGCONT, then SIGTERM; SIGKILL after KillWait): the tiny shard trains in milliseconds and would
    otherwise finish first."""
    deadline, pid = time.monotonic() + 600, None
    while time.monotonic() < deadline and proc.poll() is None:
        if pid is None:
            pid = training_script(workdir)
        elif log.exists() and "(and on SIGTERM, then stopping)" in log.read_text():
            os.kill(pid, signal.SIGSTOP)
            try:
                running = [i for i, state in squeue(comment).items() if state == "RUNNING"]
                assert len(running) == 1, squeue(comment)
                subprocess.run(["scancel", running[0]], check=True)
            except BaseException:
                os.kill(pid, signal.SIGCONT)  # not cancelled: let the job go on
                raise
            return running[0]
        time.sleep(0.005)
    pytest.fail(f"no training script of a running Slurm job for {comment} to cancel")


def partitions(out: str) -> dict[str, set[str]]:
    """Rule or group -> the partitions the plugin chose for its jobs (its 'Auto-selected partition' lines)."""
    chosen: dict[str, set[str]] = {}
    for partition, name in re.findall(r"Auto-selected partition '(\w+)' for job (\w+) with score", out):
        chosen.setdefault(name, set()).add(partition)
    return chosen


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_profile_on_a_real_cluster(cluster, tmp_path):
    local = start(workflow_copy(tmp_path / "local", seeds=6))  # the reference, run alongside
    cluster_dir = workflow_copy(tmp_path / "slurm", seeds=4)

    # 1. Four seeds: every job goes through sbatch; the training shards are one job each, the
    #    data and analysis rules one group job each.
    out = finish(on_slurm(cluster_dir))
    assert sorted(submitted(out)) == [
        "group_analysis_convergence_distances_distribution_tests_intrinsic_epsilon_weight_embedding",
        "group_prepare_prepare_dataset",
        "rule_train_shard/tiny_s0_r0_variable",
        "rule_train_shard/tiny_s1_r0_variable",
    ], out[-3000:]
    # no job asks for a GPU with device cpu, so every job goes to the CPU partition (site file's `partitions`)
    assert partitions(out) == {
        "train_shard": {"cpu"},
        "prepare_prepare_dataset": {"cpu"},
        "analysis_convergence_distances_distribution_tests_intrinsic_epsilon_weight_embedding": {"cpu"},
    }, out[-3000:]
    logs = sorted(p for p in (cluster_dir / "logs").rglob("*.log") if p.parent.name != "report")
    assert len(logs) == 8  # prepare_dataset, 2 shards, convergence and 4 analyses (the report is a localrule)
    for log in logs:
        ids = attempts(log)
        assert len(ids) == 1 and ids[0], f"{log} did not run inside a Slurm job: {log.read_text()[:500]}"
    benchmarks = sorted(p for p in (cluster_dir / "logs" / "benchmarks").rglob("*.tsv") if p.parent.name != "report")
    assert len(benchmarks) == 8 and all(b.read_text().startswith("s\th:m:s\tmax_rss") for b in benchmarks)

    # The status command reads the same logs on Slurm: every job done, the shards with their Slurm job.
    status = subprocess.run(
        [sys.executable, "-m", "sgd_privacy.status", str(cluster_dir)], capture_output=True, text=True, check=True
    ).stdout
    assert re.search(
        r"^done +train_shard tiny/s1_r0_variable +- +logs/train/tiny/s1_r0_variable.log \(slurm job \d+\)$",
        status,
        re.M,
    )
    assert status.rstrip().endswith("jobs: 9 planned, 9 done, 0 running, 0 failed, 0 waiting; models: 8/8 trained")

    # 2. Nothing changed: nothing is submitted.
    out = finish(on_slurm(cluster_dir))
    assert submitted(out) == [] and "Nothing to be done" in out

    # 3. Six seeds: only the new shard and the analyses downstream are submitted; the new shard's
    #    first job is cancelled while it trains, writes a checkpoint on Slurm's SIGTERM, and the retry
    #    resumes from it.
    (cluster_dir / "config" / "config.yaml").write_text(yaml.safe_dump(config(6)))
    proc = on_slurm(cluster_dir)
    new_log = cluster_dir / "logs" / "train" / "tiny" / "s2_r0_variable.log"
    comment = "rule_train_shard_wildcards_tiny_s2_r0_variable"
    cancelled = cancel_when_training(comment, proc, cluster_dir, new_log)
    out = finish(proc)
    assert sorted(submitted(out)) == [
        "group_analysis_convergence_distances_distribution_tests_intrinsic_epsilon_weight_embedding",
        "rule_train_shard/tiny_s2_r0_variable",
        "rule_train_shard/tiny_s2_r0_variable",
    ], out[-3000:]
    assert f"SLURM-job '{cancelled}' failed, SLURM status is: 'CANCELLED'" in out
    ids = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S+/rule_train_shard/tiny_s2_r0_variable/", out)
    assert ids[0] == cancelled and ids[1] != cancelled
    # Slurm's own log of both attempts is kept, the cancelled one saying so
    slurm_logs = cluster_dir / ".snakemake" / "slurm_logs" / "rule_train_shard" / "tiny_s2_r0_variable"
    assert sorted(p.name for p in slurm_logs.glob("*.log")) == sorted(f"{i}.log" for i in ids)
    assert f"JOB {cancelled} ON" in (slurm_logs / f"{cancelled}.log").read_text()
    # the rule log shows the retry; its .attempts file keeps both attempts (Snakemake deletes the declared
    # log per attempt): the cancelled one checkpointed on SIGTERM and stopped, the retry resumed from it
    assert attempts(Path(f"{new_log}.attempts")) == ids
    ckpt = "results/train/tiny/shards/s2_r0_variable.parquet.ckpt"
    assert f"stopping after SIGTERM; the next attempt resumes from {ckpt}" in Path(f"{new_log}.attempts").read_text()
    assert attempts(new_log) == [ids[1]] and f"resuming from checkpoint {ckpt}: 0 models done" in new_log.read_text()
    assert not (cluster_dir / ckpt).exists()
    assert len(attempts(cluster_dir / "logs" / "train" / "tiny" / "s0_r0_variable.log.attempts")) == 1

    # Byte for byte what a local run of the same config writes.
    finish(local)
    expected, got = outputs(tmp_path / "local"), outputs(cluster_dir)
    assert sorted(got) == sorted(expected)
    assert [name for name in expected if got[name] != expected[name]] == []


@pytest.mark.slurm
@pytest.mark.slow
def test_a_gpu_job_bound_for_a_partition_without_gpus_stops_before_any_submission(cluster, tmp_path):
    """The test cluster's `cpuonly` partition has no GPU in sinfo's view (tests/slurm/setup.sh): a site file
    that lists it as the GPU partition stops the run with the partition and both fixes named, and nothing
    reaches Slurm."""
    workdir = workflow_copy(tmp_path / "w", seeds=4)
    gpu_config = config(4)
    gpu_config["training"] = {**gpu_config["training"], "device": "auto"}  # training jobs ask for a GPU
    write_config(workdir, gpu_config)
    wrong = {**SITE, "partitions": {"cpu": {}, "cpuonly": {"max_gpu": 1}}}
    (workdir / "slurm" / "site.yaml").write_text(yaml.safe_dump(wrong))
    proc = on_slurm(workdir)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0, out[-3000:]
    assert "partition 'cpuonly' has no GPUs (sinfo's GRES), but would get jobs of train_shard (1 GPU)" in out, out[
        -3000:
    ]
    assert "slurm/site.yaml" in out and "`training.device: cpu`" in out
    assert "has been submitted" not in out and not (workdir / ".snakemake" / "slurm_logs").exists()
    assert not (workdir / "logs").exists()  # no job ran, not even locally
