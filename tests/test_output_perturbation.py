"""Output perturbation (bolt-on and augmented scales, utility, paired test) and the repeated-query attack."""

import copy
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from gaussian_reference import integrated_delta, monte_carlo_delta
from sgd_privacy.config import ConfigError, load_schema, validate_config
from sgd_privacy.perturbation import bolt_on as bo
from sgd_privacy.perturbation import query_api as qa
from workflow_helpers import planned, tiny_config
from workflow_helpers import run_snakemake as snakemake

ROOT = Path(__file__).resolve().parents[1]


# --- bolt-on scales -------------------------------------------------------------------------


def test_noise_scale_gives_the_target_epsilon_and_no_less_noise_would():
    delta, sens = 1e-5, 0.3
    for eps in (0.5, 1.0, 2.0, 10.0, 50.0):
        s = float(bo.gaussian_scale(sens, eps, delta))  # analytic by default
        assert integrated_delta(sens, s, eps) == pytest.approx(delta, rel=1e-6)
        assert integrated_delta(sens, 0.99 * s, eps) > delta
    # classic: c = sqrt(2 ln(1.25e5)) = 4.844805 at delta = 1e-5 (Dwork and Roth, Theorem A.1), valid below 1
    assert float(bo.gaussian_scale(sens, 0.5, delta, "classic")) == pytest.approx(4.844805 * 0.3 / 0.5, rel=1e-6)
    assert integrated_delta(sens, float(bo.gaussian_scale(sens, 0.5, delta, "classic")), 0.5) < delta
    assert integrated_delta(sens, float(bo.gaussian_scale(sens, 50.0, delta, "classic")), 50.0) > delta
    scales = bo.gaussian_scale(sens, [1.0, 2.0], delta)
    assert scales[0] > scales[1] and scales.shape == (2,)


def test_augmented_scale_is_never_imaginary():
    s = np.array([0.0, 0.5, 1.0, 1.0 + 1e-12, 2.0, 5.0])
    extra = bo.augmented_scale(s, 1.0)
    assert np.all(np.isfinite(extra)) and np.all(extra >= 0)
    assert extra[:3].tolist() == [0.0, 0.0, 0.0]  # s <= sigma_intrinsic: the seed's own spread suffices
    assert extra[4] == pytest.approx(math.sqrt(3.0)) and extra[5] == pytest.approx(math.sqrt(24.0))


def epsilon_row(delta_theory=0.05, delta_empirical=0.01, delta=1e-4, worst_case=None):
    worst = 1.5 * delta_theory if worst_case is None else worst_case  # a partial last pass: more passes begun
    return {
        "delta": delta,
        "delta_theory": delta_theory,
        "delta_theory_worst_case": worst,
        "delta_empirical": delta_empirical,
        "sigma": 0.02,
    }


def test_variant_table_states_when_no_extra_noise_is_added():
    table = bo.variant_scales([0.5, 1.0, 5.0, 50.0], epsilon_row(), {"variable": 0.02, "fixed": 0.001})
    assert len(table) == 2 * 2 * 2 * 4  # sensitivity x mechanism x init x epsilon
    aug = table[table["mechanism"] == "augmented"]
    expected = aug["scale"] <= aug["sigma_intrinsic"]
    assert (aug["no_extra_noise"] == expected).all() and expected.any() and (~expected).any()
    assert (aug.loc[expected, "noise_added"] == 0.0).all()
    plain = table[table["mechanism"] == "bolt_on"]
    assert (plain["noise_added"] == plain["scale"]).all() and not plain["no_extra_noise"].any()
    assert set(table["calibration"]) == {"analytic"}


def test_guarantee_labels_and_the_epsilon_the_added_noise_proves():
    row = epsilon_row()
    worst, delta = row["delta_theory_worst_case"], row["delta"]
    table = bo.variant_scales([0.5, 1.0, 5.0, 50.0], row, {"variable": 0.02, "fixed": 0.001})
    plain = table[(table["mechanism"] == "bolt_on") & (table["sensitivity"] == "theory")]
    # standard bolt-on on the worst-case bound: calibrated on Delta_theory_worst_case, a DP guarantee
    assert (plain["guarantee"] == "dp").all() and (plain["sensitivity_value"] == worst).all()
    np.testing.assert_allclose(plain["provable_epsilon"], plain["epsilon"], rtol=1e-9)
    for r in plain.itertuples():
        assert integrated_delta(worst, r.noise_added, r.epsilon) == pytest.approx(delta, rel=1e-6)
    assert not table.loc[table["guarantee"] == "dp", "heuristic"].any()
    # augmented and Delta_empirical rows: heuristic; the epsilon proved by the added noise at the worst-case bound
    others = table[table["guarantee"] == "heuristic"]
    assert len(others) == len(table) - len(plain) and others["heuristic"].all()
    assert set(zip(others["sensitivity"], others["mechanism"], strict=True)) == {
        ("theory", "augmented"),
        ("empirical", "bolt_on"),
        ("empirical", "augmented"),
    }
    assert others["note"].str.startswith("heuristic").all()
    aug = table[(table["mechanism"] == "augmented") & (table["sensitivity"] == "theory")]
    some = aug[~aug["no_extra_noise"]]
    assert (
        len(some) and (some["provable_epsilon"] > some["epsilon"]).all() and np.isfinite(some["provable_epsilon"]).all()
    )
    for r in some.itertuples():  # the added noise alone does not reach the target, and proves provable_epsilon
        assert integrated_delta(worst, r.noise_added, r.epsilon) > delta * (1 + 1e-6)
        assert integrated_delta(worst, r.noise_added, r.provable_epsilon) == pytest.approx(delta, rel=1e-6)
    none = table[table["no_extra_noise"]]
    assert len(none) and (none["provable_epsilon"] == math.inf).all()
    emp = table[(table["sensitivity"] == "empirical") & ~table["no_extra_noise"]]
    for r in emp.itertuples():  # proved against the worst-case bound, not the empirical distance
        assert integrated_delta(worst, r.noise_added, r.provable_epsilon) == pytest.approx(delta, rel=1e-6)
    # classic calibration: where c Delta / epsilon is too little noise (epsilon = 50), the row is not a guarantee
    classic = bo.variant_scales([0.5, 50.0], row, {"variable": 0.02}, "classic")
    cp = classic[(classic["mechanism"] == "bolt_on") & (classic["sensitivity"] == "theory")].set_index("epsilon")
    assert set(classic["calibration"]) == {"classic"}
    assert cp.loc[0.5, "guarantee"] == "dp" and cp.loc[0.5, "provable_epsilon"] < 0.5
    assert cp.loc[50.0, "guarantee"] == "heuristic" and cp.loc[50.0, "provable_epsilon"] > 50.0
    assert "classic constant" in cp.loc[50.0, "note"]


def test_bolt_on_noise_passes_a_distinguishing_test_at_its_epsilon():
    """Releases w(D) + noise drawn as the stage draws them; the exact likelihood ratio against w(D') at the
    worst-case distance gives a Monte-Carlo delta(epsilon) = E[(1 - e^(epsilon - L))_+], which must not exceed
    delta at the target epsilon (and must for the augmented release, which counts on the seed's spread)."""
    row = epsilon_row(delta=0.01)  # a large delta keeps the Monte-Carlo error small with 200,000 releases
    worst, n, d = row["delta_theory_worst_case"], 200_000, 6
    table = bo.variant_scales([1.0], row, {"variable": 0.1})
    theory = table[table["sensitivity"] == "theory"].set_index("mechanism")
    w_d = np.random.default_rng(0).normal(size=d)
    direction = np.random.default_rng(1).normal(size=d)
    w_d2 = w_d + worst * direction / np.linalg.norm(direction)
    z = bo.weight_noise(1, n, d, seed=3)[0]
    s = theory.loc["bolt_on", "noise_added"]
    est, se = monte_carlo_delta(w_d + s * z, w_d, w_d2, s, 1.0)
    assert abs(est - 0.01) < 4 * se and se < 0.0005  # delta(1) = 0.01: the target holds, tightly
    assert monte_carlo_delta(w_d + s * z, w_d, w_d2, s, 0.8)[0] > 0.01 + 4 * se  # a smaller epsilon does not
    added = theory.loc["augmented", "noise_added"]
    est, se = monte_carlo_delta(w_d + added * z, w_d, w_d2, added, 1.0)
    assert est > 0.01 + 4 * se  # the augmented release alone is not (1, 0.01)-DP
    provable = theory.loc["augmented", "provable_epsilon"]
    assert abs(monte_carlo_delta(w_d + added * z, w_d, w_d2, added, provable)[0] - 0.01) < 4 * se


def test_nan_delta_theory_skips_its_variants_with_a_note():
    table = bo.variant_scales([1.0, 2.0], epsilon_row(delta_theory=float("nan")), {"variable": 0.02})
    theory = table[table["sensitivity"] == "theory"]
    assert len(theory) == 2 and theory["scale"].isna().all()
    assert theory["note"].str.contains("delta_theory_worst_case is NaN").all()
    empirical = table[table["sensitivity"] == "empirical"]
    assert empirical["scale"].notna().sum() == 4
    # no proven bound: the added noise proves nothing
    assert (empirical["provable_epsilon"] == math.inf).all() and (table["guarantee"] == "heuristic").all()


# --- utility and the paired test ---------------------------------------------------------------


def synthetic_runs(n_seeds=6, n_datasets=2, d=5, seed=0):
    """Logistic regressions near one separating direction, both init modes, and a test set it separates."""
    g = np.random.default_rng(seed)
    w_true = np.r_[g.normal(size=d), 0.1]
    rows, weights = [], []
    for init, spread in (("variable", 0.3), ("fixed", 0.1)):
        for s in range(n_seeds):
            for r in range(1, n_datasets + 1):
                rows.append({"experiment": "toy", "seed": s, "replace_index": r, "init": init, "diverged": False})
                weights.append(w_true + spread * g.normal(size=d + 1))
    x = g.normal(size=(300, d))
    y = (x @ w_true[:-1] + w_true[-1] > 0).astype(np.int64)
    return pd.DataFrame(rows), np.array(weights), x, y


def test_perturbed_accuracy_matches_a_plain_loop():
    _, w, x, y = synthetic_runs()
    z = bo.weight_noise(len(w), 3, w.shape[1], seed=5)
    acc = bo.perturbed_accuracy(w, x, y, np.array([0.0, 0.7]), 3, seed=5)
    for r in (0, 7):
        for k in range(3):
            noisy = w[r] + 0.7 * z[r, k]
            expected = np.mean(((x @ noisy[:-1] + noisy[-1]) > 0) == (y == 1))
            assert acc[1, r, k] == pytest.approx(expected)
        clean = np.mean(((x @ w[r, :-1] + w[r, -1]) > 0) == (y == 1))
        assert np.all(acc[0, r] == clean)


def test_weight_noise_is_standard_normal_and_reproducible():
    z = bo.weight_noise(4, 50, 100, seed=1)
    assert np.array_equal(z, bo.weight_noise(4, 50, 100, seed=1))
    assert not np.array_equal(z, bo.weight_noise(4, 50, 100, seed=2))
    assert stats.kstest(z.ravel(), "norm").pvalue > 1e-3


def test_paired_test_known_answer():
    baseline = np.array([0.90, 0.80, 0.85, 0.95])
    treated = baseline - np.array([0.01, 0.02, 0.03, 0.04])
    out = bo.paired_test(baseline, treated)
    d = -np.array([0.01, 0.02, 0.03, 0.04])
    # by hand: mean -0.025, sd sqrt(((0.015)^2 + (0.005)^2) * 2 / 3), t = mean / (sd / 2)
    sd = math.sqrt((0.015**2 + 0.005**2) * 2 / 3)
    assert out["mean_diff"] == pytest.approx(-0.025)
    assert out["t"] == pytest.approx(-0.025 / (sd / 2))
    ref = stats.ttest_rel(treated, baseline)
    assert out["t"] == pytest.approx(ref.statistic) and out["p_value"] == pytest.approx(ref.pvalue)
    half = stats.t.ppf(0.975, 3) * sd / 2
    assert (out["ci_low"], out["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    same = bo.paired_test(baseline, baseline)
    assert same["mean_diff"] == 0.0 and same["p_value"] == 1.0
    with pytest.raises(ValueError, match="at least two pairs"):
        bo.paired_test(baseline[:1], treated[:1])


def test_utility_table_end_to_end_on_synthetic_runs():
    runs, w, x, y = synthetic_runs()
    sigmas, sources = bo.intrinsic_sigmas(epsilon_row(), runs, w)
    groups = runs["replace_index"].to_numpy()[runs["init"] == "fixed"]
    fixed = w[(runs["init"] == "fixed").to_numpy()]
    centred = np.concatenate([fixed[groups == g] - fixed[groups == g].mean(axis=0) for g in (1, 2)])
    assert sigmas["fixed"] == pytest.approx(np.sqrt((centred**2).sum(axis=0) / (len(fixed) - 2)).min())
    assert sigmas["variable"] == 0.02 and "fixed-init" in sources["fixed"]
    table, per_run = bo.utility_table(runs, w, x, y, epsilon_row(), sigmas, sources, [0.1, 1.0, 100.0], 20, 0)
    assert len(table) == 2 * 2 * 2 * 3 and len(per_run) == len(table) * 12
    none = table[table["no_extra_noise"]]
    assert len(none) and (none["accuracy_perturbed"] == none["accuracy_unperturbed"]).all()
    assert (none["p_value"] == 1.0).all()
    loud = table[(table["mechanism"] == "bolt_on") & (table["epsilon"] == 0.1) & (table["sensitivity"] == "theory")]
    assert (loud["accuracy_perturbed"] < loud["accuracy_unperturbed"] - 0.05).all() and (loud["p_value"] < 0.01).all()
    # less privacy (larger epsilon), less noise, higher accuracy
    acc = table[(table["mechanism"] == "bolt_on") & (table["init"] == "variable") & (table["sensitivity"] == "theory")]
    assert acc.sort_values("epsilon")["accuracy_perturbed"].is_monotonic_increasing


# --- the noisy prediction API ------------------------------------------------------------------


def toy_api(n_targets=400, d=8, seed=0):
    g = np.random.default_rng(seed)
    w = g.normal(size=d + 1)
    return qa.logreg_scorer(w), g.normal(size=(n_targets, d)) / 4


KS = [1, 3, 10, 30, 100, 300, 1000]


def loglog_slope(ks, errors):
    return float(np.polyfit(np.log(ks), np.log(errors), 1)[0])


def slope_tolerance(n_targets, ks):
    """Each RMSE over n Gaussian errors has relative SE ~ 1/sqrt(2n), so log RMSE has SD ~ 1/sqrt(2n);
    the least-squares slope's weights sum in absolute value to sum|l - mean| / S, bounding its SD by that
    times 1/sqrt(2n) whatever the correlation across k (cumulative means share draws); 4 SDs."""
    lk = np.log(ks)
    c = lk - lk.mean()
    return 4.0 * np.abs(c).sum() / (c**2).sum() / math.sqrt(2 * n_targets)


def rmse(est, true):
    return np.sqrt(((est - true[None, :]) ** 2).mean(axis=1))


def test_fresh_noise_error_shrinks_like_one_over_sqrt_k():
    scorer, x = toy_api()
    true = scorer(x)
    for attack in ("repeat", "nearby"):
        est = qa.averaged_estimates(scorer, x, KS, "fresh", attack, 2.0, 1e-3, seed=1, attacker_seed=2)
        err = rmse(est, true)
        assert err[0] == pytest.approx(2.0, rel=0.15)
        tol = slope_tolerance(len(x), KS)
        assert tol < 0.1
        assert abs(loglog_slope(KS, err) + 0.5) < tol


def test_fixed_noise_defeats_repetition_but_not_nearby_inputs():
    scorer, x = toy_api()
    true = scorer(x)
    rep = qa.averaged_estimates(scorer, x, KS, "fixed", "repeat", 2.0, 1e-3, seed=1, attacker_seed=2)
    # every repeat returns the same answer (the mean of k equal numbers, up to rounding of the running sum)
    np.testing.assert_allclose(rep, np.broadcast_to(rep[0], rep.shape), rtol=1e-12, atol=1e-12)
    assert rmse(rep, true)[0] == pytest.approx(2.0, rel=0.15)
    near = qa.averaged_estimates(scorer, x, KS, "fixed", "nearby", 2.0, 1e-3, seed=1, attacker_seed=2)
    assert abs(loglog_slope(KS, rmse(near, true)) + 0.5) < slope_tolerance(len(x), KS)


def test_fixed_noise_is_a_function_of_the_input_and_seed():
    _, x = toy_api(50)
    a = qa.fixed_noise(x, seed=3)
    assert np.array_equal(a, qa.fixed_noise(x.copy(), seed=3))
    assert np.array_equal(a[::-1], qa.fixed_noise(x[::-1], seed=3))  # depends on the row, not its position
    assert not np.array_equal(a, qa.fixed_noise(x, seed=4))
    assert not np.any(a == qa.fixed_noise(x + 1e-12, seed=3))


def test_attack_advantage_recovers_the_noiseless_ceiling_for_fresh_noise_only_with_many_queries():
    g = np.random.default_rng(1)
    w = g.normal(size=9) * 3
    scorer = qa.logreg_scorer(w)
    xm, xn = g.normal(size=(200, 8)) / 4, g.normal(size=(200, 8)) / 4
    ym = (scorer(xm) > 0).astype(int)  # members fit perfectly, non-members at random: a real gap
    yn = (g.random(200) < 0.5).astype(int)
    table = qa.attack_table(scorer, (xm, ym), (xn, yn), [1, 1000], 3.0, 1e-3, 0)
    ceiling = table.loc[table["api"] == "exact", "auc"].iloc[0]
    fresh = table[(table["api"] == "fresh") & (table["attack"] == "repeat")].set_index("k")
    fixed = table[(table["api"] == "fixed") & (table["attack"] == "repeat")].set_index("k")
    assert fresh.loc[1000, "auc"] == pytest.approx(ceiling, abs=0.01) and fresh.loc[1, "auc"] < ceiling - 0.03
    assert fixed.loc[1000, "auc"] == fixed.loc[1, "auc"] < ceiling - 0.03
    exact = table[table["api"] == "exact"]
    assert (exact["rmse"] == 0).all() and exact["advantage"].nunique() == 1


def best_advantage_under_dp(epsilon, delta, n=200_001):
    """max TPR - FPR over every test an (epsilon, delta)-DP mechanism allows, from the definition's two
    constraints on a test (TPR <= e^eps FPR + delta, 1 - FPR <= e^eps (1 - TPR) + delta) on a grid of FPR."""
    fpr = np.linspace(0.0, 1.0, n)
    tpr = np.minimum.reduce([np.exp(epsilon) * fpr + delta, 1.0 - (1.0 - fpr - delta) * np.exp(-epsilon), np.ones(n)])
    return float((tpr - fpr).max())


def test_dp_sgd_model_answers_do_not_change_with_k():
    g = np.random.default_rng(2)
    xm, xn = g.normal(size=(60, 4)), g.normal(size=(60, 4))
    ym, yn = (xm[:, 0] > 0).astype(int), (g.random(60) < 0.5).astype(int)
    w = g.normal(size=5)
    table = qa.dp_table(w, 2.0, 1e-5, (xm, ym), (xn, yn), [1, 10, 100])
    assert (table["rmse"] < 1e-12).all() and table["advantage"].nunique() == 1 and table["auc"].nunique() == 1

    # the answers are the model's exact scores: the AUC of the exact losses, by a plain pairwise count
    def loss(x, y):
        z = x @ w[:-1] + w[-1]
        return np.logaddexp(0.0, z) - y * z

    lm, ln = loss(xm, ym), loss(xn, yn)
    assert table["auc"].iloc[0] == pytest.approx(
        ((lm[:, None] < ln[None, :]) + 0.5 * (lm[:, None] == ln[None, :])).mean()
    )
    # the ceiling is the best advantage any test can have against an (epsilon, delta)-DP mechanism
    for eps, delta in ((2.0, 1e-5), (0.5, 0.01), (5.0, 1e-3)):
        bound = qa.dp_table(w, eps, delta, (xm, ym), (xn, yn), [1])["advantage_bound"].iloc[0]
        assert bound == pytest.approx(best_advantage_under_dp(eps, delta), abs=1e-5)
    assert qa.dp_table(w, math.inf, 1e-5, (xm, ym), (xn, yn), [1])["advantage_bound"].iloc[0] == 1.0


def test_dp_logreg_is_reproducible_and_its_epsilon_matches_the_rdp_accountant():
    from opacus.accountants.analysis.rdp import compute_rdp, get_privacy_spent

    g = np.random.default_rng(0)
    x = g.normal(size=(256, 3)) / 2
    y = (x[:, 0] > 0).astype(int)
    w1, eps1 = qa.train_dp_logreg(x, y, 2, 32, 0.5, 1.1, 1.0, 1e-5, seed=3)
    w2, eps2 = qa.train_dp_logreg(x, y, 2, 32, 0.5, 1.1, 1.0, 1e-5, seed=3)
    assert np.array_equal(w1, w2) and eps1 == eps2 and w1.shape == (4,)
    orders = [1 + k / 10.0 for k in range(1, 100)] + list(range(12, 64))
    rdp = compute_rdp(q=32 / 256, noise_multiplier=1.1, steps=2 * (256 // 32), orders=orders)
    assert eps1 == pytest.approx(get_privacy_spent(orders=orders, rdp=rdp, delta=1e-5)[0], rel=1e-6)


def test_query_tables_use_members_of_the_target_runs_dataset():
    runs, w, x, y = synthetic_runs()
    arrays = {"x_train": x[:200], "y_train": y[:200], "x_test": x[200:], "y_test": y[200:]}
    settings = {
        "k_values": [1, 10],
        "query_noise": 1.0,
        "nearby_radius": 0.01,
        "attack_examples": 40,
        "seed": 0,
        "dp_sgd": {"noise_multiplier": 1.0, "max_grad_norm": 1.0, "epochs": 1, "batch_size": 50, "lr": 0.5},
    }
    table = qa.query_tables(runs, w, arrays, 1e-4, settings)
    assert set(table["api"]) == {"exact", "fresh", "fixed", "dp_sgd"}
    assert (table["target_seed"] == 0).all() and (table["target_replace_index"] == 1).all()
    assert (table["n_members"] == 40).all()
    members, _, rows = qa.attack_sets(200, 1, arrays, 40, 0)
    assert 1 not in rows and len(rows) == 199  # D_1: row 1 replaced by row 0, row 0 deleted
    assert all(any(np.array_equal(m, x[r]) for r in rows) for m in members[0])


# --- config and workflow -----------------------------------------------------------------------


def test_config_rejects_non_logreg_perturbation_experiments():
    schema = load_schema(ROOT / "workflow/schemas/config.schema.yaml")
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate_config(copy.deepcopy(config), schema)
    config["perturbation"] = {"experiments": ["mnist5k_mlp"]}
    with pytest.raises(ConfigError, match=r"perturbation.experiments': \['mnist5k_mlp'\] are not logistic"):
        validate_config(config, schema)


TINY = tiny_config(perturbation={"noise_draws": 5, "k_values": [1, 10], "attack_examples": 20, "dp_sgd": {"epochs": 1}})


def test_default_dry_run_perturbs_only_logreg_experiments(workdir):
    result = snakemake(workdir, "-n")
    assert result.returncode == 0, result.stderr
    counts = planned(result)
    assert counts["bolt_on_utility"] == 2 and counts["query_attack"] == 2  # two logreg experiments, not the MLP


@pytest.mark.slow
def test_perturbation_settings_rerun_no_training(pipeline_results, pipeline_clone):
    """The shared run perturbs the tiny grid with the settings of TINY; its tables say what each row
    proves, and perturbation settings then rerun only their own job, never training."""
    assert pipeline_results.config["perturbation"] == {"experiments": ["tiny"], **TINY["perturbation"]}
    table = pipeline_results.table("results/perturbation/tiny/bolt_on.parquet")
    assert set(table["mechanism"]) == {"bolt_on", "augmented"} and set(table["init"]) == {"variable", "fixed"}
    # every row says what its added noise proves; only standard bolt-on rows on the worst-case bound are DP
    done = table[table["scale"].notna()]
    assert set(done["calibration"]) == {"analytic"} and set(done["guarantee"]) <= {"dp", "heuristic"}
    dp = done[done["guarantee"] == "dp"]
    assert len(dp) and (dp["mechanism"] == "bolt_on").all() and (dp["sensitivity"] == "theory").all()
    aug = done[done["mechanism"] == "augmented"]
    assert (aug["guarantee"] == "heuristic").all() and (aug["provable_epsilon"] >= aug["epsilon"] * (1 - 1e-9)).all()
    less = aug[aug["noise_added"] < aug["scale"]]  # the seed's spread stood in for part of the noise
    assert len(less) and (less["provable_epsilon"] > less["epsilon"]).all()
    assert (aug.loc[aug["no_extra_noise"], "provable_epsilon"] == math.inf).all()
    eps = pipeline_results.table("results/analysis/tiny/epsilon.parquet").iloc[0]
    assert eps["delta_theory_worst_case"] >= eps["delta_theory"] and eps["epsilon_theory_analytic"] > 0
    attack = pipeline_results.table("results/perturbation/tiny/query_attack.parquet")
    assert set(attack["api"]) == {"exact", "fresh", "fixed", "dp_sgd"}
    # no training; the query experiment's DP-SGD model is booked in the privacy ledger
    ledger = {"privacy_ledger": 1}
    for key, value, jobs in (
        ("epsilons", [1, 3], {"bolt_on_utility": 1}),
        ("query_noise", 0.5, {"query_attack": 1, **ledger}),
    ):
        changed = copy.deepcopy(pipeline_results.config)
        changed["perturbation"][key] = value
        (pipeline_clone / "config/config.yaml").write_text(yaml.safe_dump(changed))
        assert planned(snakemake(pipeline_clone, "-n")) == {**jobs, "report": 1, "all": 1}


def test_membership_advantage_is_the_ks_statistic_with_its_p_value():
    g = np.random.default_rng(4)
    a, b = g.normal(0.3, 1, 80), g.normal(0, 1, 120)
    out = qa.membership(a, b)
    ks = stats.ks_2samp(a, b)
    # by hand: largest gap between the two empirical CDFs
    grid = np.sort(np.r_[a, b])
    gap = np.abs((a[:, None] <= grid).mean(axis=0) - (b[:, None] <= grid).mean(axis=0)).max()
    assert out["advantage"] == pytest.approx(gap)
    assert out["advantage"] == pytest.approx(ks.statistic)
    assert out["advantage_p_value"] == pytest.approx(ks.pvalue)
    assert out["auc"] == pytest.approx((a[:, None] > b[None, :]).mean())
