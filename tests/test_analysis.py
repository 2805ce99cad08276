"""Intrinsic-privacy analyses against answers computed independently of the code under test."""

import math

import numpy as np
import pandas as pd
import pingouin
import pytest
import torch
from scipy import stats

from gaussian_reference import integrated_delta
from sgd_privacy.analysis import distribution as dist
from sgd_privacy.analysis.intrinsic import distance_tables, distribution_tables, empirical_sensitivity, epsilon_tables
from sgd_privacy.analysis.pairs import candidate_pairs, pair_distances, sample_pairs
from sgd_privacy.analysis.privacy import bolt_on_sensitivity, gaussian_epsilon, pooled_sigma, sigma_per_group
from sgd_privacy.data import SourceContext, prepare_dataset
from sgd_privacy.train.batched import DeviceData, Runs, Schedule, train_many
from sgd_privacy.train.models import build_model


def runs_frame(seeds, replaces, inits=("variable",)):
    rows = [
        {"experiment": "e", "seed": s, "replace_index": r, "init": i, "diverged": False}
        for i in inits
        for s in seeds
        for r in replaces
    ]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ pairs and distances
def test_pair_kinds_on_a_hand_built_grid():
    runs = runs_frame([0, 1, 2], [5, 6], inits=("variable", "fixed"))
    sens = candidate_pairs(runs, "sensitivity")
    assert len(sens) == 3 * 2  # per (seed, init): one pair of replace indices
    for a, b in sens:
        ra, rb = runs.iloc[a], runs.iloc[b]
        assert ra.seed == rb.seed and ra.init == rb.init and ra.replace_index != rb.replace_index
    var = candidate_pairs(runs, "variability_variable_init")
    assert len(var) == 2 * 3  # per replace index: C(3, 2) seed pairs, variable init only
    assert all(
        runs.iloc[a].init == "variable" and runs.iloc[a].replace_index == runs.iloc[b].replace_index for a, b in var
    )
    assert len(candidate_pairs(runs, "variability_fixed_init")) == 6
    sample = sample_pairs(runs, "sensitivity", 4, seed=1)
    assert len(sample) == 4 and np.array_equal(sample, sample_pairs(runs, "sensitivity", 4, seed=1))


def test_pair_distances_known_answers():
    w = np.array([[[0.0, 0.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [6.0, 8.0]]])  # (runs, t, params)
    d = pair_distances(w, np.array([[0, 1], [0, 2], [1, 2]]))
    np.testing.assert_allclose(d, [[0.0, 5.0], [math.sqrt(2), 5.0], [math.sqrt(2), 10.0]])


def test_pooled_and_per_dataset_sigma_known_answers():
    weights = np.array([[1.0, 0.0], [3.0, 0.0], [10.0, 5.0], [14.0, 7.0]])
    groups = np.array([7, 7, 9, 9])
    # deviations from group means: col0 -1, 1, -2, 2 -> SS 10 over 4 - 2 dof; col1 0, 0, -1, 1 -> SS 2
    np.testing.assert_allclose(pooled_sigma(weights, groups), [math.sqrt(5.0), 1.0])
    labels, sig = sigma_per_group(weights, groups)
    assert labels.tolist() == [7, 9]
    np.testing.assert_allclose(sig, [0.0, math.sqrt(2.0)])  # group 7: std(0, 0) = 0 is its minimum
    np.testing.assert_allclose(pooled_sigma(weights[:2], groups[:2]), np.std(weights[:2], axis=0, ddof=1))


# ------------------------------------------------------------------ bound and epsilon
def test_bolt_on_bound_direct_formula_and_the_study_values():
    assert bolt_on_sensitivity(3240, 10396, 32, 0.5) == pytest.approx(2 * 10 * math.sqrt(2) * 0.5 / 32)
    # Table 4 of the study (theoretical sensitivity at T): CIFAR2 0.157, Adult 0.164, Forest 0.063
    assert bolt_on_sensitivity(1000, 9000 - 1, 32, 0.5) == pytest.approx(0.157, abs=5e-4)
    assert bolt_on_sensitivity(3400, 29305 - 1, 32, 0.5) == pytest.approx(0.164, abs=5e-4)
    assert bolt_on_sensitivity(8400, 378783 - 1, 50, 1.0) == pytest.approx(0.063, abs=5e-4)


def test_gaussian_mechanism_epsilon():
    # the study's Table 4 (its formula c Delta / sigma, delta = 1 / N^2): Adult (N = 29,305) Delta 0.164,
    # sigma 0.053 -> 19.978; Forest (N = 378,783) Delta 0.063, sigma 0.072 -> 6.313 (inputs rounded to 3 digits)
    assert gaussian_epsilon(0.164, 0.053, 1 / 29305**2) == pytest.approx(19.978, rel=0.01)
    assert gaussian_epsilon(0.063, 0.072, 1 / 378783**2) == pytest.approx(6.313, rel=0.01)
    # the study's CIFAR2 per-weight epsilon range: sigma 0.0967..0.140, Delta 0.157, N = 9000 -> 6.824..9.933
    c_delta = 1 / 9000**2
    assert gaussian_epsilon(0.157, 0.140, c_delta) == pytest.approx(6.824, rel=0.01)
    assert gaussian_epsilon(0.157, 0.0967, c_delta) == pytest.approx(9.933, rel=0.01)


# ------------------------------------------------------------------ Henze-Zirkler
def rejection_rate(sampler, reps=60, n=80, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return np.mean([dist.henze_zirkler(sampler(rng, n, d)).p_value < 0.05 for _ in range(reps)])


def test_hz_level_on_gaussians_and_power_on_a_mixture():
    gauss = rejection_rate(lambda rng, n, d: rng.multivariate_normal(np.zeros(d), np.eye(d) + 0.5, size=n))
    # 60 draws at level 0.05: the count of rejections is Binomial(60, 0.05); 0.15 is beyond its 99.9% quantile
    assert gauss <= 0.15

    def mixture(rng, n, d):
        x = rng.normal(size=(n, d))
        x[:, 0] += np.where(rng.random(n) < 0.5, -3.0, 3.0)
        return x

    assert rejection_rate(mixture) >= 0.9


def test_hz_subset_rule_reports_the_minimum_over_subsets():
    # HZ has almost no power in 55 dimensions with a few hundred seeds, so the rule is exercised with
    # max_dim = 4: 12 columns -> 2 * (12 // 4 + 1) = 8 subsets of 4 columns
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 12))
    draw = np.random.default_rng(0)  # the rule's draws: sorted 4-column choices from default_rng(seed)
    subsets = [np.sort(draw.choice(12, 4, replace=False)) for _ in range(8)]
    bad = next(j for j in range(12) if sum(j in s for s in subsets) == 1)  # a column in exactly one subset
    x[:, bad] = np.where(rng.random(300) < 0.5, -3.0, 3.0) + 0.3 * rng.normal(size=300)  # bimodal
    holder = next(k for k, s in enumerate(subsets) if bad in s)
    p_direct = []  # each subset's p-value straight from pingouin on standardised columns
    for s in subsets:
        z = (x[:, s] - x[:, s].mean(axis=0)) / x[:, s].std(axis=0)
        p_direct.append(pingouin.multivariate_normality(z).pval)
    assert p_direct[holder] < 1e-6 and min(p for k, p in enumerate(p_direct) if k != holder) > 1e-3
    res = dist.henze_zirkler(x, seed=0, max_dim=4)
    assert res.n_subsets == 8 and res.dim == 4
    assert res.p_value == pytest.approx(p_direct[holder], rel=1e-6, abs=1e-300)  # the minimum, not a mean or the first
    assert dist.henze_zirkler(np.delete(x, bad, axis=1), seed=0, max_dim=4).p_value > 1e-3


@pytest.mark.filterwarnings("ignore:overflow encountered in exp:RuntimeWarning")  # pingouin on raw float32 data
def test_hz_pitfalls_are_handled():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 5)) * np.array([1e-3, 1e-3, 2e-3, 1e-3, 5e-4])
    clean = dist.henze_zirkler(x).p_value
    far = (x + 1e3).astype(np.float32)  # uncentred, single precision: pingouin alone loses the signal
    assert dist.henze_zirkler(far).p_value == pytest.approx(clean, abs=0.05)
    assert (
        abs(pingouin.multivariate_normality(far).pval - clean) > 0.05
        or pingouin.multivariate_normality(far).pval < 1e-3
    )
    wide = rng.normal(size=(20, 30))  # more parameters than seeds: pingouin would say p ~ 0
    res = dist.henze_zirkler(wide)
    assert math.isnan(res.p_value) and "30 parameters >= 20 seeds" in res.note
    assert pingouin.multivariate_normality(wide).pval < 1e-6
    assert "low power" in dist.henze_zirkler(rng.normal(size=(40, 30))).note  # d close to n
    dup = rng.normal(size=(40, 3))
    res = dist.henze_zirkler(np.column_stack([dup, dup[:, 0]]))
    assert math.isnan(res.p_value) and "rank 3 < 4" in res.note


# ------------------------------------------------------------------ tail index and Laplace
def test_tail_index_gaussian_about_2_cauchy_about_1():
    rng = np.random.default_rng(3)
    # n = 10,000, d = 5: the estimator's standard deviation is ~0.023 for both laws (simulated), so +-0.12 is > 5 sd
    assert dist.tail_index(rng.normal(size=(10_000, 5))) == pytest.approx(2.0, abs=0.12)
    assert dist.tail_index(rng.standard_cauchy(size=(10_000, 5))) == pytest.approx(1.0, abs=0.12)
    with pytest.raises(ValueError, match="divisor"):
        dist.tail_index(rng.normal(size=(13, 2)))  # a prime sample size has no block size


def test_ad_laplace_statistic_matches_direct_formula():
    x = np.random.default_rng(4).normal(size=(50, 3))
    a2 = dist.anderson_darling_laplace_statistic(x)
    for j in range(3):
        col = np.sort(x[:, j])
        loc, scale = np.median(col), np.mean(np.abs(col - np.median(col)))
        f = stats.laplace.cdf(col, loc, scale)
        i = np.arange(1, 51)
        expected = -50 - np.sum((2 * i - 1) * (np.log(f) + np.log(1 - f[::-1]))) / 50
        assert a2[j] == pytest.approx(expected, rel=1e-10)


def test_ad_laplace_rejects_gaussians_far_more_than_laplace():
    rng = np.random.default_rng(5)
    null = dist.laplace_ad_null(2000, n_sim=1000, seed=0)
    _, p_gauss = dist.anderson_darling_laplace(rng.normal(size=(2000, 40)), null)
    _, p_lap = dist.anderson_darling_laplace(rng.laplace(2.0, 3.0, size=(2000, 40)), null)
    assert (p_gauss < 0.05).mean() >= 0.9
    assert (p_lap < 0.05).mean() <= 0.2  # Binomial(40, 0.05): 8 rejections is beyond its 99.9% quantile
    frac = dist.rejected_fractions(np.array([0.001, 0.01, 0.2, np.nan]))
    assert frac == {
        "n_tests": 3,
        "rejected": pytest.approx(2 / 3),
        "rejected_bonferroni": pytest.approx(2 / 3),
    }  # 0.05/3


def test_shapiro_per_weight_flags_the_non_normal_column():
    rng = np.random.default_rng(6)
    x = np.column_stack([rng.normal(size=300), rng.exponential(size=300), np.ones(300)])
    p = dist.shapiro_per_weight(x)
    assert p[0] > 0.01 and p[1] < 1e-6 and math.isnan(p[2])


# ------------------------------------------------------------------ end to end on a small grid
@pytest.fixture(scope="module")
def small_grid():
    arrays = prepare_dataset("breast_cancer", None, SourceContext()).arrays
    model = build_model("logreg", arrays["x_train"].shape[1:], 2)
    seeds, replaces = np.arange(12), np.array([3, 50, 200])
    s, r = np.meshgrid(seeds, replaces, indexing="ij")
    n = s.size
    runs = Runs(np.tile(s.ravel(), 2), np.tile(r.ravel(), 2), np.repeat([False, True], n))
    fixed = model.init(torch.tensor([0]), 2, torch.float32)
    schedule = Schedule(lr=0.5, batch_size=32, epochs=8, cadence=12)
    data = DeviceData.from_arrays(arrays, torch.device("cpu"), torch.float32)
    result = train_many(model, data, runs, schedule, fixed, progress=None)
    frame = pd.DataFrame(
        {
            "experiment": "bc",
            "seed": runs.seeds,
            "replace_index": runs.replace,
            "init": np.where(runs.fixed, "fixed", "variable"),
            "diverged": result.diverged,
        }
    )
    return frame, result.steps, result.weights.astype(np.float64), len(arrays["x_train"])


def test_seed_variability_exceeds_data_sensitivity(small_grid):
    runs, steps, weights, n_train = small_grid
    T = int(steps[-1])
    bound = {"n_rows": n_train - 1, "batch_size": 32, "lr": 0.5}
    over_t, at_T = distance_tables(runs, steps, weights, T, n_pairs=500, seed=0, bound=bound)
    by_kind = at_T.groupby("kind")["distance"]
    assert by_kind.median()["variability_variable_init"] > by_kind.max()["sensitivity"]  # the study's first finding
    assert by_kind.median()["variability_fixed_init"] > by_kind.median()["sensitivity"]
    theory = over_t[over_t["kind"] == "sensitivity_theory"].set_index("t")["max"]
    assert theory.loc[T] > by_kind.max()["sensitivity"]  # the bound holds (and is loose)
    empirical = over_t[over_t["kind"] == "sensitivity"].set_index("t")["max"]
    assert empirical.loc[0] == 0.0  # same seed and init: identical until a differing row is drawn
    epsilon, per_weight, per_dataset = epsilon_tables(runs, weights[:, -1], T, n_train, bound, n_boot=50, seed=0)
    row = epsilon.iloc[0]
    w_T = weights[:, -1]
    # Delta_empirical by a plain loop over every same-seed, variable-init pair of datasets
    var = runs["init"].to_numpy() == "variable"
    loop_max = max(
        np.linalg.norm(w_T[a] - w_T[b])
        for a in np.flatnonzero(var)
        for b in np.flatnonzero(var)
        if a < b and runs["seed"].iloc[a] == runs["seed"].iloc[b]
    )
    assert row["delta_empirical"] == pytest.approx(loop_max, rel=1e-9)
    assert row["n_pairs_empirical"] == 12 * 3 and row["init_empirical"] == "variable"  # 12 seeds x C(3, 2)
    sampled = at_T[(at_T["kind"] == "sensitivity") & (at_T["init"] == "variable")]["distance"]
    assert loop_max >= sampled.max() - 1e-12  # at least the sampled variable-init pairs' maximum
    # sigma by hand: per weight, deviations from each dataset's mean over its seeds, 36 - 3 dof
    x = w_T[var]
    groups = runs["replace_index"].to_numpy()[var]
    dev = np.concatenate([x[groups == g] - x[groups == g].mean(axis=0) for g in (3, 50, 200)])
    sigma = np.sqrt((dev**2).sum(axis=0) / 33).min()
    assert row["sigma"] == pytest.approx(sigma, rel=1e-9)
    assert row["sigma_ci_low"] < row["sigma"] < row["sigma_ci_high"]
    assert row["sigma_boot_ci_low"] < row["sigma"] < row["sigma_boot_ci_high"]
    d_theory = 2 * (T / ((n_train - 1) // 32)) * math.sqrt(2) * 0.5 / 32
    c = math.sqrt(2 * math.log(1.25 * n_train**2))
    assert row["delta_theory"] == pytest.approx(d_theory, rel=1e-12)
    assert row["epsilon_theory"] == pytest.approx(c * d_theory / sigma, rel=1e-9)
    assert row["epsilon_empirical"] == pytest.approx(c * loop_max / sigma, rel=1e-9)
    assert row["epsilon_empirical"] < row["epsilon_theory"]
    assert row["epsilon_theory_ci_low"] == pytest.approx(c * d_theory / row["sigma_ci_high"], rel=1e-12)
    assert row["epsilon_theory_weight_max"] == pytest.approx(row["epsilon_theory"], rel=1e-12)  # at the min sigma
    # 8 whole passes: the worst-case bound (passes begun) equals the fractional one; the analytic epsilons are
    # where the integrated privacy loss of N(0, sigma^2) at that sensitivity reaches delta = 1 / N^2
    assert row["delta_theory_worst_case"] == pytest.approx(d_theory, rel=1e-12)
    for name, sens in (("epsilon_theory_analytic", d_theory), ("epsilon_empirical_analytic", loop_max)):
        assert integrated_delta(sens, sigma, row[name]) == pytest.approx(1 / n_train**2, rel=1e-5)
        assert integrated_delta(sens, sigma, 0.999 * row[name]) > 1 / n_train**2
    assert len(per_weight) == weights.shape[2] and set(per_dataset["replace_index"]) == {3, 50, 200}
    per_ds = [x[groups == g].std(axis=0, ddof=1).min() for g in (3, 50, 200)]
    np.testing.assert_allclose(per_dataset.sort_values("replace_index")["sigma"], per_ds, rtol=1e-9)
    assert row["sigma_dataset_min"] == pytest.approx(min(per_ds)) and row["notes"] == ""


def test_distribution_tables_on_the_small_grid(small_grid):
    runs, steps, weights, _ = small_grid
    summary, per_weight, examples = distribution_tables(
        runs, weights[:, -1], int(steps[-1]), max_datasets=2, seed=0, n_sim=200, n_examples=3
    )
    assert summary["replace_index"].tolist() == [3, 50] and (summary["n_seeds"] == 12).all()
    assert summary["hz_note"].iloc[0].startswith("not applicable")  # 31 parameters, 12 seeds
    assert summary["tail_index"].notna().all()
    assert len(per_weight) == 2 * weights.shape[2]
    first = per_weight[per_weight["replace_index"] == 3].nsmallest(3, "shapiro_p")["weight"].tolist()
    assert sorted(examples[examples["replace_index"] == 3]["weight"].unique().tolist()) == sorted(first)
    assert len(examples) == 2 * 3 * 12
    # test values against scipy on the dataset's variable-init weights at T
    sel = (runs["init"] == "variable").to_numpy() & (runs["replace_index"] == 50).to_numpy()
    x = weights[sel, -1]
    x = x - x.mean(axis=0)
    ours = per_weight[per_weight["replace_index"] == 50].sort_values("weight")
    scipy_p = np.array([stats.shapiro(x[:, j]).pvalue if np.ptp(x[:, j]) > 0 else np.nan for j in range(x.shape[1])])
    np.testing.assert_allclose(ours["shapiro_p"], scipy_p, rtol=1e-6)
    np.testing.assert_allclose(ours["std"], x.std(axis=0, ddof=1), rtol=1e-12)
    valid = scipy_p[~np.isnan(scipy_p)]
    row = summary.set_index("replace_index").loc[50]
    assert row["shapiro_rejected"] == pytest.approx((valid < 0.05).mean())
    assert row["shapiro_rejected_bonferroni"] == pytest.approx((valid < 0.05 / len(valid)).mean())
    # n = 12 seeds: blocks of m = 3 consecutive rows (largest divisor of 12 not above sqrt(12))
    blocks = [x[k : k + 3].sum(axis=0) for k in range(0, 12, 3)]
    log_y = np.mean([math.log(np.linalg.norm(b)) for b in blocks])
    log_x = np.mean([math.log(np.linalg.norm(r)) for r in x])
    assert row["tail_index"] == pytest.approx(math.log(3) / (log_y - log_x), rel=1e-9)


def test_single_dataset_grids_degrade_gracefully():
    from sgd_privacy.analysis.clusters import kmeans_spans

    runs = runs_frame(range(6), [4])
    labels, spans = kmeans_spans(np.random.default_rng(0).normal(size=(6, 3)), runs)
    assert (labels == -1).all() and spans.empty
    d, _, n_pairs = empirical_sensitivity(runs, np.ones((6, 3)))
    assert math.isnan(d) and n_pairs == 0
