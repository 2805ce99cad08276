"""config/study.yaml against the three studies: every printed hyper-parameter is equal, or is a listed difference.

The studies' values come from `sgd_privacy.report.study_values` (what the report prints beside the
pipeline's numbers) and from the transcriptions below, each with the table or passage it comes from.
A value that differs must be named in docs/methods.md's table "Where the pipeline deliberately
differs from the studies": a backticked `experiment.parameter` in the row's first cell (shell
wildcards allowed, e.g. `*_mlp.replace_indices`).
"""

from __future__ import annotations

import fnmatch
import math
import re
from pathlib import Path

import pytest
import yaml

from sgd_privacy.data.registry import dataset_options
from sgd_privacy.report import study_values as sv

ROOT = Path(__file__).resolve().parents[1]
STUDY_YAML = ROOT / "config" / "study.yaml"
METHODS = ROOT / "docs" / "methods.md"
DIFF_HEADING = "## Where the pipeline deliberately differs from the studies"

# [IP] Appendix Table 7: learning rate, convergence point T, models trained, parameters, hidden size.
TABLE7 = {
    ("logreg", "CIFAR2"): {"lr": 0.5, "T": 1000, "models": 9900, "parameters": 65, "hidden": None},
    ("logreg", "MNIST-binary"): {"lr": 0.5, "T": 1900, "models": 19600, "parameters": 51, "hidden": None},
    ("logreg", "Adult"): {"lr": 0.5, "T": 3400, "models": 25700, "parameters": 101, "hidden": None},
    ("logreg", "Forest"): {"lr": 1.0, "T": 8400, "models": 20693, "parameters": 50, "hidden": None},
    ("mlp", "CIFAR2"): {"lr": 0.25, "T": 1500, "models": 9900, "parameters": 661, "hidden": 10},
    ("mlp", "MNIST-binary"): {"lr": 0.5, "T": 4750, "models": 9800, "parameters": 521, "hidden": 10},
    ("mlp", "Adult"): {"lr": 0.5, "T": 1850, "models": 11250, "parameters": 817, "hidden": 8},
    ("mlp", "Forest"): {"lr": 0.5, "T": 3500, "models": 11247, "parameters": 511, "hidden": 10},
}
# [IP] Appendix B.1: batch size 32 except Forest (whose value is lost in the available text: not checked);
# validation performance every 50 or 100 batches. Section 4.3: validation = 10% of the training rows,
# Forest's test set = a random 15%.
IP_BATCH = 32
IP_CADENCES = (50, 100)
IP_VALIDATION_FRACTION = 0.1
IP_FOREST_TEST_FRACTION = 0.15
# [IP] Appendix B.3 and section 8: the CIFAR-10 CNN: s = 16, lr 0.1, batch 32, at most 20 epochs, 15,000 rows.
IP_CNN = {"cnn_size": 16, "lr": 0.1, "batch_size": 32, "max_epochs": 20, "n_train": 15000}
# [IP] section 4.2 and Table 1: MNIST-binary PCA to 50 dimensions, CIFAR2's 64-d ResNet-56 embedding.
IP_FEATURES = {"MNIST-binary": 50, "CIFAR2": 64, "Adult": 100, "Forest": 49}

# [OR] Methods: 50 epochs, batch 256, C = 1 in the epsilon sweep, delta 1e-5; the attack's target trains
# on 50,000 members and is challenged with 10,000 members and 10,000 non-members; Adam ("Training uses the
# Adam optimizer"; its baseline "uses standard SGD with momentum").
OR = {
    "epochs": 50,
    "batch_size": 256,
    "max_grad_norm": 1.0,
    "delta": 1e-5,
    "members": 50000,
    "nonmembers": 10000,
    "challenge_members": 10000,
}
# [DG] section IV.c: 15 epochs, batch 32, l2 0.0005 everywhere, SAM rho 0.05, a GroupNorm ResNet-50 with a step
# decay of the learning rate; section IV.a: members = half of the 50,000 training images, non-members = half of
# the 10,000 test images; section V.D: 10 runs; section V.A: C = 1, lr 0.01, sigma in {0, 0.01, ..., 0.05}, delta
# 1e-5; V.B: l2 0.025, dropout 0.6; V.C: DP-SAM sigma 0.1; V.E (CIFAR-10): sigma 0.651 (epsilon = 3), C = 1, lr
# 0.001, and a grid search over C in {0.5, 1, 10} x lr in {0.0005, 0.001, 0.002}.
DG = {"epochs": 15, "batch_size": 32, "l2": 0.0005, "rho": 0.05, "members": 25000, "nonmembers": 5000, "repeats": 10}
DG_CIFAR100 = {"lr": 0.01, "max_grad_norm": 1.0, "sigmas": [0, 0.01, 0.02, 0.03, 0.04, 0.05], "dpsam_sigma": 0.1}
DG_REGULARISERS = {"l2": 0.025, "dropout": 0.6}
DG_CIFAR10 = {"lr": 0.001, "max_grad_norm": 1.0, "sigma": 0.651, "epsilon": 3.0}
DG_CIFAR10_GRID = {"max_grad_norm": [0.5, 1, 10], "lr": [0.0005, 0.001, 0.002]}
# The standard sets' sizes (training, test rows): MNIST 60,000 / 10,000, CIFAR-10 and -100 50,000 / 10,000.
FULL_SIZES = {"mnist": (60000, 10000), "cifar10_full": (50000, 10000), "cifar100": (50000, 10000)}

PIPELINE_DATASET = {v: k for k, v in sv.STUDY_DATASET.items() if k in ("mnist_binary", "cifar2", "adult", "forest")}


def listed_differences(text: str) -> list[str]:
    """The backticked `experiment.parameter` patterns in the first cell of the deliberate-differences table."""
    if DIFF_HEADING not in text:
        raise AssertionError(f"docs/methods.md has no section {DIFF_HEADING!r}")
    section = text.split(DIFF_HEADING, 1)[1].split("\n## ", 1)[0]
    patterns = []
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) > 2 and not set(cells[1].strip()) <= set("-: "):
            patterns += [p for p in re.findall(r"`([^`]+)`", cells[1]) if "." in p]
    return patterns


def unlisted(mismatches: list[tuple[str, object, object]], patterns: list[str]) -> list[str]:
    """The mismatches (name, study, config) whose name no listed pattern matches."""
    return [
        f"{name}: study {study!r}, config {conf!r}"
        for name, study, conf in mismatches
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns)
    ]


class Checker:
    """Collects (experiment.parameter, study value, config value) for every value that is not equal."""

    def __init__(self) -> None:
        self.mismatches: list[tuple[str, object, object]] = []
        self.checked = 0

    def same(self, name: str, study: object, conf: object) -> None:
        """Record `name` as a mismatch unless the config's value equals the study's (floats to 1e-12)."""
        self.checked += 1
        equal = study == conf
        if isinstance(study, float) and isinstance(conf, int | float):
            equal = math.isclose(study, conf, rel_tol=1e-12) or (math.isinf(study) and study == conf)
        if not equal:
            self.mismatches.append((name, study, conf))


def study_config() -> dict:
    """config/study.yaml as parsed YAML."""
    return yaml.safe_load(STUDY_YAML.read_text())


def steps_per_epoch(n_rows: int, batch: int) -> int:
    """Full batches per epoch over a neighbouring dataset D_i (N - 1 rows, the last partial batch dropped)."""
    return (n_rows - 1) // batch


def intrinsic_checks(cfg: dict, check: Checker) -> None:
    """[IP]: Tables 1, 3, 5, 6, 7, appendix B and section 6 against the experiments and mia sections."""
    exps, datasets = cfg["experiments"], cfg.get("datasets", {})
    for study_ds, ds in PIPELINE_DATASET.items():
        opts = dataset_options(ds, datasets.get(ds))
        check.same(f"{ds}.validation_fraction", IP_VALIDATION_FRACTION, opts["validation_fraction"])
        if ds == "forest":
            check.same("forest.test_fraction", IP_FOREST_TEST_FRACTION, opts["test_fraction"])
        if ds == "mnist_binary":
            check.same("mnist_binary.pca_components", IP_FEATURES[study_ds], opts["pca_components"])
        if ds == "cifar2":
            check.same("cifar2.features", "embedding", opts["features"])
        n_train = sv.TABLE1_SIZES[study_ds]["n_train"]
        for model in ("logreg", "mlp"):
            t7, t3 = TABLE7[(model, study_ds)], sv.TABLE3_GRID[(model, study_ds)]
            for name in (f"{ds.split('_')[0]}_{model}", f"{ds.split('_')[0]}_{model}_dist"):
                exp = exps.get(name)
                if exp is None:
                    check.same(f"{name}.present", True, False)
                    continue
                check.same(f"{name}.dataset", ds, exp["dataset"])
                check.same(f"{name}.lr", t7["lr"], exp["lr"])
                check.same(f"{name}.T", t7["T"], exp["T"])
                if study_ds != "Forest":
                    check.same(f"{name}.batch_size", IP_BATCH, exp["batch_size"])
                check.same(f"{name}.cadence_in_study", True, exp["cadence"] in IP_CADENCES)
                d = IP_FEATURES[study_ds]
                params = d + 1 if model == "logreg" else (d + 1) * exp["hidden"] + exp["hidden"] + 1
                check.same(f"{name}.parameters", t7["parameters"], params)
                if model == "mlp":
                    check.same(f"{name}.hidden", t7["hidden"], exp["hidden"])
                    check.same(f"{name}.dropout", 0.2, exp.get("dropout", 0.2))
                steps = exp["epochs"] * steps_per_epoch(n_train, exp["batch_size"])
                check.same(f"{name}.reaches_T", True, steps >= exp["T"])
                inits = exp.get("init_modes", ["variable", "fixed"])
                if name.endswith("_dist"):
                    check.same(f"{name}.seeds", sv.DISTRIBUTION_SEEDS, exp["seeds"])
                    # only T is kept: training past the last whole epoch that reaches T is wasted
                    check.same(f"{name}.stops_after_T", True, (exp["epochs"] - 1) * steps // exp["epochs"] < exp["T"])
                    continue
                check.same(f"{name}.seeds", t3["seeds"], exp["seeds"])
                check.same(f"{name}.replace_indices", t3["datasets"], exp["replace_indices"])
                if model == "logreg":  # Table 5's D_i count: the sets behind Delta_empirical and sigma's range
                    n5 = sv.TABLE5_SIGMA_RANGE[study_ds]["n_datasets"]
                    check.same(f"{name}.replace_indices_table5", n5, exp["replace_indices"])
                    # Table 4's bolt-on bound from the config's T, lr, b and Table 1's N, as section 4 defines it:
                    # 2 k L eta / b with k = T / floor((N - 1) / b) passes and L = sqrt(2)
                    passes = exp["T"] / steps_per_epoch(n_train, exp["batch_size"])
                    bound = 2 * passes * math.sqrt(2) * exp["lr"] / exp["batch_size"]
                    check.same(f"{name}.delta_theory", sv.TABLE4_EPSILON[study_ds]["delta_theory"], round(bound, 3))
                check.same(f"{name}.models", t3["models"], exp["seeds"] * exp["replace_indices"] * len(inits))
                check.same(f"{name}.models_table7", t7["models"], exp["seeds"] * exp["replace_indices"] * len(inits))
    cnn = exps["cifar10_cnn"]
    setup = sv.TABLE6_SETUP
    check.same("cifar10_cnn.dataset", setup["dataset"], cnn["dataset"])
    check.same("cifar10_cnn.model", setup["model"], cnn["model"])
    for key in ("cnn_size", "lr", "batch_size"):
        check.same(f"cifar10_cnn.{key}", IP_CNN[key], cnn[key])
    opts = dataset_options("cifar10", datasets.get("cifar10"))
    rows = opts["n_train"] - round(opts["validation_fraction"] * opts["n_train"])
    check.same("cifar10_cnn.n_train", IP_CNN["n_train"], rows)
    check.same("cifar10_cnn.T", setup["convergence_T"], cnn["T"])
    study_steps = [row["T"] for row in sv.TABLE6_MIA]
    check.same("cifar10_cnn.attacked_steps", study_steps, cfg["mia"]["experiments"]["cifar10_cnn"])
    check.same("cifar10_cnn.kept_steps", study_steps, cnn["log_weights_at"])
    check.same("cifar10_cnn.max_epochs", True, cnn["epochs"] <= IP_CNN["max_epochs"])
    check.same(
        "cifar10_cnn.reaches_last_step",
        True,
        cnn["epochs"] * steps_per_epoch(rows, cnn["batch_size"]) >= study_steps[-1],
    )
    attacked = cnn["seeds"] * cnn["replace_indices"] * len(cnn.get("init_modes", ["variable", "fixed"]))
    for row in sv.TABLE6_MIA:
        check.same(f"cifar10_cnn.attacked_models_{row['T']}", row["n_models"], attacked)
    # the study prints no member / non-member counts for Table 6 (only its 15,000-example training subset),
    # so mia.n_members and mia.n_nonmembers are the pipeline's choice (docs/methods.md, section 6)


def dp_confs(cfg: dict) -> dict[str, dict]:
    """The DP configurations study.yaml defines, resolved with the schema's defaults."""
    from sgd_privacy.dp.settings import configurations

    dp = cfg["dp"]
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    props = schema["properties"]["dp"]["properties"]["defaults"]["properties"]
    defaults = {k: v["default"] for k, v in props.items()}
    full = {"defaults": {**defaults, **dp["defaults"]}, "configurations": dp.get("configurations", {})}
    return configurations({**full, "sweeps": dp["sweeps"]})


def members(cfg: dict, dataset: str) -> tuple[int, int, int]:
    """Members, non-members and challenged members of a DP configuration on a standard set: dp.split_sizes's
    where given (checked to fit the set), else half of its training and test rows, every member challenged."""
    if dataset not in FULL_SIZES:  # e.g. the 15,000-image `cifar10` subset: not the study's data
        return -1, -1, -1
    n_train, n_test = FULL_SIZES[dataset]
    opts = dataset_options(dataset, cfg.get("datasets", {}).get(dataset))
    n_train -= round(opts["validation_fraction"] * n_train)
    sizes = cfg["dp"].get("split_sizes", {}).get(dataset)
    if sizes is None:
        return n_train // 2, n_test // 2, n_train // 2
    n_m, n_n = sizes["n_members"], sizes["n_nonmembers"]
    n_c = sizes.get("n_challenge_members") or n_m
    return (n_m, n_n, n_c) if n_m + 2 <= n_train and n_n <= n_test and n_c <= n_m else (-1, -1, -1)


def dp_epsilon(cfg: dict, conf: dict) -> float:
    """The epsilon (to 0.1) the DP stage books for a noise-multiplier configuration on its standard set: the
    library's accounting (one sampled step per Poisson batch at sigma / sqrt(releases per batch)), NaN off it."""
    from sgd_privacy.dp.accounting import effective_noise_multiplier
    from sgd_privacy.dp.ledger import rdp_epsilon
    from sgd_privacy.dp.train import releases_per_step

    n = members(cfg, conf["dataset"])[0]
    if n <= 0:
        return math.nan
    batches = math.ceil(n / conf["batch_size"])  # the Poisson loader's q = 1 / batches per epoch
    sigma = effective_noise_multiplier(conf["noise_multiplier"], releases_per_step(conf["algorithm"]))
    return round(rdp_epsilon(sigma, 1 / batches, conf["epochs"] * batches, cfg["dp"]["delta"]), 1)


def dp_checks(cfg: dict, check: Checker) -> None:
    """[OR] Tables 1-2 and methods, [DG] sections IV-V, against the dp section."""
    dp, sweeps, confs = cfg["dp"], cfg["dp"]["sweeps"], dp_confs(cfg)
    check.same("dp.delta", OR["delta"], dp["delta"])
    check.same("dp.repeats", DG["repeats"], dp["repeats"])
    eps = sweeps["mnist_epsilon"]
    check.same("mnist_epsilon.key", "target_epsilon", eps["key"])
    check.same("mnist_epsilon.values", [r["epsilon"] for r in sv.DP_EPSILON_SWEEP], [float(v) for v in eps["values"]])
    clip = sweeps["mnist_clip"]
    check.same("mnist_clip.key", "max_grad_norm", clip["key"])
    check.same(
        "mnist_clip.values", [r["max_grad_norm"] for r in sv.DP_CLIPPING_SWEEP], [float(v) for v in clip["values"]]
    )
    for name, conf in confs.items():
        if not name.startswith(("mnist_epsilon-", "mnist_clip-")):
            continue
        sweep = name.split("-")[0]
        check.same(f"{sweep}.dataset", "mnist", conf["dataset"])
        check.same(f"{sweep}.epochs", OR["epochs"], conf["epochs"])
        check.same(f"{sweep}.batch_size", OR["batch_size"], conf["batch_size"])
        check.same(f"{sweep}.optimizer", "adam", "sgd_momentum" if conf["momentum"] > 0 else "sgd")
        if name == "mnist_epsilon-inf":  # [OR]: the baseline is "no DP": neither clipping nor noise
            check.same("mnist_epsilon.inf_algorithm", "sgd", conf["algorithm"])
            continue
        check.same(f"{name}.algorithm", "dpsgd", conf["algorithm"])
        if sweep == "mnist_epsilon":
            check.same(f"{sweep}.max_grad_norm", OR["max_grad_norm"], conf["max_grad_norm"])
        else:
            check.same(f"{sweep}.target_epsilon", 3.0, float(conf["target_epsilon"]))
    got = members(cfg, "mnist")
    for sweep in ("mnist_epsilon", "mnist_clip"):
        check.same(f"{sweep}.members", OR["members"], got[0])
        check.same(f"{sweep}.nonmembers", OR["nonmembers"], got[1])
        check.same(f"{sweep}.challenge_members", OR["challenge_members"], got[2])
    # [DG] CIFAR-100: the noise sweep and the comparisons
    noise = sweeps["cifar100_noise"]
    check.same("cifar100_noise.key", "noise_multiplier", noise["key"])
    check.same("cifar100_noise.values", DG_CIFAR100["sigmas"], noise["values"])
    for name, conf in confs.items():
        sweep = name.split("-")[0]
        if sweep not in ("cifar100_noise", "cifar100_compare", "cifar10_compare"):
            continue
        dataset = "cifar10_full" if sweep == "cifar10_compare" else "cifar100"
        lr = DG_CIFAR10["lr"] if sweep == "cifar10_compare" else DG_CIFAR100["lr"]
        label = name.split("-", 1)[1]
        check.same(f"{sweep}.dataset", dataset, conf["dataset"])
        check.same(f"{sweep}.epochs", DG["epochs"], conf["epochs"])
        check.same(f"{sweep}.batch_size", DG["batch_size"], conf["batch_size"])
        check.same(f"{sweep}.lr", lr, conf["lr"])
        check.same(f"{sweep}.model", "resnet50", conf["model"])  # GroupNorm: the only ResNets the DP study has
        check.same(f"{sweep}.lr_schedule", "step_decay", conf.get("lr_schedule", "constant"))
        check.same(f"{sweep}.l2", DG_REGULARISERS["l2"] if label == "l2" else DG["l2"], conf["l2"])
        if label == "dropout":
            check.same(f"{sweep}.dropout", DG_REGULARISERS["dropout"], conf["dropout"])
        if "rho" in conf:
            check.same(f"{sweep}.rho", DG["rho"], conf["rho"])
        if "max_grad_norm" in conf:
            check.same(f"{sweep}.max_grad_norm", DG_CIFAR100["max_grad_norm"], conf["max_grad_norm"])
        if label == "dpsam" and sweep == "cifar100_compare":
            check.same(f"{sweep}.dpsam_sigma", DG_CIFAR100["dpsam_sigma"], conf["noise_multiplier"])
        if label in ("dpsgd", "dpsam") and sweep == "cifar10_compare":
            check.same(f"{sweep}.sigma", DG_CIFAR10["sigma"], conf["noise_multiplier"])
            check.same(f"{sweep}.{label}_epsilon", DG_CIFAR10["epsilon"], dp_epsilon(cfg, conf))
        got = members(cfg, conf["dataset"])
        check.same(f"{sweep}.members", DG["members"], got[0])
        check.same(f"{sweep}.nonmembers", DG["nonmembers"], got[1])
    labels = set(sweeps["cifar100_compare"]["variants"])
    check.same("cifar100_compare.variants", True, {"sgd", "l2", "dropout", "sam", "sam_clip", "dpsam"} <= labels)
    labels = set(sweeps["cifar10_compare"]["variants"])
    check.same("cifar10_compare.variants", True, {"sgd", "sam", "sam_clip", "dpsgd", "dpsam"} <= labels)
    # the hyper-parameter searches of V.A (CIFAR-100, values not printed) and V.E (CIFAR-10, printed)
    grid = {
        (c["max_grad_norm"], c["lr"]) for c in confs.values() if c["dataset"] == "cifar10_full" and "max_grad_norm" in c
    }
    wanted = {(c, lr) for c in DG_CIFAR10_GRID["max_grad_norm"] for lr in DG_CIFAR10_GRID["lr"]}
    check.same("cifar10_grid.values", sorted(wanted), sorted(wanted & grid))


@pytest.fixture(scope="module")
def checked() -> Checker:
    check = Checker()
    cfg = study_config()
    intrinsic_checks(cfg, check)
    dp_checks(cfg, check)
    return check


def test_every_printed_hyper_parameter_is_equal_or_a_listed_difference(checked):
    assert checked.checked > 300  # every experiment, sweep point and dataset option above was looked at
    missing = unlisted(checked.mismatches, listed_differences(METHODS.read_text()))
    assert not missing, "differences from the studies not in docs/methods.md's table:\n" + "\n".join(
        dict.fromkeys(missing)
    )


def test_every_listed_difference_is_still_a_difference(checked):
    names = [name for name, _, _ in checked.mismatches]
    stale = [p for p in listed_differences(METHODS.read_text()) if not fnmatch.filter(names, p)]
    assert not stale, f"methods.md lists differences study.yaml no longer has: {stale}"


def test_cifar10_sigma_gives_the_studys_epsilon_with_its_members():
    """[DG] V.E: sigma = 0.651 is epsilon = 3 over 15 epochs of batch 32; true only with 25,000 members."""
    from opacus.accountants import RDPAccountant

    cfg = study_config()
    n = members(cfg, cfg["dp"]["sweeps"]["cifar10_compare"]["base"]["dataset"])[0]
    accountant = RDPAccountant()
    accountant.history = [(DG_CIFAR10["sigma"], DG["batch_size"] / n, DG["epochs"] * math.ceil(n / DG["batch_size"]))]
    assert accountant.get_epsilon(OR["delta"]) == pytest.approx(DG_CIFAR10["epsilon"], abs=0.05)


def test_checker_flags_a_changed_value_not_in_the_table():
    cfg = study_config()
    cfg["experiments"]["adult_logreg"]["lr"] = 0.4
    cfg["dp"]["sweeps"]["cifar100_noise"]["values"] = [0, 0.01]
    check = Checker()
    intrinsic_checks(cfg, check)
    dp_checks(cfg, check)
    missing = unlisted(check.mismatches, listed_differences(METHODS.read_text()))
    assert "adult_logreg.lr: study 0.5, config 0.4" in missing
    assert any(m.startswith("cifar100_noise.values:") for m in missing)


def test_table_parser_reads_backticked_names_of_the_first_cell():
    text = f"{DIFF_HEADING}\n\n| what | s | p | why |\n|---|---|---|---|\n| `a_*.lr`, `b.T` x | `no.dot.ignored?` |\n"
    assert listed_differences(text) == ["a_*.lr", "b.T"]
    assert unlisted([("a_mlp.lr", 1, 2), ("c.T", 1, 2)], ["a_*.lr"]) == ["c.T: study 1, config 2"]


# ---- the cost header (benchmarks/study_cost.py, sgd_privacy.cost)
BENCH_CPU = """threads 2, freed memory retained, vectorised trainer on cpu; reference on cpu
logreg (d=50): reference 2247.0 model-steps/s, vectorised 126751.3 model-steps/s (1000 models x 1944 steps, 1000 at once, cpu), ratio 56.41; peak MiB/model: reference 3.2, vectorised 0.27
cnn (3x32x32, s=16, 257 rows): reference 54.3 model-steps/s, vectorised 65.2 model-steps/s (16 models x 64 steps, 16 at once, cpu, exact conv), ratio 1.20; peak MiB/model: reference 68.7, vectorised 9.58
"""
BENCH_GPU = """threads 2, freed memory retained, vectorised trainer on cuda; reference on cpu
logreg (d=50): reference 2000.0 model-steps/s, vectorised 5000000.0 model-steps/s (100000 models x 1944 steps, 100000 at once, cuda), ratio 2500.00; peak MiB/model: reference 3.2, vectorised 0.01
"""


def test_cost_of_a_benchmark_sized_grid_is_its_models_steps_over_the_measured_rate():
    from sgd_privacy.cost import experiment_cost, parse_bench

    bench = parse_bench(BENCH_CPU + BENCH_GPU)
    exp = {"dataset": "mnist_binary", "model": "logreg", "batch_size": 32, "cadence": 50, "epochs": 6}
    exp |= {"seeds": 100, "replace_indices": 10, "shard": {"seeds": 50, "replace_indices": 10}}
    est = experiment_cost("x", exp, bench)
    steps = 6 * (10_396 // 32)  # 1,944: the benchmark's own run length and work per step
    assert est.models == 2000 and est.jobs == 4
    assert est.cpu_hours == pytest.approx(2000 * steps / 126751.3 * 2 / 3600, rel=1e-3)  # 2 threads: core-hours
    assert est.gpu_hours == pytest.approx(2000 * steps / 5_000_000 / 3600, rel=1e-3)
    assert est.disk_gb == pytest.approx(2000 * (steps // 50 + 1) * (51 * 4 + 40) / 1e9)


def test_cost_without_a_gpu_benchmark_says_not_measured_and_the_cnn_has_the_studys_size():
    from sgd_privacy.cost import cnn_params, cost_table, parse_bench, study_costs

    assert cnn_params(3, 16) == 82_554  # [IP] section 8: "The model has 82,554 parameters in total"
    cfg = study_config()
    table = cost_table(study_costs(cfg, parse_bench(BENCH_CPU)), 2)
    cnn = next(line for line in table.splitlines() if line.startswith("cifar10_cnn"))
    assert "not measured" in cnn  # the GPU column
    assert next(line for line in table.splitlines() if line.startswith("mnist_mlp")).count("not measured") == 3


def test_cost_rejects_output_without_benchmark_lines():
    from sgd_privacy.cost import CostError, parse_bench

    with pytest.raises(CostError, match="no benchmark lines found"):
        parse_bench("threads 2\nsomething else\n")


def test_config_readme_holds_the_cost_scripts_current_output():
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "study_cost.py")], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() in (ROOT / "config" / "README.md").read_text()


# ---- [DG]'s model and learning-rate schedule (sgd_privacy.dp)
def test_step_decay_is_the_studys_schedule_over_15_epochs():
    from sgd_privacy.dp.settings import lr_factor

    # [DG] IV.c: lambda for the first five epochs, 0.2 lambda for four, 0.2^2 for three, 0.2^3 for the last three
    expected = [1.0] * 5 + [0.2] * 4 + [0.04] * 3 + [0.008] * 3
    assert [lr_factor("step_decay", e, 15) for e in range(1, 16)] == pytest.approx(expected)
    assert {lr_factor("constant", e, 15) for e in range(1, 16)} == {1.0}


def test_resnet50_gn_has_resnet50s_parameters_and_can_be_clipped(tmp_path):
    import torch

    from sgd_privacy.dp.models import DPSettingError, ResNet50GN, build_model, check_clippable

    model = ResNet50GN(3, 1000)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # torchvision's ResNet-50 (BatchNorm: same count)
    check_clippable(model, "resnet50")  # no BatchNorm: Opacus can clip per example
    torch.save(ResNet50GN(3, 7).state_dict(), tmp_path / "gn.pt")  # another head: fc is not loaded
    conf = {"dataset": "cifar100", "model": "resnet50", "dropout": 0.0, "backbone_weights": str(tmp_path / "gn.pt")}
    built = build_model(conf, (3, 32, 32), 100)
    assert built(torch.zeros(2, 3, 32, 32)).shape == (2, 100)
    saved = torch.load(tmp_path / "gn.pt", weights_only=True)
    assert torch.equal(built.state_dict()["layer4.2.conv3.weight"], saved["layer4.2.conv3.weight"])
    torch.save({**saved, "bn1.running_mean": torch.zeros(64)}, tmp_path / "bn.pt")
    with pytest.raises(DPSettingError, match="BatchNorm checkpoint"):
        build_model({**conf, "backbone_weights": str(tmp_path / "bn.pt")}, (3, 32, 32), 100)
    with pytest.raises(DPSettingError, match="GroupNorm ResNet-50"):
        build_model({**conf, "backbone_weights": str(tmp_path / "missing.pt")}, (3, 32, 32), 100)


def test_step_decay_changes_training_only_after_the_first_step():
    import torch

    from sgd_privacy.dp.train import train_run

    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(64, 1, 28, 28, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    base = {"dataset": "mnist5k", "model": "cnn", "algorithm": "sgd", "epochs": 2, "batch_size": 32, "lr": 0.5}
    base |= {"momentum": 0.0, "l2": 0.0, "dropout": 0.0}
    weights: dict[str, list] = {}
    for schedule in ("constant", "step_decay"):
        out = weights.setdefault(schedule, [])
        conf = {**base, "lr_schedule": schedule}
        train_run(conf, schedule, x, y, 10, 3, 1e-5, lambda e, m, p, out=out: out.append(m.fc2.weight.detach().clone()))
    # epoch 1 at the full rate in both; in epoch 2 of 2 the decayed run steps 0.2 as far (no momentum)
    assert torch.equal(weights["constant"][1], weights["step_decay"][1])
    step_c = weights["constant"][2] - weights["constant"][1]
    step_d = weights["step_decay"][2] - weights["step_decay"][1]
    assert not torch.equal(step_c, step_d)
    assert step_d.norm() < 0.5 * step_c.norm()
