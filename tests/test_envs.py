"""envs/*.yaml pin the packages of pyproject.toml to the tested versions of the lock file."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch", "snakemake-minimal": "snakemake"}


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version.split("+")[0])[:3])


def lower_bounds() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = {}
    for req in project["dependencies"] + project["optional-dependencies"]["test"]:
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:>=\s*([0-9.]+))?", req)
        out[match[1].lower()] = match[2] or "0"
    return out


def locked() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements" / "lock.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    torch = re.search(r"TORCH_SPEC \?= torch==(\S+)", (ROOT / "Makefile").read_text())
    pins["torch"] = torch[1]
    return pins


def test_lock_pins_every_dependency_within_its_bound():
    pins = locked()
    for name, bound in lower_bounds().items():
        assert name in pins, f"requirements/lock.txt does not pin {name}; run `make lock`"
        assert version_tuple(pins[name]) >= version_tuple(bound), f"{name} {pins[name]} is below pyproject's >= {bound}"


def test_conda_envs_pin_the_locked_versions():
    pins, wanted = locked(), lower_bounds()
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert envs, "no conda environments in envs/"
    for env in envs:
        deps = [d for d in yaml.safe_load(env.read_text())["dependencies"] if isinstance(d, str)]
        named = {}
        for dep in deps:
            match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(?:==\s*(\S+)|>=\s*\S+)?", dep)
            named[CONDA_TO_PYPI.get(match[1].lower(), match[1].lower())] = match[2]
        named.pop("python")
        assert set(named) == set(wanted), f"{env.name} names other packages than pyproject.toml"
        for name, version in named.items():
            assert version == pins[name], f"{env.name} pins {name} {version}, the lock has {pins[name]}"
