"""The Snakemake workflow (its linter runs in the Makefile's gate, which fails on any lint): dry run, config errors before any job, reruns limited to what changed."""

import copy
import shutil

import pytest
import yaml

from workflow_helpers import ROOT, planned, tiny_config, write_config
from workflow_helpers import run_snakemake as snakemake

TINY = tiny_config()


def report_inputs(stdout: str) -> list[str]:
    """The report job's input files in a dry run's output."""
    lines = stdout.splitlines()
    line = lines[lines.index("rule report:") + 1].strip()
    assert line.startswith("input: ")
    return line.removeprefix("input: ").split(", ")


def test_dry_run_of_default_config(workdir):
    result = snakemake(workdir, "-n")
    assert result.returncode == 0, result.stderr
    assert planned(result)["train_shard"] > 0
    # the report reads each attacked experiment's MIA tables and the configured LiRA experiment's
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())["mia"]
    expected = [f"results/mia/{e}/{n}.parquet" for e in config["experiments"] for n in ("attacks", "table6")]
    expected += [f"results/mia/{e}/epsilon_bounds.parquet" for e in config["experiments"]]
    lira = config["lira"]["experiment"]
    expected += [f"results/lira/{lira}/{n}.parquet" for n in ("summary", "roc", "epsilon_bounds")]
    mia_inputs = [p for p in report_inputs(result.stdout) if p.startswith(("results/mia/", "results/lira/"))]
    assert sorted(mia_inputs) == sorted(expected) and len(expected) == 3 * len(config["experiments"]) + 3


def test_report_reads_no_mia_tables_when_the_stage_is_not_configured(workdir):
    write_config(workdir, TINY)
    result = snakemake(workdir, "-n")
    assert result.returncode == 0, result.stderr
    assert [p for p in report_inputs(result.stdout) if p.startswith(("results/mia/", "results/lira/"))] == []


def test_bad_config_stops_before_any_job(workdir):
    config = copy.deepcopy(TINY)
    config["experiments"]["tiny"]["batch_size"] = "large"
    write_config(workdir, config)
    result = snakemake(workdir, fails=True)
    assert "config key 'experiments.tiny.batch_size': value 'large' is invalid" in result.stderr
    assert not (workdir / "results").exists()


def test_shared_run_reports_every_stage(pipeline_results):
    tiny = pipeline_results.table("results/train/tiny/convergence.parquet")
    assert tiny["n_runs"].item() == 16 and tiny["n_diverged"].item() == 0
    epsilon = pipeline_results.table("results/analysis/tiny/epsilon.parquet")
    assert epsilon["n_seeds"].item() == 4 and epsilon["epsilon_theory"].item() > 0
    tests = pipeline_results.table("results/analysis/tiny/distribution_tests.parquet")
    assert tests["hz_note"].item() == "not tested: 4 seeds < 8"
    assert len(pipeline_results.table("results/analysis/tiny/umap.parquet")) == 8
    hz = pipeline_results.table("results/analysis/hz/distribution_tests.parquet")
    assert hz["n_seeds"].item() == 40 and 0 <= hz["hz_p_min"].item() <= 1  # 40 seeds > 31 parameters: tested
    page = (pipeline_results.workdir / "results/report/index.html").read_text()
    # every stage the shared config enables has its section, and every part found the columns it reads
    for section in ("data", "distances", "epsilon", "output_perturbation", "dp", "mia"):
        assert f'<section id="{section}">' in page, section
    assert "Left out" not in page and "not in this config" not in page


def test_config_changes_rerun_only_affected_jobs(pipeline_clone):
    workdir = pipeline_clone
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    assert planned(snakemake(workdir, "-n")) == {}  # the copy of the finished run is complete
    grown = copy.deepcopy(config)
    grown["experiments"]["tiny"]["seeds"] = 8  # adds one seed block per init mode
    write_config(workdir, grown)
    counts = planned(snakemake(workdir, "-n"))
    assert counts["train_shard"] == 2 and counts["convergence"] == 1
    assert "fixed_init" not in counts and "prepare_dataset" not in counts
    changed = copy.deepcopy(config)
    changed["experiments"]["tiny"]["fixed_init_seed"] = 7  # only fixed-init shards depend on it
    write_config(workdir, changed)
    counts = planned(snakemake(workdir, "-n"))
    assert counts["train_shard"] == 1 and counts["fixed_init"] == 1 and "prepare_dataset" not in counts


# Settings documented as resources (config/README.md): where and how fast a job runs, never what it computes.
RESOURCE_CHANGES = {
    "device": ("training", "device", "cpu"),
    "memory budget": ("training", "memory_budget_mb", 256),
    "threads": ("training", "threads", 2),
    "conv_path": ("training", "conv_path", "exact"),
    "checkpoint interval": ("training", "checkpoint_minutes", 1),
}


def test_resource_settings_rerun_nothing(pipeline_clone):
    """All resource settings changed at once plan nothing (a rerun triggered by any one of them would show in
    the combined dry run); only when something is planned are they dry-run one by one to name the culprit."""
    workdir = pipeline_clone
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    changed = copy.deepcopy(config)
    for section, key, value in RESOURCE_CHANGES.values():
        assert changed.setdefault(section, {}).get(key) != value, f"{section}.{key} is already {value}"
        changed[section][key] = value
    write_config(workdir, changed)
    if planned(snakemake(workdir, "-n")) != {}:
        for name, (section, key, value) in RESOURCE_CHANGES.items():
            one = copy.deepcopy(config)
            one.setdefault(section, {})[key] = value
            write_config(workdir, one)
            assert planned(snakemake(workdir, "-n")) == {}, name
        pytest.fail("the resource settings together plan jobs, though none does alone")
    # the guard: in the same copy, a setting that does change results plans jobs
    changed = copy.deepcopy(config)
    changed["experiments"]["tiny"]["lr"] = 0.25
    write_config(workdir, changed)
    assert planned(snakemake(workdir, "-n"))["train_shard"] == 2


def test_missing_raw_data_fails_cleanly_without_partial_outputs(workdir):
    write_config(workdir, {"prepare": ["mnist_binary"], "experiments": {}})
    snakemake(workdir, fails=True)
    log = (workdir / "logs" / "data" / "mnist_binary.log").read_text()
    assert "train-images-idx3-ubyte.gz" in log and "data.download: true" in log
    leftovers = list((workdir / "results").rglob("*")) if (workdir / "results").exists() else []
    assert [p for p in leftovers if p.is_file()] == []


def test_data_source_settings_do_not_rerun_offline_datasets(pipeline_clone):
    workdir = pipeline_clone
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    write_config(workdir, config | {"data": {"download": True, "data_dir": str(workdir / "raw")}})
    assert planned(snakemake(workdir, "-n")) == {}  # digits_binary and the rest ship with installed packages
    write_config(workdir, config | {"datasets": {"digits_binary": {"split_seed": 3}}})
    counts = planned(snakemake(workdir, "-n"))
    assert counts["prepare_dataset"] == 1 and counts["train_shard"] > 0  # a dataset option does change data


def test_slurm_profile_dry_run(workdir):
    shutil.copytree(ROOT / "slurm", workdir / "slurm")
    # as the README says: the example becomes slurm/site.yaml (it names itself as the plugin's partition file)
    shutil.copy(workdir / "slurm" / "site.example.yaml", workdir / "slurm" / "site.yaml")
    result = snakemake(workdir, "-n", "--profile", "slurm", "--profile", "slurm/site.yaml")
    assert result.returncode == 0, result.stderr
    assert planned(result)["train_shard"] > 0


def test_study_config_plans_the_full_grid(workdir):
    study = yaml.safe_load((ROOT / "config" / "study.yaml").read_text())
    weights = workdir / "resources" / "weights" / "resnet50_gn_imagenet.pt"  # the DP study's local backbone
    missing = snakemake(workdir, "-n", "--configfile", str(ROOT / "config" / "study.yaml"), fails=True)
    assert "resnet50_gn_imagenet.pt" in missing.stdout + missing.stderr
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"")
    result = snakemake(workdir, "-n", "--configfile", str(ROOT / "config" / "study.yaml"))
    assert result.returncode == 0, result.stderr
    counts = planned(result)
    assert counts["prepare_dataset"] == 8 and counts["convergence"] == 17 and counts["train_shard"] > 100
    n_dp = sum(len(s.get("values", s.get("variants", []))) for s in study["dp"]["sweeps"].values())
    n_dp += len(study["dp"].get("configurations", {}))
    assert counts["dp_train"] == n_dp * study["dp"]["repeats"] and counts["dp_shadow"] == 3
    assert counts["mia_losses"] == 122 and counts["lira_shadows"] == 4  # CIFAR-10 CNN (30 shards) + 4 attacked grids
