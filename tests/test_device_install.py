"""The Makefile's PyTorch choice (`make TORCH=cpu|cuda`): the venv's stamp is keyed on it, and switching
it reinstalls torch. Checked with `make -n` (a dry run: prints the recipe, runs nothing) on a scratch venv."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="GNU make is not installed")


def dry_run(venv: Path, *variables: str) -> tuple[list[str], str]:
    """The recipe lines `make -n run` would execute with `variables`, and its stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "TORCH", "PIP_INSTALL"))}
    out = subprocess.run(
        ["make", "-n", "run", f"VENV={venv}", *variables], cwd=ROOT, capture_output=True, text=True, env=env
    )
    return out.stdout.splitlines() if out.returncode == 0 else [], out.stderr


def installs_torch(lines: list[str]) -> bool:
    """Whether the recipe pip-installs torch."""
    return any(re.search(r'pip install -q .*"torch==', line) for line in lines)


def stamp(lines: list[str]) -> Path:
    """The stamp file the recipe touches."""
    (line,) = [line for line in lines if line.startswith("touch ")]
    return Path(line.split()[1])


def test_a_fresh_venv_installs_the_cpu_build_by_default(tmp_path):
    lines, _ = dry_run(tmp_path / "v")
    assert installs_torch(lines)
    assert not any("pip uninstall" in line for line in lines)  # nothing to replace
    assert not any("--index-url" in line for line in lines)  # pip's configured index, as before
    assert stamp(lines).name.startswith(".installed-cpu-")
    assert lines[-1].endswith("snakemake --cores 8")


def test_the_stamp_is_keyed_on_torch_and_switching_reinstalls(tmp_path):
    venv = tmp_path / "v"
    venv.mkdir()
    cpu = stamp(dry_run(venv)[0])
    cpu.touch()  # as after a real install (newer than pyproject.toml and the lock)
    lines, _ = dry_run(venv, "TORCH=cpu")
    assert not installs_torch(lines) and lines == [lines[-1]]  # up to date: only the pipeline runs

    lines, _ = dry_run(venv, "TORCH=cuda", "TORCH_CUDA_INDEX=https://wheels.example/cu126")
    assert installs_torch(lines)
    uninstall = next(i for i, line in enumerate(lines) if "pip uninstall -q -y torch" in line)
    install = next(i for i, line in enumerate(lines) if '"torch==2.13.0"' in line)
    assert uninstall < install  # the CPU build (2.13.0+cpu satisfies ==2.13.0) is removed first
    assert "--index-url https://wheels.example/cu126" in lines[install]
    assert any("torch.version.cuda" in line and "CPU-only build" in line for line in lines)  # build checked
    assert f"rm -f {cpu}" in lines and stamp(lines).name.startswith(".installed-cuda-")
    cuda = stamp(lines)

    cpu.unlink()
    cuda.touch()  # now a CUDA venv: going back to cpu replaces torch again
    lines, _ = dry_run(venv, "TORCH=cpu")
    assert installs_torch(lines) and any("pip uninstall -q -y torch" in line for line in lines)
    assert stamp(lines) == cpu


def test_spec_and_pip_arguments_are_part_of_the_key(tmp_path):
    venv = tmp_path / "v"
    venv.mkdir()
    stamp(dry_run(venv)[0]).touch()
    for variable in (
        "TORCH_SPEC=torch==2.12.0",
        "PIP_INSTALL_ARGS=--no-cache-dir",
        "TORCH_CPU_INDEX=https://x.example",
    ):
        lines, _ = dry_run(venv, variable)
        assert installs_torch(lines) and any("pip uninstall" in line for line in lines), variable


def test_an_older_unkeyed_stamp_is_replaced(tmp_path):
    venv = tmp_path / "v"
    venv.mkdir()
    (venv / ".installed").touch()  # the stamp of the Makefile before TORCH existed
    lines, _ = dry_run(venv)
    assert installs_torch(lines) and any("pip uninstall -q -y torch" in line for line in lines)
    assert f"rm -f {venv / '.installed'}" in lines


def test_an_unknown_torch_choice_is_refused(tmp_path):
    lines, err = dry_run(tmp_path / "v", "TORCH=gpu")
    assert lines == [] and "TORCH must be cpu or cuda, got 'gpu'" in err
