"""Job logs keep every attempt: each call appends a block opened by an attempt header."""

import logging
import re

from sgd_privacy.jobs import attempt_header, job_logging


def test_every_attempt_is_kept_in_the_job_log(tmp_path, monkeypatch):
    log_file = tmp_path / "logs" / "rule.log"
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    job_logging(str(log_file)).error("first attempt failed")
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    job_logging(str(log_file)).info("second attempt done")
    logging.shutdown()
    lines = log_file.read_text().splitlines()
    headers = [i for i, line in enumerate(lines) if line.startswith("===== attempt started")]
    assert len(headers) == 2
    assert lines[headers[0]].endswith(", slurm job 41 =====") and lines[headers[1]].endswith(", slurm job 42 =====")
    assert any("first attempt failed" in line for line in lines[headers[0] : headers[1]])
    assert any("second attempt done" in line for line in lines[headers[1] :])


def test_attempt_header_outside_slurm_names_no_job(monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    header = attempt_header()
    assert re.fullmatch(r"===== attempt started \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ on \S+ =====", header)
