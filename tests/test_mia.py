"""Yeom's loss-threshold attack with the seed known or hidden, held-out epsilon bounds, and rerun scoping."""

import copy
import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import optimize, stats

from sgd_privacy.attacks.bounds import choose_threshold, error_counts, heldout_bound
from sgd_privacy.attacks.metrics import epsilon_lower_bound
from sgd_privacy.attacks.mia import shard_losses, split_sizes, yeom_bounds, yeom_tables
from sgd_privacy.attacks.mia_config import check_mia_config
from sgd_privacy.attacks.outputs import example_outputs, logit_confidence
from sgd_privacy.attacks.yeom import attack_table, paired_one_sided_p, partner_rows, table6
from sgd_privacy.io import write_table
from sgd_privacy.train.models import build_model
from sgd_privacy.train.shard import run_shard

SETTINGS = {"n_members": 20, "n_nonmembers": 20, "n_threshold": None}
BOUNDS = {"delta": 1e-5, "confidence": 0.95, "bound_candidates": 100}


def random_task(n_train, n_test, d=20, seed=0):
    """Random unit-norm features with random labels: a model can only memorise them."""
    rng = np.random.default_rng(seed)

    def rows(n):
        x = rng.standard_normal((n, d))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), rng.integers(0, 2, n)

    (xtr, ytr), (xv, yv), (xte, yte) = rows(n_train), rows(10), rows(n_test)
    return {"x_train": xtr, "y_train": ytr, "x_val": xv, "y_val": yv, "x_test": xte, "y_test": yte}


def overfit_shard(tmp_path, arrays, epochs=150):
    """A shard of 3 seeds x 2 replace indices x variable init of a wide MLP trained for many epochs."""
    slice_ = {
        "dtype": "float32",
        "dataset": "random",
        "model": "mlp",
        "lr": 0.5,
        "batch_size": 8,
        "epochs": epochs,
        "cadence": 5 * epochs,
        "log_weights_at": [0, 5 * epochs],
        "hidden": 64,
        "dropout": 0.0,
    }
    spec = {"seeds": [0, 1, 2], "replace": {"list": [3, 30]}, "init": "variable"}
    path = tmp_path / "s0_r0_variable.parquet"
    write_table(run_shard("toy", slice_, spec, arrays, None, device="cpu", progress=None), path)
    return str(path), 5 * epochs


def test_overfit_model_gives_a_high_advantage(tmp_path):
    arrays = random_task(41, 40)  # D_i: 40 rows = 20 members + 20 threshold rows
    path, T = overfit_shard(tmp_path, arrays)
    table = shard_losses(path, arrays, [0, T], SETTINGS, device="cpu")
    assert table.num_rows == 12 and table["member_loss"].type.list_size == 20
    frame = table.to_pandas()
    member = np.stack(frame["member_loss"]).astype(np.float64)
    out = attack_table(
        frame.drop(columns=["member_loss", "nonmember_loss"]),
        member,
        np.stack(frame["nonmember_loss"]),
        frame["threshold_loss"].to_numpy(),
    )
    at_T, at_0 = out[out["t"] == T], out[out["t"] == 0]
    # memorised random labels: members' losses are near 0, non-members' near or above ln 2; the mean
    # training loss (tau) lies above most members' losses and below the non-members'
    assert (at_T["advantage_known"] > 0.3).all() and (at_T["fpr_known"] < 0.25).all()
    assert at_0["advantage_known"].abs().max() < 0.3  # before training: no memorisation


def test_member_losses_are_the_losses_of_each_runs_own_rows(tmp_path):
    arrays = random_task(41, 40)
    path, T = overfit_shard(tmp_path, arrays, epochs=2)
    frame = shard_losses(path, arrays, [T], SETTINGS, device="cpu").to_pandas()
    from sgd_privacy.data import neighbour_index
    from sgd_privacy.train.history import weights_at

    runs, weights = weights_at([path], T)
    model = build_model("mlp", (20,), 2, hidden=64, dropout=0.0)
    for k, run in runs.iterrows():
        row = frame[(frame["seed"] == run["seed"]) & (frame["replace_index"] == run["replace_index"])].iloc[0]
        own = neighbour_index(41, int(run["replace_index"]))  # D_i
        x = torch.as_tensor(arrays["x_train"][own], dtype=torch.float64)
        w1, b1, w2, b2 = (
            torch.as_tensor(p, dtype=torch.float64)
            for p in np.split(weights[k], [20 * 64, 20 * 64 + 64, 20 * 64 + 128])
        )
        logits = (torch.relu(x @ w1.reshape(20, 64) + b1) @ w2.reshape(64, 1)).squeeze(1) + b2
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits, torch.as_tensor(arrays["y_train"][own], dtype=torch.float64), reduction="none"
        ).numpy()
        np.testing.assert_allclose(row["member_loss"], loss[:20], rtol=1e-4, atol=1e-6)
        assert row["threshold_loss"] == pytest.approx(loss[20:].mean(), rel=1e-4)
    assert model.n_params == len(weights[0])


def test_members_never_trained_on_give_an_advantage_near_zero(tmp_path):
    arrays = random_task(41, 40)
    path, T = overfit_shard(tmp_path, arrays, epochs=30)
    from sgd_privacy.train.history import weights_at

    _, weights = weights_at([path], T)
    fresh = random_task(2, 2 * 2000, seed=5)  # "members" and non-members from the same distribution, both unseen
    model = build_model("mlp", (20,), 2, hidden=64, dropout=0.0)
    losses, _ = example_outputs(model, weights, fresh["x_test"], fresh["y_test"], torch.device("cpu"), torch.float32)
    n = 2000
    runs = pd.DataFrame(
        {
            "experiment": "toy",
            "seed": [0, 1, 2, 0, 1, 2],
            "replace_index": [3, 3, 3, 30, 30, 30],
            "init": "variable",
            "t": T,
        }
    )
    tau = np.median(losses, axis=1)  # a threshold in the bulk of the losses
    out = attack_table(runs, losses[:, :n], losses[:, n:], tau)
    # TPR and FPR are independent proportions of n draws with one p: sd(advantage) <= sqrt(2 * 0.25 / n)
    assert (out["advantage_known"].abs() < 4 * math.sqrt(0.5 / n)).all()


def test_partner_is_another_seed_with_the_same_replace_index_init_and_step():
    runs = pd.DataFrame(
        {
            "experiment": "e",
            "seed": [0, 1, 2, 0, 1, 5, 7],
            "replace_index": [3, 3, 3, 4, 4, 3, 3],
            "init": ["variable"] * 3 + ["variable", "variable", "fixed", "variable"],
            "t": [10] * 6 + [20],
        }
    )
    partner = partner_rows(runs)
    assert partner.tolist() == [1, 2, 0, 4, 3, -1, -1]


def constructed_losses(n=200, seed=0):
    """Two runs per replace index whose loss scales differ: each run's own threshold separates its members
    perfectly, the partner's threshold does not, so the seed-hidden attack is weaker."""
    rng = np.random.default_rng(seed)
    scale = np.array([0.0, 2.0] * 6)  # seeds 0 and 1 alternate
    member = scale[:, None] + rng.random((12, n))
    nonmember = scale[:, None] + 1.0 + rng.random((12, n))
    runs = pd.DataFrame(
        {
            "experiment": "e",
            "seed": [0, 1] * 6,
            "replace_index": np.repeat(np.arange(1, 7), 2),
            "init": "variable",
            "t": 5,
            "diverged": False,
            "train_loss": 1.0,
            "val_loss": 2.0,
        }
    )
    return runs, member, nonmember, scale + 1.0


def test_paired_test_points_the_right_way():
    runs, member, nonmember, tau = constructed_losses()
    attacks = attack_table(runs, member, nonmember, tau)
    assert (attacks["accuracy_known"] == 1.0).all() and (attacks["accuracy_hidden"] == 0.5).all()
    row = table6(attacks).iloc[0]
    assert row["n_runs"] == 12 and row["accuracy_diff"] == pytest.approx(0.5) and row["loss_ratio"] == 0.5
    assert np.isnan(row["p_value_accuracy"])  # every difference is 0.5: the t statistic is undefined
    # varying differences: the one-sided p-value of an independent computation (the t statistic by hand)
    rng = np.random.default_rng(4)
    noisy = attack_table(runs, member, nonmember, tau + 0.4 * rng.standard_normal(len(tau)))
    row = table6(noisy).iloc[0]
    d = noisy["accuracy_known"].to_numpy() - noisy["accuracy_hidden"].to_numpy()
    t_stat = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    assert row["p_value_accuracy"] == pytest.approx(stats.t.sf(t_stat, len(d) - 1), rel=1e-9)
    assert row["p_value_accuracy"] < 0.01 and d.mean() > 0
    rng = np.random.default_rng(1)
    hidden = rng.random(50)
    known = hidden + 0.05 + 0.02 * rng.standard_normal(50)
    assert paired_one_sided_p(known, hidden) < 1e-6
    assert paired_one_sided_p(hidden, known) > 1 - 1e-6
    assert paired_one_sided_p(known, hidden) == pytest.approx(
        stats.ttest_1samp(known - hidden, 0, alternative="greater").pvalue
    )


def test_table6_means_and_p_values_by_hand():
    rng = np.random.default_rng(2)
    runs, member, nonmember, tau = constructed_losses()
    tau = tau + 0.3 * rng.standard_normal(len(tau))  # imperfect own thresholds: varying accuracies
    attacks = attack_table(runs, member, nonmember, tau)
    row = table6(attacks).iloc[0]
    acc_k, acc_h = attacks["accuracy_known"].to_numpy(), attacks["accuracy_hidden"].to_numpy()
    assert row["accuracy_known"] == pytest.approx(acc_k.mean()) and row["accuracy_hidden"] == pytest.approx(
        acc_h.mean()
    )
    assert row["p_value_accuracy"] == pytest.approx(stats.ttest_rel(acc_k, acc_h, alternative="greater").pvalue)
    hand = ((member <= tau[:, None]).sum(1) + (nonmember > tau[:, None]).sum(1)) / 400
    np.testing.assert_allclose(acc_k, hand)


def test_heldout_bound_counts_errors_on_the_evaluation_scores():
    rng = np.random.default_rng(3)
    cal = (rng.normal(2, 1, 3000), rng.normal(0, 1, 3000))
    ev = (rng.normal(2, 1, 3000), rng.normal(0, 1, 3000))
    out = heldout_bound(cal, ev, 1e-5, 0.95, 100)
    assert out["threshold"] == choose_threshold(*cal, 1e-5, 0.95, 100)  # chosen on the calibration scores only
    fp, fn = error_counts(*ev, out["threshold"])
    assert (out["false_positives"], out["false_negatives"]) == (fp, fn)
    assert out["epsilon_lower_bound"] == epsilon_lower_bound(fp, 3000, fn, 3000, 1e-5, 0.95)
    # Scores of members and non-members are unit Gaussians mu = 2 apart: a mu-GDP mechanism, whose exact
    # epsilon at delta solves delta = Phi(-eps/mu + mu/2) - e^eps Phi(-eps/mu - mu/2); a valid bound stays below it.
    mu = 2.0
    exact = optimize.brentq(
        lambda e: stats.norm.cdf(-e / mu + mu / 2) - np.exp(e) * stats.norm.cdf(-e / mu - mu / 2) - 1e-5, 0.0, 50.0
    )
    assert 1.0 < out["epsilon_lower_bound"] < exact


def test_choosing_the_threshold_on_the_evaluated_scores_inflates_the_bound():
    """Without any signal, the best of many thresholds on the same scores often looks positive;
    the held-out bound stays at 0 far more often."""
    rng = np.random.default_rng(4)
    same, held = [], []
    for _ in range(40):
        cal = (rng.random(300), rng.random(300))
        ev = (rng.random(300), rng.random(300))
        same.append(heldout_bound(ev, ev, 1e-5, 0.5, 300)["epsilon_lower_bound"])
        held.append(heldout_bound(cal, ev, 1e-5, 0.5, 300)["epsilon_lower_bound"])
    assert np.mean(same) > np.mean(held) and np.mean(np.array(held) > 0) < np.mean(np.array(same) > 0)


def write_losses(path, runs, member, nonmember, tau):
    """A loss table as the loss job writes it."""
    import pyarrow as pa

    from sgd_privacy.attacks.mia import fixed_lists

    write_table(
        pa.table(
            {
                **{k: pa.array(runs[k].to_numpy()) for k in runs.columns},
                "threshold_loss": pa.array(tau),
                "member_loss": fixed_lists(member.astype(np.float32)),
                "nonmember_loss": fixed_lists(nonmember.astype(np.float32)),
            }
        ),
        path,
    )
    return str(path)


def test_yeom_bounds_use_held_out_seeds(tmp_path):
    runs, member, nonmember, tau = constructed_losses(n=100)
    path = write_losses(tmp_path / "losses.parquet", runs, member, nonmember, tau)
    bounds = yeom_bounds([path], BOUNDS).set_index("setting")
    # seed 0 calibrates, seed 1 is counted: 6 runs x 100 examples pooled, but one independent unit
    assert (bounds["n_calibration_runs"] == 6).all() and (bounds["n_members_pooled"] == 600).all()
    assert bounds.loc["known", "epsilon_score_pooled"] > 3 > bounds.loc["hidden", "epsilon_score_pooled"]
    assert (bounds["n_units"] == 1).all() and (bounds["n_members"] == 1).all() and bounds["low_n"].all()
    assert (bounds["epsilon_lower_bound"] == 0).all() and (bounds["unit"] == "seed").all()
    assert bounds["note"].str.contains("a score without a confidence level").all()
    attacks = yeom_tables([path])
    assert len(attacks) == 12 and set(attacks["partner_seed"]) == {0, 1}


def many_seed_losses(n_seeds, signal, n=60, seed=0):
    """Runs of n_seeds seeds x 2 replace indices x both init modes on the same n members and n non-members:
    losses = a persistent per-example effect + run noise, members lower by `signal`; tau = the run's
    mean member loss (its threshold rows stand in for the members)."""
    rng = np.random.default_rng(seed)
    runs = pd.MultiIndex.from_product(
        [["e"], range(n_seeds), [1, 2], ["variable", "fixed"], [5]],
        names=["experiment", "seed", "replace_index", "init", "t"],
    ).to_frame(index=False)
    runs["diverged"], runs["train_loss"], runs["val_loss"] = False, 1.0, 1.0
    r = len(runs)
    example = rng.normal(3.0, 0.3, 2 * n)  # members and non-members drawn from one pool
    member = example[:n] - signal + 0.1 * rng.standard_normal((r, n))
    nonmember = example[n:] + 0.1 * rng.standard_normal((r, n))
    tau = (example[:n].mean() - signal / 2) + 0.1 * rng.standard_normal(r) / np.sqrt(n)
    return runs, np.abs(member), np.abs(nonmember), tau


def test_yeom_bound_is_positive_with_a_strong_attack_and_many_seeds(tmp_path):
    runs, member, nonmember, tau = many_seed_losses(80, signal=2.5)
    bounds = yeom_bounds([write_losses(tmp_path / "l.parquet", runs, member, nonmember, tau)], BOUNDS)
    assert set(bounds["init"]) == {"variable", "fixed"} and len(bounds) == 4  # one row per init and setting
    # 40 evaluation seeds, 30 evaluation examples of each kind: 30 units, every trial right
    assert (bounds["n_units"] == 30).all() and not bounds["low_n"].any()
    assert (bounds["false_positives"] + bounds["false_negatives"] <= 3).all()
    for r in bounds.to_dict("records"):  # exact binomial limits from scipy, the DP test region by hand
        fpr = stats.binomtest(r["false_positives"], 30).proportion_ci(0.95, method="exact").high
        fnr = stats.binomtest(r["false_negatives"], 30).proportion_ci(0.95, method="exact").high
        expected = max(math.log((1 - 1e-5 - fpr) / fnr), math.log((1 - 1e-5 - fnr) / fpr))
        assert r["epsilon_lower_bound"] == pytest.approx(expected, rel=1e-9) and expected > 0.8


def test_yeom_without_membership_signal_reports_no_bound(tmp_path):
    """Models that learned nothing (e.g. lr 1e-7): losses carry per-example effects only; every bound is 0."""
    runs, member, nonmember, tau = many_seed_losses(80, signal=0.0)
    bounds = yeom_bounds([write_losses(tmp_path / "l.parquet", runs, member, nonmember, tau)], BOUNDS)
    assert (bounds["epsilon_lower_bound"] == 0).all()


def test_table6_splits_init_modes_and_flags_few_runs():
    runs, member, nonmember, tau = many_seed_losses(3, signal=1.0)
    attacks = attack_table(runs, member, nonmember, tau)
    out = table6(attacks).set_index("init")
    assert sorted(out.index) == ["fixed", "variable"] and (out["n_runs"] == 6).all()
    assert (out["n_units"] == 6).all() and out["low_n"].all()
    for init, g in attacks.groupby("init"):
        assert out.loc[init, "accuracy_known"] == pytest.approx(g["accuracy_known"].mean())
    many = table6(attack_table(*many_seed_losses(20, signal=1.0)[:1], *many_seed_losses(20, signal=1.0)[1:]))
    assert (many["n_runs"] == 40).all() and not many["low_n"].any()


def test_logit_confidence_is_the_log_odds_of_the_true_class():
    logits = torch.tensor([[[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]]], dtype=torch.float64)
    y = torch.tensor([0, 2])
    p = torch.softmax(logits, -1)[0, [0, 1], y]
    np.testing.assert_allclose(logit_confidence(logits, y)[0].numpy(), torch.log(p / (1 - p)).numpy())
    z = torch.tensor([[1.5, -0.5]], dtype=torch.float64)
    np.testing.assert_allclose(logit_confidence(z, torch.tensor([1, 1]))[0].numpy(), [1.5, -0.5])
    np.testing.assert_allclose(logit_confidence(z, torch.tensor([0, 0]))[0].numpy(), [-1.5, 0.5])


def test_split_sizes_are_balanced_and_capped():
    assert split_sizes(15000, 10000, {"n_members": 5000, "n_nonmembers": 5000, "n_threshold": None}) == (5000, 9999)
    assert split_sizes(101, 30, {"n_members": 500, "n_nonmembers": 500, "n_threshold": 10}) == (30, 10)
    with pytest.raises(ValueError, match="leave no members or threshold rows"):
        split_sizes(2, 30, SETTINGS)


def test_config_errors_name_the_key():
    config = {
        "experiments": {"a": {"log_weights_at": [10, 20]}},
        "mia": {"experiments": {"a": [10, 30]}, "lira": {"experiment": None}},
    }
    with pytest.raises(ValueError, match=r"'mia.experiments.a': steps \[30\] keep no weights"):
        check_mia_config(config)
    bad = copy.deepcopy(config)
    bad["mia"]["experiments"] = {"b": None}
    with pytest.raises(ValueError, match="unknown experiment 'b'"):
        check_mia_config(bad)
    bad = copy.deepcopy(config)
    bad["mia"] = {"experiments": {}, "lira": {"experiment": "zz"}}
    with pytest.raises(ValueError, match="'mia.lira.experiment': unknown experiment 'zz'"):
        check_mia_config(bad)


@pytest.mark.slow
def test_attack_settings_rerun_no_training(pipeline_results, pipeline_clone):
    """The shared run's attacked MLP (`mlp`, TINY_MLP_EXPERIMENT), then: attack settings rerun only attack
    jobs, never training."""
    import yaml

    from workflow_helpers import planned, run_snakemake, write_config

    table6_ = pipeline_results.table("results/mia/mlp/table6.parquet")
    assert table6_["t"].tolist() == [10, 20] and (table6_["n_runs"] == 8).all() and (table6_["n_members"] == 40).all()
    summary = pipeline_results.table("results/lira/mlp/summary.parquet")
    assert len(summary) == 4 and (summary["n_targets"] == 8).all()
    base = yaml.safe_load((pipeline_clone / "config" / "config.yaml").read_text())
    changes = {
        ("delta",): 1e-3,
        ("confidence",): 0.9,
        ("lira", "fixed_variance"): False,
        ("n_members",): 30,
        ("lira", "epochs"): 4,
    }
    expected = [  # the report is rebuilt from the attack tables every time; training never reruns
        {"mia_attack", "lira_attack", "report"},
        {"mia_attack", "lira_attack", "report"},
        {"lira_attack", "report"},
        {"mia_losses", "mia_attack", "report"},
        {"lira_shadows", "lira_attack", "report"},
    ]
    for (keys, value), want in zip(changes.items(), expected, strict=True):
        config = copy.deepcopy(base)
        target = config["mia"]
        for k in keys[:-1]:
            target = target[k]
        target[keys[-1]] = value
        write_config(pipeline_clone, config)
        assert set(planned(run_snakemake(pipeline_clone, "-n"))) - {"all"} == want, keys


def test_models_that_learned_nothing_give_no_bound(tmp_path):
    """Forty seeds of an MLP trained at lr 1e-7 (no membership signal, true epsilon 0), attacked by the
    stage's own functions: the loss tables, Yeom's bounds with one counted member and non-member per
    evaluation seed, all 0; the pooled score is kept beside them."""
    arrays = random_task(201, 100)
    slice_ = {
        "dtype": "float32",
        "dataset": "random",
        "model": "mlp",
        "lr": 1e-7,
        "batch_size": 20,
        "epochs": 1,
        "cadence": 10,
        "log_weights_at": [0, 10],
        "hidden": 16,
        "dropout": 0.0,
    }
    spec = {"seeds": list(range(40)), "replace": {"list": [3]}, "init": "variable"}
    path = tmp_path / "s0_r0_variable.parquet"
    write_table(run_shard("toy", slice_, spec, arrays, None, device="cpu", progress=None), path)
    losses = tmp_path / "losses.parquet"
    settings = {"n_members": 100, "n_nonmembers": 100, "n_threshold": None}
    write_table(shard_losses(str(path), arrays, [10], settings, device="cpu"), losses)
    bounds = yeom_bounds([str(losses)], BOUNDS)
    assert len(bounds) == 2 and (bounds["n_units"] == 20).all() and (bounds["n_members_pooled"] == 2000).all()
    assert (bounds["epsilon_lower_bound"] == 0).all()
