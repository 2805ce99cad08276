"""Job logs record the exact versions that produced a result."""

import logging
from importlib import metadata

import numpy as np

from sgd_privacy.jobs import job_logging
from sgd_privacy.provenance import package_versions


def test_versions_are_the_installed_ones():
    versions = package_versions(("numpy", "surely-not-a-package-xyz"))
    assert versions["numpy"] == np.__version__ == metadata.version("numpy")
    assert versions["surely-not-a-package-xyz"] == "not installed"
    assert versions["python"].count(".") == 2


def test_job_log_starts_with_the_attempt_and_versions(tmp_path):
    log_file = tmp_path / "logs" / "job.log"
    job_logging(str(log_file)).info("work")
    logging.shutdown()
    lines = log_file.read_text().splitlines()
    assert lines[0].startswith("===== attempt started")
    assert f"numpy={np.__version__}" in lines[1] and "torch=" in lines[1]
    assert lines[2].endswith("work")
