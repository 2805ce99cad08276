"""The DP studies beside this run in the report: the DP-vs-generalisation study's printed values, the lab report's
Tables 1 and 2 (accuracy, best-threshold advantage, AUC), the P_err floor, and the repeated-query intervals."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from report_fixtures import other_stage_tables
from sgd_privacy.attacks.metrics import max_advantage, p_err_floor
from sgd_privacy.dp import summary as dp_summary
from sgd_privacy.dp.ledger import rdp_epsilon
from sgd_privacy.report import study_compare as sc
from sgd_privacy.report import study_values as sv
from sgd_privacy.report import tables

pytestmark = pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")

# The study's CIFAR-10 set-up (section IV and V.E), as this pipeline's config keys (config/study.yaml's cifar10_compare)
CIFAR10 = {"dataset": "cifar10_full", "model": "resnet50", "epochs": 15, "batch_size": 32, "lr": 0.001}
CIFAR10 |= {"max_grad_norm": 1.0, "noise_multiplier": 0.651}
# 25,000 members (half of CIFAR-10's training set), batch 32: 782 Poisson batches per epoch, 15 epochs
Q, STEPS = 1 / 782, 15 * 782


def summary_of(per_run: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """The DP stage's summary (its own function) of runs whose last epoch has the given values per metric."""
    rows = []
    for name, metrics in per_run.items():
        algorithm = name.split("-")[-1]
        for r in range(len(metrics["p_err"])):
            for epoch in (0, 15):
                row = {"configuration": name, "epoch": epoch, "attack": "loss_threshold", "dataset": "cifar10_full"}
                row |= {"algorithm": algorithm, "noise_multiplier": 0.651}
                for m in dp_summary.METRICS:
                    row[m] = metrics.get(m, [0.3] * len(metrics["p_err"]))[r]
                rows.append(row)
    return dp_summary.summary_table(pd.DataFrame(rows))


def test_the_dp_generalisation_studys_values_get_a_verdict_at_its_setting_only():
    eps_dpsgd = rdp_epsilon(0.651, Q, STEPS, 1e-5)  # the accountant at the study's setting: 3.0
    eps_dpsam = rdp_epsilon(0.651 / math.sqrt(2), Q, STEPS, 1e-5)  # DP-SAM booked as one step at sigma / sqrt(2)
    assert eps_dpsgd == pytest.approx(3.0, abs=0.01) and eps_dpsam == pytest.approx(10.9, abs=0.05)  # docs/methods.md
    n = 10
    summary = summary_of(
        {
            "c10-dpsgd": {
                "test_accuracy": [0.86 + 0.002 * (-1) ** r for r in range(n)],  # inside 0.86 +- 0.02
                "p_err": [0.43 if r % 2 else 0.53 for r in range(n)],  # mean 0.48: its interval straddles 0.48
                "epsilon": [eps_dpsgd] * n,
            },
            "c10-dpsam": {"p_err": [0.4] * n, "epsilon": [eps_dpsam] * n},
        }
    )
    confs = {"c10-dpsgd": {**CIFAR10, "algorithm": "dpsgd"}, "c10-dpsam": {**CIFAR10, "algorithm": "dpsam"}}
    table = sc.dg_comparison_table(summary, confs).set_index("study_finding")
    assert len(table) == len(sv.DG_VALUES)
    acc = table.loc["DP-SGD at epsilon = 3 (sigma = 0.651), C = 1, lr 0.001 achieves test accuracy ~ 0.86"]
    assert (acc["configuration"], acc["verdict"], acc["repeats"]) == ("c10-dpsgd", "agrees", 10)
    p_err = table.loc["DP-SGD at epsilon = 3 (sigma = 0.651), C = 1, lr 0.001 achieves P_err ~ 0.5"]
    assert p_err["verdict"] == "cannot tell" and p_err["value"] == pytest.approx(0.48)
    assert table.loc["sigma = 0.651 gives epsilon = 3", "verdict"] == "agrees"
    dpsam = table.loc["DP-SAM with C = 1 at epsilon = 3 (sigma = 0.651)"]
    assert dpsam["verdict"] == "differs" and dpsam["value"] == pytest.approx(10.9, abs=0.05)
    assert "deliberate difference" in dpsam["reason"]
    # the CIFAR-100 rows: no CIFAR-100 configuration, so not comparable, naming what differs
    base = table.loc["baseline SGD (lr 0.01) after 15 epochs reaches a test accuracy of 81%"]
    assert (base["verdict"], base["reason"]) == ("not comparable", "no sgd configuration in this run")
    small = table.loc["DP-SGD at sigma = 0.05 yields epsilon ~ 7,000"]
    assert small["verdict"] == "not comparable" and small["configuration"] == "c10-dpsgd"
    assert (
        "dataset cifar10_full (study cifar100)" in small["reason"]
        and "noise_multiplier 0.651 (study 0.05)" in (small["reason"])
    )
    # the same runs on another model or for fewer epochs are not comparable at all
    fewer = {name: {**c, "epochs": 1, "model": "cnn"} for name, c in confs.items()}
    other = sc.dg_comparison_table(summary, fewer)
    assert set(other["verdict"]) == {"not comparable"}
    assert other["reason"].str.contains("epochs 1 (study 15)", regex=False).any()
    assert other["reason"].str.contains("model cnn (study resnet50)", regex=False).any()


def test_the_studys_p_err_floor_is_the_bound_the_report_uses():
    """Equation (4) of the DP-vs-generalisation study, as printed (the study cuts 0.475 and 0.269 to two digits)."""
    for epsilon, printed in sv.DG_PERR_FLOOR.items():
        ours = float(p_err_floor(epsilon, 1e-5))
        assert abs(ours - printed) < (0.01 if printed > 0.1 else 0.0001), (epsilon, ours, printed)


def test_lab_tables_compare_accuracy_best_threshold_advantage_and_auc_at_the_lab_setting():
    sweeps = other_stage_tables(np.random.default_rng(0))["dp_sweeps"]
    lab = {"dataset": "mnist", "model": "cnn", "epochs": 50, "batch_size": 256, "max_grad_norm": 1.0}
    settings = {"eps-3": {**lab, "algorithm": "dpsgd"}, "eps-1": {**lab, "algorithm": "dpsgd"}}
    plain = tables.sweep_table(sweeps, "eps", settings)
    table = plain.set_index(["target_epsilon", "attack"])
    row = table.loc[(3.0, "loss_threshold")]
    assert (row["study_test_accuracy"], row["study_mi_advantage"], row["study_mi_auc"]) == (0.974, 0.042, 0.524)
    # the fixture's model is far weaker and leakier than the lab's: accuracy ~0.69 vs 0.974, AUC ~0.62 vs 0.524
    assert row["test_accuracy_hi"] < 0.9 and row["auc_lo"] > 0.55
    assert (row["verdict_test_accuracy"], row["verdict_auc"]) == ("differs", "differs")
    assert row["verdict_max_advantage"] in {"agrees", "differs", "cannot tell"} and row["not_comparable"] == ""
    # the lab's advantage and AUC are its loss-threshold attack's: not put beside another attack
    shadow = table.loc[(3.0, "nn_shadow")]
    assert shadow["study_test_accuracy"] == 0.974 and math.isnan(shadow["study_mi_advantage"])
    assert shadow["verdict_max_advantage"] == "" and shadow["verdict_auc"] == ""
    # the comparison first: keys, verdicts, then ours beside the study's
    assert list(plain.columns[:8]) == [
        "configuration",
        "target_epsilon",
        "attack",
        "epoch",
        "repeats",
        "verdict_test_accuracy",
        "verdict_max_advantage",
        "verdict_auc",
    ]
    # the fixture's own settings (mnist5k, no model or epochs given) are not the lab's
    other = tables.sweep_table(sweeps, "eps", {"eps-3": {"dataset": "mnist5k"}, "eps-1": {}})
    loss = other[other["attack"] == "loss_threshold"]
    assert set(loss["verdict_auc"]) == {"not comparable"}
    assert "dataset mnist5k (study mnist)" in loss["not_comparable"].iloc[-1]


def test_the_clipping_table_has_no_auc_and_holds_epsilon_3():
    assert all("mi_auc" not in row for row in sv.DP_CLIPPING_SWEEP)
    lab = {"dataset": "mnist", "model": "cnn", "epochs": 50, "batch_size": 256, "algorithm": "dpsgd"}
    assert sc.lab_comparability({**lab, "target_epsilon": 3}, "max_grad_norm") == []
    assert sc.lab_comparability({**lab, "target_epsilon": 1}, "max_grad_norm") == ["target_epsilon 1 (study 3.0)"]
    # Table 1's non-private baseline is plain SGD, without clipping
    assert sc.lab_comparability({**lab, "algorithm": "sgd"}, "target_epsilon") == []


def test_advantage_interval_covers_the_true_distance_in_simulation():
    """Two normals a shift 0.5 apart: the true best-threshold advantage is 2 Phi(0.25) - 1; the distribution-free
    interval of the stage's statistic covers it in at least 95% of 400 draws of 100 + 100 examples."""
    truth = 2 * stats.norm.cdf(0.25) - 1
    rng = np.random.default_rng(1)
    hits = 0
    for _ in range(400):
        d = max_advantage(rng.normal(0.5, 1, 100), rng.normal(0, 1, 100))
        lo, hi = tables.ks_distance_interval(d, 100, 100)
        hits += lo <= truth <= hi
    assert hits / 400 >= 0.95
    assert tables.ks_distance_interval(0.1, 100, 100)[0] == 0.0  # clipped at 0
    half = 2 * math.sqrt(math.log(80) / 200)  # sqrt(ln(4 / 0.05) / (2 n)) for each of the two samples
    assert tables.ks_distance_interval(0.5, 100, 100) == pytest.approx((0.5 - half, 0.5 + half))


def test_rmse_interval_covers_the_noise_scale_in_simulation():
    """RMSE of 200 Gaussian errors of sd 0.3: the chi-square interval covers 0.3 in 95% +- 2.5% of 2,000 draws."""
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(2000):
        e = rng.normal(0, 0.3, 200)
        lo, hi = tables.rmse_interval(float(np.sqrt(np.mean(e**2))), 200)
        hits += lo <= 0.3 <= hi
    assert 0.925 <= hits / 2000 <= 0.975


def test_query_table_has_intervals_where_they_apply():
    attack = other_stage_tables(np.random.default_rng(0))["query_attack"]
    q = tables.query_table(attack)
    assert q["advantage_lo"].notna().all() and (q["advantage_lo"] <= q["advantage"]).all()
    gaussian = q.set_index(["api", "attack"]).index.isin(list(tables.GAUSSIAN_ERRORS))
    assert q.loc[gaussian, "rmse_lo"].notna().all() and q.loc[~gaussian, "rmse_lo"].isna().all()
