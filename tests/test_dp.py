"""DP study: DP-SGD through Opacus against plain SGD, accounting, clipping, SAM, settings, summaries, ledger."""

import copy
import itertools
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sgd_privacy.config import ConfigError
from sgd_privacy.dp.ledger import composed_rdp_epsilon, ledger_table, rdp_epsilon
from sgd_privacy.dp.models import DPSettingError, ResNet18GN, build_model, check_clippable, load_backbone
from sgd_privacy.dp.sam import sam_perturbation, sam_step
from sgd_privacy.dp.settings import configurations, resolve, sweep_membership
from sgd_privacy.dp.summary import dominated, final_runs, outlier_table, summary_table, sweep_table
from sgd_privacy.dp.train import make_private, stratified_halves, study_split, train_run
from workflow_helpers import planned, run_snakemake, write_config

DELTA = 1e-5
BASE = {
    "dataset": "tiny",
    "model": "cnn",
    "algorithm": "sgd",
    "epochs": 2,
    "batch_size": 16,
    "lr": 0.1,
    "momentum": 0.0,
    "l2": 0.0,
    "dropout": 0.0,
    "seed": 0,
    "rho": 0.05,
    "max_grad_norm": 1.0,
    "noise_multiplier": None,
    "target_epsilon": None,
    "backbone_weights": None,
}


def tiny_data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 16, 16, generator=g), torch.randint(0, 3, (n,), generator=g)


def conf(**over):
    return resolve("t", {**BASE, **over})


def final_privacy(c, n=64):
    x, y = tiny_data(n)
    seen = {}
    train_run(c, "t", x, y, 3, 0, DELTA, lambda e, m, p: seen.update(epoch=e, privacy=p))
    return seen["privacy"]


# ---------------------------------------------------------------- DP-SGD = SGD without noise and clipping
def _twins(algorithm, **over):
    """A plain model/optimizer and an Opacus-wrapped copy (noise 0, C huge) fed the same fixed batches,
    in float64: the two sum per-example gradients in different orders, and in float32 with several
    threads SAM's ascent step amplifies that rounding beyond the tolerance."""
    torch.manual_seed(0)
    x, y = tiny_data(32)
    x = x.double()
    plain = build_model(conf(), (1, 16, 16), 3).double()
    private = copy.deepcopy(plain)
    opt = torch.optim.SGD(plain.parameters(), lr=0.1)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    c = conf(algorithm=algorithm, noise_multiplier=0.0, max_grad_norm=1e9, **over)
    wrapped, dp_opt, _, privacy = make_private(private, torch.optim.SGD(private.parameters(), lr=0.1), loader, c, DELTA)
    assert privacy.noise_multiplier == 0.0 and dp_opt.expected_batch_size == 8
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]
    return plain, opt, wrapped, dp_opt, batches


def test_dpsgd_without_noise_and_clipping_equals_sgd_step_for_step():
    plain, opt, wrapped, dp_opt, batches = _twins("dpsgd")
    loss_fn = nn.CrossEntropyLoss()
    for xb, yb in batches:
        for model, o in ((plain, opt), (wrapped, dp_opt)):
            o.zero_grad()
            loss_fn(model(xb), yb).backward()
            o.step()
        for p, q in zip(plain.parameters(), wrapped._module.parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
    assert not torch.equal(next(plain.parameters()), build_model(conf(), (1, 16, 16), 3).conv1.weight)


def test_dpsam_without_noise_and_clipping_equals_sam_step_for_step():
    plain, opt, wrapped, dp_opt, batches = _twins("dpsam")
    loss_fn = nn.CrossEntropyLoss()
    for xb, yb in batches:
        sam_step(list(plain.parameters()), opt, lambda xb=xb, yb=yb: loss_fn(plain(xb), yb), 0.05)
        sam_step(list(wrapped.parameters()), dp_opt, lambda xb=xb, yb=yb: loss_fn(wrapped(xb), yb), 0.05)
        for p, q in zip(plain.parameters(), wrapped._module.parameters(), strict=True):
            torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- accounting
def test_accountant_epsilon_decreases_with_noise_and_is_infinite_without():
    eps = [rdp_epsilon(s, 0.01, 1000, DELTA) for s in (0.5, 0.8, 1.1, 2.0, 4.0)]
    assert all(a > b for a, b in itertools.pairwise(eps))
    assert rdp_epsilon(0.0, 0.01, 1000, DELTA) == math.inf


def test_infinite_target_epsilon_means_no_noise_and_infinite_epsilon():
    privacy = final_privacy(conf(algorithm="dpsgd", target_epsilon=math.inf))
    assert privacy.noise_multiplier == 0.0 and privacy.epsilon(DELTA) == math.inf


# ---------------------------------------------------------------- clipping
def test_per_example_clipping_bounds_every_examples_contribution():
    torch.manual_seed(0)
    x, y = tiny_data(8)
    x[3] *= 1e4  # one example with a huge gradient
    model = nn.Sequential(nn.Flatten(), nn.Linear(256, 3))
    reference = copy.deepcopy(model)
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    c = conf(algorithm="dpsgd", noise_multiplier=0.0, max_grad_norm=0.5)
    wrapped, dp_opt, _, _ = make_private(model, torch.optim.SGD(model.parameters(), lr=1.0), loader, c, DELTA)
    dp_opt.zero_grad()
    nn.CrossEntropyLoss()(wrapped(x), y).backward()
    dp_opt.pre_step()
    # independent per-example gradients by a plain loop, clipped by hand
    clipped, norms = [], []
    for i in range(8):
        reference.zero_grad()
        nn.CrossEntropyLoss()(reference(x[i : i + 1]), y[i : i + 1]).backward()
        g = torch.cat([p.grad.flatten() for p in reference.parameters()])
        norms.append(float(g.norm()))
        clipped.append(g * min(1.0, 0.5 / float(g.norm())))
    assert norms[3] > 100 * max(norms[:3] + norms[4:])
    assert float(clipped[3].norm()) == pytest.approx(0.5, rel=1e-6)
    got = torch.cat([p.grad.flatten() for p in wrapped.parameters()]) * 8
    torch.testing.assert_close(got, torch.stack(clipped).sum(0), rtol=1e-4, atol=1e-5)
    assert float(got.norm()) <= 8 * 0.5 + 1e-5


def test_unsupported_layer_gives_an_error_naming_it():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 14 * 14, 3))
    with pytest.raises(DPSettingError, match=r"configuration 'bn_model'.*layer '1' \(BatchNorm2d\).*GroupNorm"):
        check_clippable(model, "bn_model")
    model[1].requires_grad_(False)  # a frozen BatchNorm has no per-example gradient to clip
    check_clippable(model, "bn_model")


# ---------------------------------------------------------------- SAM
def test_sam_first_step_matches_hand_computation_on_a_quadratic():
    a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    w0 = torch.tensor([1.0, -2.0], dtype=torch.float64)
    w = nn.Parameter(w0.clone())
    opt = torch.optim.SGD([w], lr=0.1)
    rho = 0.05
    loss = sam_step([w], opt, lambda: 0.5 * w @ a @ w, rho)
    g = a @ w0  # (1, -3)
    e = rho * g / math.sqrt(10.0)
    expected = w0 - 0.1 * (a @ (w0 + e))
    torch.testing.assert_close(w.detach(), expected, rtol=0, atol=1e-12)
    assert loss == pytest.approx(float(0.5 * w0 @ a @ w0))
    assert all(float(t.abs().sum()) == 0 for t in sam_perturbation([torch.zeros(3)], rho))


# ---------------------------------------------------------------- split, settings
def test_stratified_halves_split_each_class_in_half():
    labels = np.array([0] * 7 + [1] * 4 + [2] * 1)
    first, second = stratified_halves(labels, seed=3)
    assert sorted(np.r_[first, second]) == list(range(12))
    assert np.bincount(labels[first], minlength=3).tolist() == [4, 2, 1]
    assert np.bincount(labels[second], minlength=3).tolist() == [3, 2, 0]
    split = study_split(labels, labels[:6], 0)
    assert len(np.intersect1d(split.members, split.shadow_members)) == 0
    assert len(split.nonmembers) + len(split.shadow_nonmembers) == 6


def test_settings_keep_only_the_keys_an_algorithm_uses():
    assert "max_grad_norm" not in conf() and "rho" not in conf()
    assert conf(algorithm="sam_clip")["max_grad_norm"] == 1.0
    assert conf(algorithm="dpsgd", target_epsilon=3)["target_epsilon"] == 3
    with pytest.raises(ConfigError, match="exactly one of noise_multiplier and target_epsilon"):
        conf(algorithm="dpsgd", noise_multiplier=1.0, target_epsilon=3)
    with pytest.raises(ConfigError, match="exactly one"):
        conf(algorithm="dpsam")


def test_sweeps_expand_into_named_configurations_and_a_changed_value_touches_only_its_own():
    dp = {
        "defaults": BASE,
        "configurations": {"baseline": {}},
        "sweeps": {
            "epsilon": {"base": {"algorithm": "dpsgd"}, "key": "target_epsilon", "values": [math.inf, 3, 0.5]},
            "compare": {"variants": {"sam": {"algorithm": "sam"}, "l2": {"l2": 0.025}}},
        },
    }
    confs = configurations(dp)
    assert list(confs) == ["baseline", "epsilon-inf", "epsilon-3", "epsilon-0.5", "compare-sam", "compare-l2"]
    assert confs["epsilon-0.5"]["target_epsilon"] == 0.5 and confs["compare-l2"]["l2"] == 0.025
    changed = copy.deepcopy(dp)
    changed["sweeps"]["epsilon"]["values"] = [math.inf, 3, 1]
    new = configurations(changed)
    assert {k for k in confs if confs[k] != new.get(k)} == {"epsilon-0.5"}
    assert [r["configuration"] for r in sweep_membership(dp)][:3] == ["epsilon-inf", "epsilon-3", "epsilon-0.5"]
    with pytest.raises(ConfigError, match="either `key` with `values`, or `variants`"):
        configurations({**dp, "sweeps": {"bad": {"key": "lr"}}})


def test_pretrained_backbone_missing_file_and_batchnorm_checkpoint_are_named(tmp_path):
    with pytest.raises(DPSettingError, match="not found at '/nowhere/gn.pt'.*backbone_weights"):
        build_model({**BASE, "model": "resnet18", "backbone_weights": "/nowhere/gn.pt"}, (3, 32, 32), 10)
    source = ResNet18GN(3, 1000)
    path = tmp_path / "gn.pt"
    torch.save(source.state_dict(), path)
    model = build_model({**BASE, "model": "resnet18", "backbone_weights": str(path), "dropout": 0.5}, (3, 32, 32), 10)
    torch.testing.assert_close(model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    assert model.fc.out_features == 10
    state = {**source.state_dict(), "bn1.running_mean": torch.zeros(64)}
    torch.save(state, path)
    with pytest.raises(DPSettingError, match="BatchNorm checkpoint"):
        load_backbone(ResNet18GN(3, 10), str(path))


# ---------------------------------------------------------------- summaries, outliers, ledger
def _runs():
    rows = []
    for rep, (acc, perr) in enumerate(((0.8, 0.40), (0.9, 0.45), (1.0, 0.47))):
        for epoch in (1, 2):
            rows.append(
                {
                    "configuration": "c",
                    "repeat": rep,
                    "epoch": epoch,
                    "attack": "loss_threshold",
                    "dataset": "d",
                    "algorithm": "dpsgd",
                    "test_accuracy": acc,
                    "train_accuracy": acc,
                    "p_err": perr,
                    "fpr": 0.5,
                    "fnr": 0.5,
                    "advantage": 1 - 2 * perr,
                    "max_advantage": 0.1,
                    "auc": 0.5,
                    "epsilon": float(epoch),
                    "p_err_floor": 0.1,
                    "delta": DELTA,
                    "noise_multiplier": 1.0,
                    "accounted_noise_multiplier": 1.0,
                    "sample_rate": 0.1,
                    "releases_per_step": 1,
                    "noisy_releases": 10 * epoch,
                    "accounted_steps": 10 * epoch,
                }
            )
    return pd.DataFrame(rows)


def test_summary_means_and_confidence_intervals():
    summary = summary_table(_runs())
    row = summary[summary["epoch"] == 1].iloc[0]
    half = stats.t.ppf(0.975, 2) * np.std([0.8, 0.9, 1.0], ddof=1) / math.sqrt(3)
    assert row["repeats"] == 3
    assert row["test_accuracy"] == pytest.approx(0.9)
    assert (row["test_accuracy_lo"], row["test_accuracy_hi"]) == pytest.approx((0.9 - half, 0.9 + half))
    assert row["p_err"] == pytest.approx(0.44)
    sweeps = sweep_table(summary, [{"sweep": "s", "configuration": "c", "label": "1", "key": "lr"}])
    assert len(sweeps) == 2 and set(sweeps["sweep"]) == {"s"}


def test_dominance_needs_strictly_better_on_one_axis_and_no_worse_on_the_other():
    privacy = np.array([0.40, 0.45, 0.45, 0.30, 0.45])
    utility = np.array([0.90, 0.90, 0.80, 0.95, 0.90])
    # 0 is beaten by 1 (more privacy, same utility); 2 by 1 (same privacy, more utility);
    # 3 has the best utility and 1/4 tie with each other, so neither beats the other
    assert dominated(privacy, utility).tolist() == [True, False, True, False, False]


def test_outliers_are_examples_identified_in_every_repeat():
    rows = []
    hits = {  # (member, example) -> identified in repeats 0, 1, 2
        (True, 0): (1, 1, 1),
        (True, 1): (1, 0, 1),
        (True, 2): (1, 1, 1),
        (False, 0): (0, 0, 0),
        (False, 1): (1, 1, 1),
    }
    for (member, ex), per_rep in hits.items():
        for rep, hit in enumerate(per_rep):
            rows.append(
                {"configuration": "c", "repeat": rep, "epoch": 1, "attack": "a", "member": member}
                | {"example": ex, "identified": bool(hit)}
            )
    out = outlier_table(pd.DataFrame(rows), repeats=3).set_index("member")
    assert (out.loc[True, "outliers"], out.loc[True, "examples"]) == (2, 3)
    assert out.loc[True, "outlier_fraction"] == pytest.approx(2 / 3)
    assert (out.loc[False, "outliers"], out.loc[False, "examples"]) == (1, 2)
    with pytest.raises(ValueError, match="expected 4 repeats"):
        outlier_table(pd.DataFrame(rows), repeats=4)


def test_ledger_composes_epsilons_per_dataset():
    final = pd.DataFrame(
        {
            "dataset": ["a", "a", "a", "b"],
            "epsilon": [1.0, 2.5, math.inf, 0.7],
            "delta": [DELTA] * 4,
            "accounted_noise_multiplier": [1.2, 0.9, 0.0, 2.0],
            "sample_rate": [0.05, 0.05, 0.05, 0.01],
            "accounted_steps": [200, 300, 200, 500],
        }
    )
    ledger = ledger_table(final, DELTA).set_index("dataset")
    a, b = ledger.loc["a"], ledger.loc["b"]
    assert (a["runs"], a["dp_runs"], a["non_private_runs"]) == (3, 2, 1)
    assert a["basic_epsilon"] == pytest.approx(3.5) and a["basic_delta"] == pytest.approx(2e-5)
    # RDP composition beats basic composition of the two runs' own RDP epsilons, and costs more than either
    separate = [rdp_epsilon(1.2, 0.05, 200, DELTA), rdp_epsilon(0.9, 0.05, 300, DELTA)]
    assert max(separate) < a["rdp_epsilon"] < sum(separate)
    assert a["epsilon_all_runs"] == math.inf and a["largest_run_epsilon"] == 2.5
    assert b["basic_epsilon"] == pytest.approx(0.7) and b["epsilon_all_runs"] == b["rdp_epsilon"]
    # k identical runs compose like one run with k times the steps
    assert composed_rdp_epsilon([(1.0, 0.1, 50)] * 3, DELTA) == pytest.approx(rdp_epsilon(1.0, 0.1, 150, DELTA))
    with pytest.raises(ValueError, match="lack accounted_noise_multiplier, accounted_steps.*rerun the dp_train jobs"):
        ledger_table(final.drop(columns=["accounted_noise_multiplier", "accounted_steps"]), DELTA)


def test_final_runs_take_each_runs_last_epoch():
    final = final_runs(_runs())
    assert len(final) == 3 and set(final["epoch"]) == {2}


def test_mnist_ten_class_images_from_raw_files(raw_dir, unchecked):
    from sgd_privacy.data import SourceContext, prepare_dataset

    ctx = SourceContext(data_dir=str(raw_dir), cache_dir=str(raw_dir / "cache"))
    arrays = prepare_dataset("mnist", None, ctx).arrays
    assert arrays["x_train"].shape == (108, 1, 28, 28) and arrays["x_test"].shape == (40, 1, 28, 28)
    assert set(np.unique(arrays["y_test"])) == set(range(10))
    assert arrays["x_train"].min() >= 0.0 and arrays["x_train"].max() <= 1.0


# ---------------------------------------------------------------- workflow
@pytest.mark.slow
def test_dp_pipeline_runs_and_a_changed_sweep_value_reruns_only_its_jobs(pipeline_results, pipeline_clone):
    """The shared run's DP study (sweep `compare`: SGD, DP-SGD, DP-SAM on mnist5k), then: a changed variant
    and a new one plan only their own training, the summary and the report."""
    runs = pipeline_results.table("results/dp/runs/compare-dpsgd/r0_epochs.parquet")
    assert sorted(runs["epoch"].unique()) == [0, 1] and set(runs["attack"]) == {
        "loss_threshold",
        "class_threshold",
        "nn_shadow",
    }
    sweeps = pipeline_results.table("results/dp/sweeps.parquet")
    assert set(sweeps["configuration"]) == {"compare-sgd", "compare-dpsgd", "compare-dpsam"}
    ledger = pipeline_results.table("results/dp/ledger.parquet").set_index("dataset")
    assert ledger.loc["mnist5k", ["runs", "dp_runs", "non_private_runs"]].tolist() == [3, 2, 1]
    changed = copy.deepcopy(pipeline_results.config)
    variants = changed["dp"]["sweeps"]["compare"]["variants"]
    variants["dpsam"]["noise_multiplier"] = 1.2
    variants["dpsgd2"] = {"algorithm": "dpsgd", "target_epsilon": 5}
    write_config(pipeline_clone, changed)
    plan = run_snakemake(pipeline_clone, "-n")
    assert planned(plan) == {"dp_train": 2, "dp_summary": 1, "privacy_ledger": 1, "report": 1, "all": 1}
    assert set(re.findall(r"configuration=([\w.-]+)", plan.stdout)) == {"compare-dpsam", "compare-dpsgd2"}
