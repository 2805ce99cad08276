"""The query experiment's DP-SGD contrast model: every Poisson batch, an empty one included, is one noisy update and
one booked step (a skipped empty batch would reveal that it was empty, which the accounting does not cover)."""

import math

import numpy as np
import pytest
import torch
from opacus.accountants.analysis import rdp as rdp_analysis
from scipy import stats

import sgd_privacy.dp.train as dp_train
from sgd_privacy.perturbation import query_api as qa

pytestmark = pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")


def test_dp_logreg_noises_and_books_every_batch_empty_ones_included(monkeypatch):
    # q = 1 / 200 over 200 examples (batch 1): about 37% of the 400 batches of 2 epochs are empty
    n, d, epochs, lr, sigma, clip, delta = 200, 5, 2, 0.3, 1.5, 1.0, 1e-5
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, d)), (rng.random(n) < 0.5).astype(float)
    calls: list[tuple[int, torch.Tensor]] = []
    original = dp_train.train_step

    def spy(model, optimizer, xb, yb, conf, loss_fn=None):
        before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
        original(model, optimizer, xb, yb, conf, loss_fn)
        after = torch.cat([p.detach().flatten() for p in model.parameters()])
        calls.append((len(xb), (after - before).double()))

    monkeypatch.setattr(dp_train, "train_step", spy)
    _, epsilon = qa.train_dp_logreg(x, y, epochs, 1, lr, sigma, clip, delta, seed=0)
    assert len(calls) == epochs * n  # every batch drawn went through an update
    moves = torch.stack([m for size, m in calls if size == 0])
    assert 110 <= len(moves) <= 190
    assert bool((moves != 0).all())  # every weight and the bias moved on every empty batch
    # the move on an empty batch is the noise alone: N(0, (lr sigma C / expected batch 1)^2) per weight
    want_sd = lr * sigma * clip
    assert abs(float(moves.mean())) < 5 * want_sd / math.sqrt(moves.numel())
    ratio = float((moves**2).sum()) / want_sd**2  # chi-square with numel degrees of freedom
    assert stats.chi2.ppf(1e-6, moves.numel()) < ratio < stats.chi2.ppf(1 - 1e-6, moves.numel())
    # the accountant booked all 400 batches: Opacus's RDP analysis of 400 sampled steps at q = 1/200
    orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
    rdp = rdp_analysis.compute_rdp(q=1 / n, noise_multiplier=sigma, steps=epochs * n, orders=orders)
    want, _ = rdp_analysis.get_privacy_spent(orders=orders, rdp=rdp, delta=delta)
    assert epsilon == pytest.approx(float(want), rel=1e-9)
    fewer = rdp_analysis.compute_rdp(q=1 / n, noise_multiplier=sigma, steps=epochs * n - len(moves), orders=orders)
    assert epsilon > rdp_analysis.get_privacy_spent(orders=orders, rdp=fewer, delta=delta)[0] + 0.01
