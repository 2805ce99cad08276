"""The membership stage's per-example outputs are evaluated in chunks of models as well as of rows, and a
model's outputs do not depend on the chunking."""

import numpy as np
import torch

from sgd_privacy.attacks.outputs import example_outputs, models_per_chunk
from sgd_privacy.train.models import build_model


def wide_mlp_task(n_models=5, d=200, hidden=2000, n=300, seed=0):
    rng = np.random.default_rng(seed)
    model = build_model("mlp", (d,), 2, hidden=hidden, dropout=0.0)
    weights = (rng.standard_normal((n_models, model.n_params)) * 0.05).astype(np.float32)
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, 2, n)
    return model, weights, x, y


def test_a_small_budget_splits_the_models_and_changes_no_output():
    model, weights, x, y = wide_mlp_task()
    # one model's parameters alone (about 1.6 MB in float32) exceed a 1 MB budget: one model per chunk
    assert models_per_chunk(model, len(weights), weights.shape[1], 1, 4) == 1
    assert models_per_chunk(model, len(weights), weights.shape[1], 4096, 4) == len(weights)
    cpu = torch.device("cpu")
    small = example_outputs(model, weights, x, y, cpu, torch.float32, budget_mb=1)
    large = example_outputs(model, weights, x, y, cpu, torch.float32, budget_mb=4096)
    for a, b in zip(small, large, strict=True):
        assert a.shape == (len(weights), len(x))
        np.testing.assert_array_equal(a, b)


def test_outputs_match_a_plain_loop_over_models():
    model, weights, x, y = wide_mlp_task(n_models=3, d=20, hidden=30, n=50, seed=1)
    losses, confidence = example_outputs(model, weights, x, y, torch.device("cpu"), torch.float32, budget_mb=1)
    d, h = 20, 30
    for k in range(len(weights)):
        w1, b1, w2, b2 = (
            torch.as_tensor(p, dtype=torch.float64) for p in np.split(weights[k], [d * h, d * h + h, d * h + 2 * h])
        )
        z = (torch.relu(torch.as_tensor(x, dtype=torch.float64) @ w1.reshape(d, h) + b1) @ w2.reshape(h, 1)).squeeze(1)
        z = z + b2
        target = torch.as_tensor(y, dtype=torch.float64)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z, target, reduction="none").numpy()
        np.testing.assert_allclose(losses[k], loss, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(confidence[k], (z * (2 * target - 1)).numpy(), rtol=1e-4, atol=1e-5)
