"""Progress of a run, local or on Slurm, from its logs and outputs: `python -m sgd_privacy.status [DIR]`.

The workflow writes its plan (every job it is about to run: rule, wildcards, log, outputs) to
`logs/status/plan.json` when a run starts; this module reads that plan, each job's log (the
latest attempt) and whether its outputs exist, and prints one line per started job and a summary."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .io import read_json, write_json

PLAN = Path("logs") / "status" / "plan.json"
ATTEMPT = re.compile(r"^===== attempt started (\S+) on \S+?(?:, slurm job (\d+))? =====$")
RECORD = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ (\S+): (.*)$")
TRAINED = re.compile(r"trained (\d+)/(\d+) models")
ETA = re.compile(r"ETA (\d+) s\b")
# What Slurm writes into a job's own log when it ends the job (scancel, time limit, memory).
SLURM_END = re.compile(r"\*\*\* JOB \d+ ON \S+ CANCELLED|DUE TO TIME LIMIT|oom[-_ ]kill|Out Of Memory", re.IGNORECASE)
STATES = ("done", "running", "failed", "waiting")
DETAIL = 110  # characters of a progress line shown


def write_plan(jobs: Iterable[Any], root: str | Path = ".") -> Path:
    """Record the jobs a run is about to execute (rule, wildcards, logs, outputs) for the status command."""
    entries = [
        {
            "rule": job.rule.name,
            "wildcards": {k: str(v) for k, v in dict(job.wildcards_dict).items()},
            "log": [str(p) for p in job.log],
            "output": [str(p) for p in job.output],
        }
        for job in jobs
        if job.output or job.log  # not the target rule (`all`), which only collects
    ]
    entries.sort(key=lambda e: (e["rule"], e["log"], e["output"]))
    path = Path(root) / PLAN
    write_json({"started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "jobs": entries}, path)
    return path


@dataclass
class JobStatus:
    """One planned job as its log and outputs show it."""

    rule: str
    wildcards: dict[str, str]
    log: str | None
    state: str
    progress: str = ""
    eta: str = ""
    trained: tuple[int, int] | None = None
    slurm_job: str | None = None
    note: str = ""

    @property
    def name(self) -> str:
        """The rule and its wildcard values, e.g. 'train_shard tiny/s0_r0_variable'."""
        return f"{self.rule} {'/'.join(self.wildcards.values())}".strip()


def latest_attempt(text: str) -> tuple[list[str], str | None]:
    """The lines of a log's last attempt (after its last attempt header) and that attempt's Slurm job id."""
    lines = text.splitlines()
    start, slurm = 0, None
    for i, line in enumerate(lines):
        match = ATTEMPT.match(line)
        if match:
            start, slurm = i + 1, match.group(2)
    return lines[start:], slurm


def progress_line(lines: Sequence[str]) -> tuple[str, datetime | None]:
    """The last log record of an attempt other than the versions line (message, its time), or ('', None)."""
    for line in reversed(lines):
        match = RECORD.match(line)
        if match and not match.group(3).startswith("versions: "):
            return match.group(3), datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")
    return "", None


def eta_of(message: str, at: datetime | None) -> str:
    """When a job will be done ('HH:MM:SS'): its progress line's time plus the line's 'ETA n s'; '' without."""
    match = ETA.search(message)
    if not match or at is None:
        return ""
    seconds = int(match.group(1))
    return f"{at + timedelta(seconds=seconds):%H:%M:%S}"


def failed_in(lines: Sequence[str], slurm_log: str | None) -> str:
    """Why an attempt failed, from its log (a traceback or error) or Slurm's log of its job; '' if it did not."""
    for line in lines:
        if line.startswith("Traceback (most recent call last)"):
            last = next((x for x in reversed(lines) if x.strip() and not x.startswith(" ")), line)
            return last.strip()[:200]
    if slurm_log:
        match = SLURM_END.search(slurm_log)
        if match:
            return f"ended by Slurm: {match.group(0)}"
    return ""


def slurm_job_log(root: Path, job_id: str | None) -> str | None:
    """Slurm's own log of job `job_id` (.snakemake/slurm_logs/**/<id>.log), or None."""
    if not job_id:
        return None
    for path in (root / ".snakemake" / "slurm_logs").rglob(f"{job_id}.log"):
        return path.read_text(errors="replace")
    return None


def job_status(root: Path, entry: dict) -> JobStatus:
    """The state of one planned job: done (outputs all exist), waiting (no log yet), failed or running."""
    log = entry["log"][0] if entry["log"] else None
    status = JobStatus(entry["rule"], entry["wildcards"], log, "waiting")
    log_path = root / log if log else None
    lines: list[str] = []
    if log_path is not None and log_path.exists():
        lines, status.slurm_job = latest_attempt(log_path.read_text(errors="replace"))
        status.progress, at = progress_line(lines)
        status.eta = eta_of(status.progress, at)
        trained = TRAINED.search(status.progress)
        status.trained = (int(trained.group(1)), int(trained.group(2))) if trained else None
        if at is not None:
            status.progress = f"[{at:%H:%M:%S}] {status.progress}"
    if entry["output"] and all((root / p).exists() for p in entry["output"]):
        status.state, status.eta = "done", ""
    elif log_path is not None and log_path.exists():
        status.note = failed_in(lines, slurm_job_log(root, status.slurm_job))
        status.state = "failed" if status.note else "running"
    return status


def run_status(root: str | Path) -> tuple[dict, list[JobStatus]]:
    """The plan of the latest run under `root` (the workflow directory) and the status of each of its jobs."""
    root = Path(root)
    plan_path = root / PLAN
    if not plan_path.exists():
        raise FileNotFoundError(
            f"no run plan at {plan_path}: start the pipeline from {root} first (it writes the plan when a run "
            "starts; a run with nothing to do keeps the previous one), or pass the workflow directory"
        )
    plan = read_json(plan_path)
    return plan, [job_status(root, entry) for entry in plan["jobs"]]


def summary(jobs: Sequence[JobStatus]) -> str:
    """One line: jobs per state and models trained / planned (from the training logs' progress lines)."""
    counts = {state: sum(j.state == state for j in jobs) for state in STATES}
    line = f"jobs: {len(jobs)} planned, " + ", ".join(f"{counts[s]} {s}" for s in STATES)
    reported = [j.trained for j in jobs if j.trained is not None]
    if reported:
        done, planned = sum(t[0] for t in reported), sum(t[1] for t in reported)
        unknown = sum(j.trained is None and j.state != "done" and j.rule in TRAINING_RULES for j in jobs)
        line += f"; models: {done}/{planned} trained"
        if unknown:
            line += f" ({unknown} training job{'s' if unknown > 1 else ''} not reporting yet)"
    return line


# Rules whose logs report `trained k/n models` (the grid trainer); used only to count jobs not yet reporting.
TRAINING_RULES = ("train_shard", "lira_shadows")


def render(root: str | Path, plan: dict, jobs: Sequence[JobStatus]) -> str:
    """The status report: a line per running, failed or done job (progress, ETA, log) and the summary."""
    shown = [j for j in jobs if j.state != "waiting"]
    order = {s: i for i, s in enumerate(("running", "failed", "done"))}
    shown.sort(key=lambda j: (order[j.state], j.name))
    out = [f"run started {plan['started']} in {Path(root).resolve()}"]
    if shown:
        width = max(len(j.name) for j in shown)
        out.append(f"{'STATE':<8} {'JOB':<{width}}  {'ETA':<8}  LOG / LATEST PROGRESS")
        for j in shown:
            slurm = f" (slurm job {j.slurm_job})" if j.slurm_job else ""
            out.append(f"{j.state:<8} {j.name:<{width}}  {j.eta or '-':<8}  {j.log}{slurm}")
            detail = j.note if j.state == "failed" else j.progress
            if detail:
                detail = detail if len(detail) <= DETAIL else detail[: DETAIL - 3] + "..."
                out.append(f"{'':<8} {'':<{width}}  {'':<8}    {detail}")
    out.append(summary(jobs))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the status of the latest run under a workflow directory (or its results/ folder)."""
    parser = argparse.ArgumentParser(prog="python -m sgd_privacy.status", description=main.__doc__)
    parser.add_argument("directory", nargs="?", default=".", help="workflow directory or its results/ (default: .)")
    args = parser.parse_args(argv)
    root = Path(args.directory)
    if root.name == "results" and not (root / PLAN).exists():
        root = root.parent
    try:
        plan, jobs = run_status(root)
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(render(root, plan, jobs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
