"""What a training step asks of a device, counted on the CPU: aten ops (about one kernel launch each on a
GPU), host-device synchronisations and tensors made from host values, per model type, against a
budget, so that a change that would slow a GPU shows here first. Also the evaluation's chunks, sized
from the chunk's real model count, and the retry of a chunk that ran out of memory."""

import logging

import numpy as np
import pytest
import torch

import sgd_privacy.train.batched as batched_module
import sgd_privacy.train.models as models_module
from sgd_privacy.errors import TrainingError
from sgd_privacy.train.batched import DeviceData, Runs, Schedule, chunking, eval_rows, train_batch, train_many
from sgd_privacy.train.models import CNN, MLP, LogReg
from sgd_privacy.train.opcount import OpCounts

CPU = torch.device("cpu")
RUNS = Runs(np.arange(4) % 3, 1 + np.arange(4) * 5, np.zeros(4, bool))


def vectors(n_train=201, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_train + 100, 12)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return {"x_train": x[:n_train], "y_train": y[:n_train], "x_val": x[n_train:], "y_val": y[n_train:]}


def images():
    rng = np.random.default_rng(0)
    return {
        "x_train": rng.random((41, 2, 8, 8), dtype=np.float32),
        "y_train": rng.integers(0, 3, 41),
        "x_val": rng.random((10, 2, 8, 8), dtype=np.float32),
        "y_val": rng.integers(0, 3, 10),
    }


def counted(fn) -> OpCounts:
    counts = OpCounts()
    with counts:
        fn()
    return counts


# (model, data, ops per step budget, host syncs per step on the CPU), counted on the path a GPU takes
# (the compiled loops off, see `gpu_path`). Measured with torch 2.13.0: logistic regression 72.1
# ops a step (79.1 before the step's fix-ups and steps were reordered; 70.2 before the
# one-minibatch-per-seed step), the MLP with dropout 106.1 (107.1 before; 253.2 before the dropout
# hash's ~200 ops ran once per window of steps, and rng.hash32's seed-range check, CPU seeds only,
# with them), the CNN's fast path 173.6. A budget is the measurement + ~5%.
CASES = {
    "logreg": (LogReg(12), vectors, 76, 0),
    "mlp": (MLP(12, 5, 0.3), vectors, 112, 0),
    "cnn_fast": (CNN((2, 8, 8), 2, 3, "fast"), images, 183, 0),
}


def as_on_a_gpu(patch: pytest.MonkeyPatch) -> None:
    """The dense models' step as on a GPU: tensor operations where the CPU runs compiled loops
    (`sgd_privacy.train.fused`)."""
    patch.setattr(models_module, "compiled_here", lambda t: False)


@pytest.fixture
def gpu_path(monkeypatch):
    """The dense models' step as on a GPU (`as_on_a_gpu`)."""
    as_on_a_gpu(monkeypatch)


@pytest.mark.parametrize("name", CASES)
def test_a_training_step_stays_within_its_launch_and_transfer_budget(name, gpu_path):
    """Per step: the difference between training two epochs and one (logs at the first and last step
    only), over the steps of an epoch; the epoch's permutation is amortised over its steps."""
    model, arrays, op_budget, sync_budget = CASES[name]
    data = DeviceData.from_arrays(arrays(), CPU, torch.float32)
    spe = (len(data.x_train) - 1) // 8
    one, two = (counted(lambda e=e: train_batch(model, data, RUNS, Schedule(0.3, 8, e, 10**6))) for e in (1, 2))
    ops_per_step = (two.total - one.total) / spe
    assert 0.5 * op_budget < ops_per_step <= op_budget, ops_per_step
    assert (two.syncs - one.syncs) <= sync_budget * spe + 1  # + the epoch's permutation (CPU-only seed check)
    assert two.from_host - one.from_host <= 1  # the epoch number of the permutation: nothing per step
    assert two.transfers == 0


@pytest.mark.parametrize("model", [LogReg(12), MLP(12, 5, 0.3)], ids=["logreg", "mlp"])
def test_on_the_cpu_the_dense_step_is_two_products_around_one_compiled_loop(model):
    """The CPU's path (`sgd_privacy.train.fused`): no host read a step (the compiled loop reads the
    replaced positions itself, no `nonzero`), and far fewer operations than a GPU's path; its weights
    against the GPU's path are tests/test_fused.py's."""
    data = DeviceData.from_arrays(vectors(), CPU, torch.float32)
    spe = (len(data.x_train) - 1) // 8
    one, two = (counted(lambda e=e: train_batch(model, data, RUNS, Schedule(0.3, 8, e, 10**6))) for e in (1, 2))
    assert two.ops["nonzero"] == one.ops["nonzero"] == 0
    assert two.syncs - one.syncs == 1  # the epoch's permutation (CPU-only seed check)
    assert two.ops["bmm"] - one.ops["bmm"] == 2 * spe  # the forward and the weight-gradient products
    with pytest.MonkeyPatch.context() as patch:
        as_on_a_gpu(patch)
        gpu_one, gpu_two = (
            counted(lambda e=e: train_batch(model, data, RUNS, Schedule(0.3, 8, e, 10**6))) for e in (1, 2)
        )
    assert (two.total - one.total) < 0.5 * (gpu_two.total - gpu_one.total)


def test_the_mlp_step_copies_no_python_number_to_the_device(gpu_path):
    """The dropout hash gets the step as a device tensor (issue: two host-to-device copies per step); on a
    GPU's path (the CPU's compiled loop wraps its numpy result as a tensor, a `lift_fresh` of no copy)."""
    data = DeviceData.from_arrays(vectors(), CPU, torch.float32)
    spe = (len(data.x_train) - 1) // 8
    model = MLP(12, 5, 0.3)
    one, two = (counted(lambda e=e: train_batch(model, data, RUNS, Schedule(0.3, 8, e, 10**6))) for e in (1, 2))
    assert two.ops["lift_fresh"] - one.ops["lift_fresh"] <= 1 < spe


def test_an_evaluation_is_one_chunk_when_the_real_chunk_fits():
    """2 runs at a 1 MiB budget, b = 64: the budget's model limit is 6 models (76,632 bytes each with the
    2,001 rows' permutations), whose evaluation rows (524,288 // (4 x 16 x 6) = 1,365) would split 2,001
    rows in two chunks; sized from the real chunk of 2 models (4,096 rows) it is one, as for 201 rows."""
    model, schedule, runs = LogReg(12), Schedule(0.3, 64, 1, 10), RUNS.take(slice(0, 2))
    assert chunking(model, schedule, 2001, 1, 4) == (6, 1365)
    assert eval_rows(model, 2, 2001, 1, 4) == 2001
    per_log = []
    for n in (201, 2001):
        data = DeviceData.from_arrays(vectors(n), CPU, torch.float32)
        steps = (n - 1) // 64
        # cadence = steps logs at 0 and at the last step, cadence 10**6 at 0 only: one evaluation apart
        logged = [
            counted(lambda c=c, d=data: train_many(model, d, runs, Schedule(0.3, 64, 1, c), budget_mb=1, progress=None))
            for c in (steps, 10**6)
        ]
        per_log.append(logged[0].total - logged[1].total)
    assert per_log[0] == per_log[1] < 200  # one chunk each (two chunks: 41 ops more)


def test_out_of_memory_retries_at_half_size_with_identical_bits(monkeypatch, caplog):
    """The first chunk's first attempt runs out of memory (injected); the job goes on with chunks of half
    the size, logs it, and every run's weights equal those of an un-split run bit for bit."""
    data = DeviceData.from_arrays(vectors(), CPU, torch.float32)
    model, schedule = MLP(12, 5, 0.3), Schedule(0.3, 8, 2, 13)
    runs = Runs(np.arange(6) % 4, 1 + np.arange(6) * 7, np.zeros(6, bool))
    whole = train_batch(model, data, runs, schedule)
    real, sizes = batched_module.train_batch, []

    def flaky(model, data, runs, *args, **kwargs):
        sizes.append(len(runs))
        if len(sizes) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, data, runs, *args, **kwargs)

    monkeypatch.setattr(batched_module, "train_batch", flaky)
    with caplog.at_level(logging.WARNING, logger="sgd_privacy.train.batched"):
        split = train_many(model, data, runs, schedule, progress=None)
    assert sizes == [6, 3, 3]
    assert "out of memory training 6 models at once; retrying them 3 at a time" in caplog.text
    assert np.array_equal(split.weights, whole.weights)
    assert np.array_equal(split.diverged, whole.diverged)
    for name, values in whole.metrics.items():
        np.testing.assert_allclose(split.metrics[name], values, rtol=1e-6)


def test_one_model_out_of_memory_stops_with_the_fix(monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(batched_module, "train_batch", oom)
    data = DeviceData.from_arrays(vectors(), CPU, torch.float32)
    with pytest.raises(
        TrainingError, match="one model does not fit in the device's memory .*lower training.batch_size"
    ):
        train_many(LogReg(12), data, RUNS, Schedule(0.3, 8, 1, 10), progress=None)


def test_the_budget_on_cuda_is_capped_by_free_gpu_memory(monkeypatch):
    from sgd_privacy.train.batched import device_budget_mb

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000 * 2**20, 80_000 * 2**20))
    assert device_budget_mb(60_000, torch.device("cuda")) == 900.0  # 90% of the 1,000 MiB free
    assert device_budget_mb(500, torch.device("cuda")) == 500
    assert device_budget_mb(60_000, CPU) == 60_000  # the CPU: the configured budget alone
