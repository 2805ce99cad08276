"""Job glue: logs keep every attempt (`<log>.attempts` gets one block per attempt, opened by a
header); a compute job's torch set-up (threads, freed memory kept for reuse)."""

import logging
import re
import subprocess
import sys

import pytest
import torch

from sgd_privacy.jobs import attempt_header, attempts_file, job_logging, torch_job


def test_every_attempt_is_kept_in_the_job_log(tmp_path, monkeypatch):
    log_file = tmp_path / "logs" / "rule.log"
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    job_logging(str(log_file)).error("first attempt failed")
    logging.shutdown()
    log_file.unlink()  # as Snakemake does before every attempt
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    job_logging(str(log_file)).info("second attempt done")
    logging.shutdown()
    latest = log_file.read_text()
    assert latest.startswith("===== attempt started") and latest.count("=====\n") == 1
    assert "second attempt done" in latest and "first attempt failed" not in latest
    lines = (tmp_path / "logs" / "rule.log.attempts").read_text().splitlines()
    assert attempts_file(str(log_file)) == str(tmp_path / "logs" / "rule.log.attempts")
    headers = [i for i, line in enumerate(lines) if line.startswith("===== attempt started")]
    assert len(headers) == 2
    assert lines[headers[0]].endswith(", slurm job 41 =====") and lines[headers[1]].endswith(", slurm job 42 =====")
    assert any("first attempt failed" in line for line in lines[headers[0] : headers[1]])
    assert any("second attempt done" in line for line in lines[headers[1] :])


def test_attempt_header_outside_slurm_names_no_job(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    header = attempt_header()
    assert re.fullmatch(r"===== attempt started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ on \S+ =====", header)


RETAIN = """
import resource, sys
import numpy as np
from sgd_privacy.jobs import retain_freed_memory

applied = retain_freed_memory() if sys.argv[1] == "retain" else None
faults = []
for _ in range(3):  # a training step's pattern: allocate activations, free them all, again
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    arrays = [np.ones(2**20) for _ in range(12)]  # 12 x 8 MiB, touched
    del arrays
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, *faults)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_reused_without_page_faults():
    """By default glibc returns freed activations to the kernel, so each step faults its pages in again;
    with `retain_freed_memory` the second and third rounds reuse them: what the claim needs is far fewer
    page faults than by default (a few may come from elsewhere in the process, e.g. the allocator's own
    bookkeeping), not exactly none."""

    def rounds(mode: str) -> list[str]:
        out = subprocess.run([sys.executable, "-c", RETAIN, mode], capture_output=True, text=True, check=True)
        return out.stdout.split()

    default, retained = rounds("default"), rounds("retain")
    assert default[0] == "None" and min(int(v) for v in default[1:]) > 1000  # the pattern does fault by default
    assert retained[0] == "True" and max(int(v) for v in retained[2:]) < min(int(v) for v in default[1:]) / 20


def test_torch_job_sets_the_rule_threads():
    before = torch.get_num_threads()
    try:
        torch_job(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
