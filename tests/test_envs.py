"""envs/*.yaml name the same packages (and lower bounds) as pyproject.toml."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch", "snakemake-minimal": "snakemake"}


def split(requirement: str) -> tuple[str, str]:
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=\s*[0-9.]+)?", requirement)
    return match[1].lower(), (match[2] or "").replace(" ", "")


def test_conda_envs_match_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(split(r) for r in project["dependencies"] + project["optional-dependencies"]["test"])
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert envs, "no conda environments in envs/"
    for env in envs:
        deps = [d for d in yaml.safe_load(env.read_text())["dependencies"] if isinstance(d, str)]
        named = dict(split(d) for d in deps)
        named.pop("python")
        named = {CONDA_TO_PYPI.get(k, k): v for k, v in named.items()}
        assert named == wanted, f"{env.name} differs from pyproject.toml"
