"""Analysis-only job scripts import no torch: each job would pay its start-up (seconds of CPU) for nothing."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"

# Jobs that only read stored tables (histories, weights, losses, confidences) and write tables or the report.
# privacy_ledger is not here: its RDP accountant is opacus's, and importing opacus imports torch.
ANALYSIS_ONLY = [
    "convergence",
    "dp_summary",
    "distances",
    "distribution_tests",
    "intrinsic_epsilon",
    "weight_embedding",
    "lira_attack",
    "mia_attack",
    "report",
]

# Imports the given modules in a fresh interpreter; prints whether the watched package (argv[1]) came in and,
# if so, the import chain.
PROBE = """
import importlib, json, sys, traceback
watched, chain = sys.argv[1], []
class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == watched and not chain:
            chain.extend(f"{f.filename}:{f.lineno}" for f in traceback.extract_stack() if "importlib" not in f.filename)
        return None
sys.meta_path.insert(0, Spy())
for module in sys.argv[2:]:
    importlib.import_module(module)
print(json.dumps({"imported": watched in sys.modules, "chain": [f for f in chain if not f.startswith("<")]}))
"""


def package_imports(script: str) -> list[str]:
    """The sgd_privacy modules a workflow script imports (its `from sgd_privacy... import` and `import` lines)."""
    tree = ast.parse((SCRIPTS / f"{script}.py").read_text())
    modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    return sorted({m for m in modules if m.split(".")[0] == "sgd_privacy"})


def probe(modules: list[str], watched: str = "torch") -> dict:
    """Import `modules` in a fresh interpreter that imports this checkout's package; result["imported"]:
    whether `watched` (torch unless said otherwise) was imported, result["chain"]: the stack that first did."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-c", PROBE, watched, *modules]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_listed_script_exists_and_imports_the_package():
    for script in ANALYSIS_ONLY:
        assert package_imports(script), f"{script}.py imports nothing from sgd_privacy: is the list stale?"


def test_analysis_only_scripts_import_no_torch():
    modules = sorted({m for script in ANALYSIS_ONLY for m in package_imports(script)})
    assert "sgd_privacy.analysis.intrinsic" in modules and "sgd_privacy.attacks.mia" in modules
    result = probe(modules)
    assert not result["imported"], "torch imported by:\n" + "\n".join(result["chain"])


def test_the_probe_sees_torch_where_a_training_script_imports_it():
    result = probe(package_imports("train_shard"))
    assert result["imported"] and any("sgd_privacy" in frame for frame in result["chain"])


def workflow_imports() -> list[str]:
    """The sgd_privacy modules that the Snakefile's rule files import (the workflow's own process)."""
    modules = set()
    for rules in [ROOT / "Snakefile", *(ROOT / "workflow" / "rules").glob("*.smk")]:
        modules |= set(re.findall(r"^\s*from (sgd_privacy[\w.]*) import", rules.read_text(), re.M))
    return sorted(modules)


def test_the_workflows_own_process_imports_neither_torch_nor_scipy():
    """Every Snakemake call (a dry run, a run's main process, the job step inside each Slurm job) parses the
    workflow; importing torch there cost about 1.5 CPU seconds per call and scipy.stats 0.5."""
    modules = workflow_imports()
    assert {"sgd_privacy.data", "sgd_privacy.train.hostmem", "sgd_privacy.attacks.mia_config"} <= set(modules)
    for watched in ("torch", "scipy"):
        result = probe(modules, watched)
        assert not result["imported"], f"{watched} imported by:\n" + "\n".join(result["chain"])
