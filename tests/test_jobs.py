"""Job logs keep every attempt: `<log>.attempts` gets one block per attempt, opened by a header."""

import logging
import re

from sgd_privacy.jobs import attempt_header, attempts_file, job_logging


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
