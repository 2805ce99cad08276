"""The suite's own safety rules: a crashed Snakemake call never passes as a result, and a missing test
service skips outside CI but fails under CI=true."""

import subprocess

import pytest

from workflow_helpers import SnakemakeFailed, planned, require_service

TABLE = "Job stats:\njob              count\n-------------  -------\ntrain_shard          2\nreport               1\ntotal                3\n"


def dry(stdout: str, returncode: int = 0, stderr: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["python", "-m", "snakemake", "--cores", "2", "-n"], returncode, stdout, stderr)


def test_planned_reads_the_job_table():
    assert planned(dry(TABLE)) == {"train_shard": 2, "report": 1}
    assert (
        planned(dry("Building DAG of jobs...\nNothing to be done (all requested files are present and up to date).\n"))
        == {}
    )


@pytest.mark.parametrize(
    "result",
    [
        dry("", 1, "KeyError: 'experiments'"),  # the dry run crashed: no table
        dry(TABLE, 1),  # a table, but the call failed afterwards
        dry("Building DAG of jobs...\n"),  # neither a table nor 'Nothing to be done'
    ],
)
def test_planned_never_reads_a_failed_or_unknown_dry_run_as_nothing_to_do(result):
    with pytest.raises(SnakemakeFailed):
        planned(result)


def test_planned_refuses_a_real_run():
    with pytest.raises(ValueError, match="has no -n"):
        planned(subprocess.CompletedProcess(["snakemake", "--cores", "2"], 0, TABLE, ""))


@pytest.mark.snakemake
def test_run_snakemake_raises_on_an_unexpected_exit_status(tmp_path):
    from workflow_helpers import run_snakemake

    (tmp_path / "Snakefile").write_text("rule all:\n    input: 'missing.txt'\n")
    with pytest.raises(SnakemakeFailed, match="exited 1; the test expected it to succeed"):
        run_snakemake(tmp_path, "-n", timeout=120)
    assert run_snakemake(tmp_path, "-n", fails=True, timeout=120).returncode == 1
    (tmp_path / "missing.txt").write_text("")
    with pytest.raises(SnakemakeFailed, match="exited 0; the test expected it to fail"):
        run_snakemake(tmp_path, "-n", fails=True, timeout=120)


def test_a_missing_service_skips_outside_ci_and_fails_in_ci(monkeypatch):
    require_service("Slurm", None)  # up: nothing happens
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="Slurm is not available: no sinfo"):
        require_service("Slurm", "no sinfo")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="Slurm is not available: no sinfo .CI=true"):
        require_service("Slurm", "no sinfo")


LOCK_SCRIPT = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
import workflow_helpers as wh

def fake_run(workdir, config=None, cores=2):
    with open({count!r}, "a") as f:
        f.write("run\\n")
    time.sleep(1.0)
    workdir.mkdir(parents=True)
    return wh.Pipeline(workdir, {{}})

wh.run_pipeline = fake_run
print(wh.shared_pipeline(Path({root!r})).workdir)
"""


def test_two_workers_share_one_pipeline_run(tmp_path):
    """What pytest-xdist's two workers do: both ask for the shared run at once; one runs it, the other waits
    for it and reuses it."""
    import sys
    from pathlib import Path

    count = tmp_path / "count.txt"
    script = LOCK_SCRIPT.format(tests=str(Path(__file__).parent), count=str(count), root=str(tmp_path))
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert count.read_text() == "run\n"  # one run, not two
    assert {o.strip() for o, _ in outs} == {str(tmp_path / "pipeline")}
