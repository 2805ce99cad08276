"""The per-run subset hook of the trainer and the calibrated (LiRA) attack."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from sgd_privacy.attacks.lira import (
    attack_scores,
    gaussian_fits,
    hidden_seed_slot,
    membership,
    offline_scores,
    online_scores,
    roc_table,
    subset_rows,
    summary_table,
)
from sgd_privacy.attacks.mia import lira_bounds
from sgd_privacy.data import SourceContext, neighbour_index, prepare_dataset
from sgd_privacy.train.batched import DeviceData, Runs, Schedule, train_batch
from sgd_privacy.train.models import build_model
from sgd_privacy.train.reference import train_reference

F64 = torch.float64
BOUNDS = {"delta": 1e-5, "confidence": 0.95, "bound_candidates": 50}


@pytest.fixture(scope="module")
def digits():
    return prepare_dataset("digits_binary", None, SourceContext()).arrays


def test_row_map_of_each_d_i_equals_the_neighbour_path(digits):
    """A row map holding D_i trains the run of D_i: equal to float32 rounding, not bit for bit, since
    the neighbour path computes a seed's runs over its shared rows (`sgd_privacy.train.shared`) and
    a row map, whose rows may differ anywhere, runs each model's own rows through autograd."""
    model = build_model("mlp", digits["x_train"].shape[1:], 2, hidden=6, dropout=0.2)
    schedule = Schedule(lr=0.5, batch_size=8, epochs=2, cadence=16)
    data = DeviceData.from_arrays(digits, torch.device("cpu"), torch.float32)
    n = len(digits["x_train"])
    seeds, replace = np.array([0, 3, 3]), np.array([1, 5, 200])
    plain = train_batch(model, data, Runs(seeds, replace, np.zeros(3, bool)), schedule)
    rows = np.stack([neighbour_index(n, int(i)) for i in replace])
    mapped = train_batch(model, data, Runs(seeds, replace, np.zeros(3, bool), rows=rows), schedule)
    assert not np.array_equal(plain.weights[:, -1], plain.weights[:, 0])  # it trained
    np.testing.assert_allclose(mapped.weights, plain.weights, rtol=1e-5, atol=1e-6)  # measured: 2.4e-7 at most


def test_subset_run_equals_a_plain_reference_loop_on_its_subset(digits):
    model = build_model("mlp", digits["x_train"].shape[1:], 2, hidden=6, dropout=0.2)
    schedule = Schedule(lr=0.5, batch_size=8, epochs=4, cadence=7)  # 60 rows: 7 steps per epoch
    rows = subset_rows(7, [0, 1, 2], 120)  # three different halves of the first 120 rows
    runs = Runs(np.array([4, 4, 9]), np.ones(3, np.int64), np.zeros(3, bool), rows=rows)
    result = train_batch(model, DeviceData.from_arrays(digits, torch.device("cpu"), F64), runs, schedule)
    assert result.steps[-1] == 28
    for k in range(3):
        sub = rows[k]
        # A base set [x_sub0, x_sub0, x_sub1, ...] has D_1 = the subset in order (row 1 <- row 0, row 0 dropped).
        arrays = {
            **digits,
            "x_train": digits["x_train"][np.r_[sub[0], sub]],
            "y_train": digits["y_train"][np.r_[sub[0], sub]],
        }
        ref = train_reference(model, arrays, int(runs.seeds[k]), 1, schedule)
        error = np.linalg.norm(result.weights[k, -1] - ref.weights[0, -1]) / np.linalg.norm(ref.weights[0, -1])
        assert error < 1e-9
    assert not np.allclose(result.weights[0, -1], result.weights[1, -1])  # same seed, different subsets


def test_subset_run_is_the_same_alone_or_in_a_group(digits):
    model = build_model("mlp", digits["x_train"].shape[1:], 2, hidden=6, dropout=0.2)
    schedule = Schedule(lr=0.5, batch_size=8, epochs=3, cadence=6)  # 50 rows: 6 steps per epoch
    data = DeviceData.from_arrays(digits, torch.device("cpu"), torch.float32)
    rows = subset_rows(1, range(5), 100)
    group = Runs(np.array([0, 0, 1, 2, 0]), np.ones(5, np.int64), np.zeros(5, bool), rows=rows)
    together = train_batch(model, data, group, schedule)
    alone = train_batch(model, data, group.take(slice(3, 4)), schedule)
    assert np.array_equal(together.weights[3], alone.weights[0])


def test_subsets_are_exact_halves_independent_of_their_number():
    rows = subset_rows(3, range(40), 101)
    assert rows.shape == (40, 50)
    assert all(len(np.unique(r)) == 50 and r.min() >= 0 and r.max() < 101 for r in rows)
    assert np.array_equal(subset_rows(3, [5, 6], 101), rows[5:7])
    member = membership(rows, 101)
    assert member.sum(axis=1).tolist() == [50] * 40
    share = member.mean(axis=0)  # each example is IN for about half of the subsets
    assert abs(share.mean() - 50 / 101) < 1e-12 and (np.abs(share - 0.5) < 0.35).all()


def test_gaussian_fits_recover_known_means_and_variances():
    rng = np.random.default_rng(0)
    n_runs, n = 4000, 5
    mu, sd = np.array([-2.0, 0.0, 1.0, 3.0, 5.0]), np.array([0.5, 1.0, 2.0, 0.1, 1.5])
    scores = mu + sd * rng.standard_normal((n_runs, n))
    mask = rng.random((n_runs, n)) < 0.5
    mean, var = gaussian_fits(scores, mask, fixed_variance=False)
    k = mask.sum(axis=0)
    np.testing.assert_array_less(np.abs(mean - mu), 5 * sd / np.sqrt(k))
    np.testing.assert_allclose(var, sd**2, rtol=5 * np.sqrt(2 / k.min()))
    # by hand for one column
    col = scores[mask[:, 2], 2]
    assert mean[2] == pytest.approx(col.mean()) and var[2] == pytest.approx(col.var(ddof=1))
    _, pooled = gaussian_fits(scores, mask, fixed_variance=True)
    expected = sum(((scores[mask[:, j], j] - mean[j]) ** 2).sum() for j in range(n)) / (k - 1).sum()
    np.testing.assert_allclose(pooled, expected)
    empty_mean, _ = gaussian_fits(scores[:, :1], np.zeros((n_runs, 1), bool), fixed_variance=False)
    assert np.isnan(empty_mean).all()


def test_scores_match_scipy():
    x, mi, vi, mo, vo = (
        np.array([0.3, 2.0]),
        np.array([1.0, 1.5]),
        np.array([0.25, 4.0]),
        np.array([0.0, 0.0]),
        np.array([1.0, 1.0]),
    )
    expected = stats.norm.pdf(x, mi, np.sqrt(vi)) / stats.norm.pdf(x, mo, np.sqrt(vo))
    np.testing.assert_allclose(np.exp(online_scores(x, mi, vi, mo, vo)), expected)
    np.testing.assert_allclose(np.exp(offline_scores(x, mo, vo)), stats.norm.cdf(x, mo, 1.0))


def test_hidden_shadows_never_share_the_target_seed():
    for n_seeds in (2, 3, 5):
        for slot in range(n_seeds):
            used = {hidden_seed_slot(slot, k, n_seeds) for k in range(12)}
            assert slot not in used and len(used) == n_seeds - 1


def synthetic_confidences(n_seeds=4, n_subsets=16, n=300, seed_effect=3.0, signal=1.0, noise=0.3, rng_seed=0):
    """Confidence = a per-(seed, example) offset + signal if trained on + noise: knowing the seed removes the offset."""
    rng = np.random.default_rng(rng_seed)
    member = membership(subset_rows(0, range(n_subsets), n), n)
    offset = seed_effect * rng.standard_normal((n_seeds, 1, n))
    conf = offset + signal * member[None] + noise * rng.standard_normal((n_seeds, n_subsets, n))
    return conf, member


def test_known_seed_shadows_beat_hidden_ones_when_the_seed_moves_the_scores():
    conf, member = synthetic_confidences()
    scores = attack_scores(conf, member, [10, 11, 12, 13], fixed_variance=True)
    assert len(scores) == 4 * 16 * 2 * 300
    summary = summary_table(scores, [0.01, 0.001], 0.95).set_index(["variant", "setting"])
    for variant in ("online", "offline"):
        known, hidden = summary.loc[(variant, "known")], summary.loc[(variant, "hidden")]
        assert known["auc"] > 0.9 and known["auc"] > hidden["auc"] + 0.1
        assert known["p_value_known_gt_hidden"] < 1e-6
        assert known["tpr_at_1pct_lo"] <= known["tpr_at_1pct"] <= known["tpr_at_1pct_hi"]
        assert known["auc_target_lo"] < known["auc_target_mean"] < known["auc_target_hi"]
    roc = roc_table(scores)
    assert (
        set(roc["setting"]) == {"known", "hidden"}
        and roc.groupby(["variant", "setting"])["tpr"].is_monotonic_increasing.all()
    )
    bounds = lira_bounds(scores, BOUNDS, (np.arange(4), conf, member), True).set_index(["attack", "setting"])
    assert (
        bounds.loc[("lira_online", "known"), "epsilon_score_pooled"]
        > bounds.loc[("lira_online", "hidden"), "epsilon_score_pooled"]
    )
    pooled = bounds["n_members_pooled"] + bounds["n_nonmembers_pooled"]
    assert (pooled == 2 * 16 * 300).all()  # every (target, example) pair of the 2 held-out seeds
    # the bound: one member and one non-member trial per evaluated seed; 2 seeds prove nothing
    assert (bounds["n_units"] == 2).all() and bounds["low_n"].all() and (bounds["epsilon_lower_bound"] == 0).all()


def test_without_signal_the_attack_is_at_chance():
    conf, member = synthetic_confidences(signal=0.0, seed_effect=0.0, n=400)
    scores = attack_scores(conf, member, [0, 1, 2, 3], fixed_variance=True)
    summary = summary_table(scores, [0.01], 0.95)
    n = summary["n_members"].iloc[0]
    assert (
        np.abs(summary["auc"] - 0.5) < 4 * np.sqrt(1 / (6 * n))
    ).all()  # AUC null sd ~ sqrt((n_m+n_n+1)/(12 n_m n_n))
    bounds = lira_bounds(scores, BOUNDS, (np.arange(4), conf, member), True)
    assert (bounds["epsilon_lower_bound"] == 0).all()


def test_too_few_seeds_or_subsets_is_an_error():
    conf, member = synthetic_confidences(n_seeds=1, n_subsets=4, n=20)
    with pytest.raises(ValueError, match="at least 2 seeds and 2 subsets"):
        attack_scores(conf, member, [0], fixed_variance=True)


def gaussian_score_frame(mu, sigma, n, rng):
    """A scores table (both settings, both variants) whose member scores are N(mu, sigma^2) and non-member
    scores N(0, sigma^2)."""
    member = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    frames = []
    for setting in ("known", "hidden"):
        s = np.where(member, mu, 0.0) + sigma * rng.standard_normal(2 * n)
        frames.append(
            pd.DataFrame(
                {
                    "target_seed": np.arange(2 * n) % 40,
                    "target_subset": 0,
                    "setting": setting,
                    "example": np.arange(2 * n),
                    "member": member,
                    "online": s,
                    "offline": s,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_tpr_at_fixed_fpr_on_gaussian_scores_is_the_known_curve():
    """For member scores N(mu, sigma^2) against N(0, sigma^2), TPR at FPR f is Phi(Phi^-1(f) + mu / sigma)."""
    rng = np.random.default_rng(8)
    mu, sigma, n = 1.5, 2.0, 200_000
    summary = summary_table(gaussian_score_frame(mu, sigma, n, rng), [0.01, 0.001], 0.95)
    for f, col in ((0.01, "tpr_at_1pct"), (0.001, "tpr_at_0.1pct")):
        expected = stats.norm.cdf(stats.norm.ppf(f) + mu / sigma)
        # sampling error of an empirical ROC at n = 200,000: well under 0.01 at these FPRs
        np.testing.assert_allclose(summary[col], expected, atol=0.01)
        assert ((summary[f"{col}_lo"] <= summary[col]) & (summary[col] <= summary[f"{col}_hi"])).all()
    assert (summary["low_n"] == (summary["n_targets"] < 30)).all() and (summary["n_units"] == 40).all()


def test_lira_bound_with_many_seeds_is_positive_with_signal_and_zero_without():
    """64 seeds: 32 evaluated seeds, each one target run on its own subset, one member and one non-member."""
    for signal, positive in ((4.0, True), (0.0, False)):
        conf, member = synthetic_confidences(n_seeds=64, n_subsets=36, n=60, seed_effect=0.0, signal=signal)
        scores = attack_scores(conf[:4], member, [0, 1, 2, 3], fixed_variance=True)
        bounds = lira_bounds(scores, BOUNDS, (np.arange(64), conf, member), True)
        assert (bounds["n_units"] == 32).all() and not bounds["low_n"].any()
        assert ((bounds["epsilon_lower_bound"] > 0.8) if positive else (bounds["epsilon_lower_bound"] == 0)).all()
