"""The binary models' compiled step gradient (`sgd_privacy.train.fused`) against the tensor operations it
replaces on the CPU, lr * ((exact.sigmoid(z) - y) / B), bit for bit: over the float32 and float64 ranges
(every binade, beyond the clamp, subnormals, NaN, infinities and signed zeros), at every position of
arrays whose lengths are not multiples of a vector, and in the whole training of both dense models."""

import numpy as np
import pytest
import torch

from sgd_privacy.train import exact
from sgd_privacy.train import models as models_module
from sgd_privacy.train.batched import DeviceData, Runs, Schedule, train_batch
from sgd_privacy.train.fused import sigmoid_grad
from sgd_privacy.train.models import MLP, LogReg
from test_exact import sweep

SPECIAL = [float("nan"), float("inf"), -float("inf"), 0.0, -0.0, 1e-45, -1e-45, 1e-310, 88.7, -88.7, 710.0, -710.0]


def tensor_ops(z: torch.Tensor, y: torch.Tensor, lr: float) -> torch.Tensor:
    """What the trainer computed with tensor operations: lr times `Model.logit_grad`'s binary branch."""
    return lr * ((exact.sigmoid(z) - y.to(z.dtype)) / z.shape[1])


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
    got, want = sigmoid_grad(z, y, lr), tensor_ops(z, y, lr)
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
            got = sigmoid_grad(z, torch.ones(1, 1, n, dtype=torch.int64), 0.5).reshape(-1)
            assert torch.equal(got[(7 * k) % n], want[k]), (n, k)


def test_non_contiguous_logits_and_labels_are_read_in_their_logical_order():
    z = torch.randn(4, 6, 5, dtype=torch.float32).transpose(0, 2)  # (5, 6, 4), not contiguous
    y = torch.randint(0, 2, (4, 6, 5)).transpose(0, 2)
    assert torch.equal(sigmoid_grad(z, y, 0.3), tensor_ops(z, y, 0.3))


def vectors(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(301, 12)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=301) > 0).astype(np.int64)
    return {"x_train": x[:201], "y_train": y[:201], "x_val": x[201:], "y_val": y[201:]}


@pytest.mark.parametrize(
    ("model", "dtype"),
    [(LogReg(12), torch.float32), (MLP(12, 5, 0.3), torch.float32), (MLP(12, 5, 0.0), torch.float64)],
    ids=["logreg", "mlp-dropout", "mlp-float64"],
)
def test_training_with_the_compiled_gradient_equals_training_without_it(model, dtype, monkeypatch):
    """Two epochs of six runs over three seeds: weights and logged metrics bit for bit with the tensor
    operations (`compiled_here` off, as on a GPU)."""
    data = DeviceData.from_arrays(vectors(), torch.device("cpu"), dtype)
    runs, schedule = Runs(np.arange(6) % 3, 1 + np.arange(6) * 11, np.zeros(6, bool)), Schedule(0.4, 8, 2, 5)
    compiled = train_batch(model, data, runs, schedule)
    monkeypatch.setattr(models_module, "compiled_here", lambda t: False)
    plain = train_batch(model, data, runs, schedule)
    assert np.array_equal(compiled.weights, plain.weights)
    assert all(np.array_equal(compiled.metrics[k], plain.metrics[k], equal_nan=True) for k in plain.metrics)
