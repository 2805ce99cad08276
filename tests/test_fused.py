"""The dense models' compiled step on the CPU (`sgd_privacy.train.fused`) against what it replaces.

Its gradient lr * ((exact.sigmoid(z) - y) / B) against the tensor operations, bit for bit: over the
float32 and float64 ranges (every binade, beyond the clamp, subnormals, NaN, infinities and signed
zeros) and at every position of arrays whose lengths are not multiples of a vector. The MLP's middle
against a plain per-run loop written from its formulas in float64 (hits, dropout, padded blocks). Whole
trainings against the tensor operations (the GPU's path): logistic regression bit for bit, the MLP
to rounding (it sums in another order). The determinism contract over groupings and thread counts,
and the float64 agreement with the reference trainer, are tests/test_trainer.py's, on this path."""

import numpy as np
import pytest
import torch

from sgd_privacy.train import exact
from sgd_privacy.train import models as models_module
from sgd_privacy.train.batched import DeviceData, Runs, Schedule, train_batch
from sgd_privacy.train.fused import logreg_middle, mlp_middle
from sgd_privacy.train.models import MLP, LogReg
from sgd_privacy.train.shared import SeedBlocks, SharedBatch
from test_exact import sweep

SPECIAL = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-45, -1e-45, 1e-310, 88.7, -88.7, 710.0, -710.0]


def tensor_ops(z: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
    """What the trainer computed with tensor operations: lr times `Model.logit_grad`'s binary branch."""
    return lr * ((exact.sigmoid(z) - y.to(z.dtype)) / z.shape[1])


def compiled(z: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
    """The compiled loop's gradient for logits z (n, B, width): `logreg_middle` on a forward product whose
    rows are z (row B unused: no run is at its replaced position)."""
    n, rows, width = z.shape
    product = torch.cat([z, torch.zeros(n, 1, width, dtype=z.dtype)], dim=1)
    blocks = SeedBlocks.build(np.zeros(width, dtype=np.int64), width, torch.device("cpu"))
    hit = torch.zeros(n, rows, width, dtype=torch.bool)
    batch = SharedBatch(torch.zeros(n, rows + 1, 1, dtype=z.dtype), hit, y, None, blocks)
    ext = logreg_middle(product, batch, lr)
    assert not ext[:, rows].any()  # no hit: row B's gradients are zeros
    return ext[:, :rows]


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal values with equal signs (zeros included), NaN where NaN (a NaN's payload aside)."""
    equal = (a == b) & (torch.signbit(a) == torch.signbit(b))
    return bool((equal | (a.isnan() & b.isnan())).all())


@pytest.mark.parametrize(("dtype", "bound"), [(torch.float32, 87.0), (torch.float64, 708.0)])
@pytest.mark.parametrize("lr", [0.5, 0.37, 3.0])
def test_the_compiled_gradient_has_the_bits_of_the_tensor_operations(dtype, bound, lr):
    """About 400,000 inputs over the bit patterns of [-1.2 bound, 1.2 bound] and the special values, in a
    (n, B, width) layout with B = 7 (a division that rounds), labels 0 and 1."""
    x = np.concatenate([sweep(dtype, bound * 1.2, 200_000), np.array(SPECIAL)]).astype(sweep(dtype, 1.0, 1).dtype)
    x = np.concatenate([x, np.zeros((-len(x)) % 21, dtype=x.dtype)])
    z = torch.from_numpy(x).reshape(-1, 7, 3)
    y = torch.from_numpy(np.random.default_rng(0).integers(0, 2, z.shape))
    got, want = compiled(z, y, lr), tensor_ops(z, y, lr)
    assert got.dtype == dtype and got.shape == z.shape
    assert same_bits(got, want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_an_element_has_the_same_bits_at_every_position(dtype):
    """The same logit at each position of arrays of 1 to 37 elements (vector lanes and scalar tails)."""
    values = torch.tensor([-30.3, -2.2, -0.1, 0.0, 0.7, 5.5, 41.0], dtype=dtype)
    want = tensor_ops(values.reshape(1, 1, -1), torch.ones(1, 1, 7, dtype=torch.int64), 0.5).reshape(-1)
    for n in range(1, 38):
        for k, v in enumerate(values):
            z = torch.full((1, 1, n), 1.25, dtype=dtype)
            z[0, 0, (7 * k) % n] = v
            got = compiled(z, torch.ones(1, 1, n, dtype=torch.int64), 0.5).reshape(-1)
            assert torch.equal(got[(7 * k) % n], want[k]), (n, k)


def vectors(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(301, 12)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=301) > 0).astype(np.int64)
    return {"x_train": x[:201], "y_train": y[:201], "x_val": x[201:], "y_val": y[201:]}


def sigmoid(v: float) -> float:
    return 1.0 / (1.0 + np.exp(-v))


def test_the_mlp_middle_follows_its_formulas_run_by_run():
    """Three blocks of width 3 over two seeds (one padded column), h = 4, B = 5, two hits and dropout:
    ext, w2's and b2's steps against a per-run loop over the formulas of `mlp_middle` in float64."""
    rng = np.random.default_rng(3)
    nb, rows, width, h, lr = 3, 5, 3, 4, 0.7
    blocks = SeedBlocks.build(np.array([0, 0, 0, 0, 1, 1]), width, torch.device("cpu"))  # seed 1 pads a column
    z = torch.from_numpy(rng.normal(size=(nb, rows + 1, width * h)))
    hit = torch.zeros(nb, rows, width, dtype=torch.bool)
    hit[0, 2, 1] = hit[2, 4, 0] = True
    y = torch.from_numpy(rng.integers(0, 2, (nb, rows, width)))
    keep = torch.from_numpy((rng.random((2, rows, h)) > 0.3) / 0.7)
    w2 = torch.from_numpy(rng.normal(size=(nb, width, h, 1)))
    b2 = torch.from_numpy(rng.normal(size=(nb, width, 1)))
    w2_before, b2_before = w2.clone().numpy(), b2.clone().numpy()
    xs = torch.zeros(nb, rows + 1, 1, dtype=torch.float64)  # not read by the middle
    ext = mlp_middle(z, SharedBatch(xs, hit, y, keep, blocks), w2, b2, lr).numpy()
    zn, seed = z.numpy(), blocks.block_seed.numpy()
    for n in range(nb):
        for c in range(width):
            cols = slice(c * h, (c + 1) * h)
            want_ext, w2_step, b2_step = np.zeros((rows + 1, h)), np.zeros(h), 0.0
            for j in range(rows):
                pre = zn[n, rows if hit[n, j, c] else j, cols]
                mask = keep.numpy()[seed[n], j]
                units = np.maximum(pre, 0) * mask
                g = lr * (sigmoid(units @ w2_before[n, c, :, 0] + b2_before[n, c, 0]) - y[n, j, c].item()) / rows
                want_ext[rows if hit[n, j, c] else j] = g * w2_before[n, c, :, 0] * (pre > 0) * mask
                w2_step += g * units
                b2_step += g
            np.testing.assert_allclose(ext[n, :, cols], want_ext, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(w2.numpy()[n, c, :, 0], w2_before[n, c, :, 0] - w2_step, rtol=1e-12)
            np.testing.assert_allclose(b2.numpy()[n, c, 0], b2_before[n, c, 0] - b2_step, rtol=1e-12)


def train_both_ways(model, dtype, monkeypatch):
    """Two epochs of six runs over three seeds on the CPU: compiled, then with tensor operations (as on a GPU)."""
    data = DeviceData.from_arrays(vectors(), torch.device("cpu"), dtype)
    runs, schedule = Runs(np.arange(6) % 3, 1 + np.arange(6) * 11, np.zeros(6, bool)), Schedule(0.4, 8, 2, 5)
    compiled = train_batch(model, data, runs, schedule)
    monkeypatch.setattr(models_module, "compiled_here", lambda t: False)
    return compiled, train_batch(model, data, runs, schedule)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logistic_regression_trains_to_the_bits_of_the_tensor_operations(dtype, monkeypatch):
    compiled, plain = train_both_ways(LogReg(12), dtype, monkeypatch)
    assert np.array_equal(compiled.weights, plain.weights)
    assert all(np.array_equal(compiled.metrics[k], plain.metrics[k], equal_nan=True) for k in plain.metrics)


@pytest.mark.parametrize(("dropout", "dtype", "rtol"), [(0.3, torch.float64, 1e-12), (0.0, torch.float32, 1e-5)])
def test_the_mlp_trains_to_the_tensor_operations_to_rounding(dropout, dtype, rtol, monkeypatch):
    compiled, plain = train_both_ways(MLP(12, 5, dropout), dtype, monkeypatch)
    assert not np.array_equal(compiled.weights, plain.weights)  # summed in other orders
    np.testing.assert_allclose(compiled.weights, plain.weights, rtol=rtol, atol=rtol * np.abs(plain.weights).max())
    for k in plain.metrics:
        np.testing.assert_allclose(compiled.metrics[k], plain.metrics[k], rtol=rtol)
