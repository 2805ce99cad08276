"""The vectorised trainer against the plain reference trainer, and its determinism contract."""

import numpy as np
import pytest
import torch
from scipy import stats

from sgd_privacy.data import SourceContext, prepare_dataset
from sgd_privacy.errors import TrainingError
from sgd_privacy.rng import Purpose, permutation
from sgd_privacy.train.batched import DeviceData, Runs, Schedule, train_batch, train_many
from sgd_privacy.train.models import CNN, build_model, flatten, unflatten
from sgd_privacy.train.reference import train_reference

F64 = torch.float64


@pytest.fixture(scope="module")
def digits():
    return prepare_dataset("digits_binary", None, SourceContext()).arrays


def images(n=40, n_val=10, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.random((n, 1, 8, 8)).astype(np.float32),
        "y_train": rng.integers(0, 3, n),
        "x_val": rng.random((n_val, 1, 8, 8)).astype(np.float32),
        "y_val": rng.integers(0, 3, n_val),
        "x_test": rng.random((4, 1, 8, 8)).astype(np.float32),
        "y_test": np.array([0, 1, 2, 0]),
    }


def batched(model, arrays, runs, schedule, fixed=None):
    return train_batch(model, DeviceData.from_arrays(arrays, torch.device("cpu"), F64), runs, schedule, fixed)


def relative_error(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("model_name, tolerance", [("logreg", 1e-9), ("mlp", 1e-9)])
def test_batched_matches_reference_in_float64(digits, model_name, tolerance):
    model = build_model(model_name, digits["x_train"].shape[1:], 2, hidden=6, dropout=0.2)
    schedule = Schedule(lr=0.5, batch_size=8, epochs=10, cadence=32)  # 32 steps/epoch: 320 steps
    runs = Runs(np.array([0, 3, 3, 11]), np.array([1, 5, 200, 5]), np.array([False, False, True, False]))
    fixed = model.init(torch.tensor([42]), Purpose.FIXED_INIT, F64)
    result = batched(model, digits, runs, schedule, fixed)
    assert result.steps[-1] == 320
    for k in range(len(runs)):
        ref = train_reference(
            model, digits, int(runs.seeds[k]), int(runs.replace[k]), schedule, fixed if runs.fixed[k] else None
        )
        assert relative_error(result.weights[k], ref.weights[0]) < tolerance
        for name in ("train_loss", "val_loss", "train_acc", "val_acc"):
            np.testing.assert_allclose(result.metrics[name][k], ref.metrics[name][0], rtol=1e-9, atol=1e-12)
    assert relative_error(result.weights[0, -1], result.weights[0, 0]) > 0.1  # it really trained


def test_cnn_batched_matches_reference():
    arrays = images()
    model = CNN((1, 8, 8), size=2, n_classes=3)
    schedule = Schedule(lr=0.1, batch_size=4, epochs=25, cadence=50)  # 9 steps/epoch: 225 steps
    runs = Runs(np.array([0, 1, 1]), np.array([1, 2, 30]), np.zeros(3, bool))
    result = batched(model, arrays, runs, schedule)
    for k in range(3):
        ref = train_reference(model, arrays, int(runs.seeds[k]), int(runs.replace[k]), schedule)
        assert relative_error(result.weights[k], ref.weights[0]) < 1e-7


def test_cnn_parameter_count_matches_the_study():
    assert CNN((3, 32, 32), 16, 10).n_params == 82_554


def test_flatten_round_trip(digits):
    model = build_model("mlp", (64,), 2, hidden=5, dropout=0.2)
    params = model.init(torch.arange(3), Purpose.INIT, F64)
    back = unflatten(model, flatten(params))
    assert all(torch.equal(a, b) for a, b in zip(params, back, strict=True))


def test_glorot_init_statistics():
    model = build_model("logreg", (2000,), 2)
    w = model.init(torch.arange(20), Purpose.INIT, F64)[0].numpy().ravel()
    limit = np.sqrt(6 / 2001)
    assert np.abs(w).max() <= limit and abs(w.mean()) < 0.01 * limit
    np.testing.assert_allclose(w.var(), limit**2 / 3, rtol=0.02)  # variance of U(-a, a)


def test_grouping_does_not_change_results(digits, monkeypatch):
    """The same run trained alone, in another batch, or in chunks gives bit-identical weights."""
    model = build_model("mlp", digits["x_train"].shape[1:], 2, hidden=6, dropout=0.2)
    schedule = Schedule(lr=0.5, batch_size=8, epochs=3, cadence=16)
    data = DeviceData.from_arrays(digits, torch.device("cpu"), torch.float32)
    big = Runs(np.arange(9) % 4, 1 + np.arange(9) * 7, np.zeros(9, bool))
    together = train_batch(model, data, big, schedule)
    alone = train_batch(model, data, big.take(slice(5, 6)), schedule)
    import sgd_privacy.train.batched as batched_module

    monkeypatch.setattr(batched_module, "chunking", lambda *args: (4, 50))  # chunks of 4 models, 50 eval rows
    messages = []
    chunked = train_many(model, data, big, schedule, progress=messages.append)
    assert len(messages) == 3 * schedule.epochs  # one per epoch of each of the three chunks
    assert messages[0].startswith("trained 1/9 models (epoch 1/3 of models 1-4)")
    assert messages[-1].startswith("trained 9/9 models (epoch 3/3 of models 9-9)") and "ETA 0 s" in messages[-1]
    assert np.array_equal(together.weights[5], alone.weights[0])
    assert np.array_equal(together.weights, chunked.weights)
    other = Runs(np.array([5, 1, 3]), np.array([3, 36, 2]), np.zeros(3, bool))  # run (1, 36) among other runs
    mixed = train_batch(model, data, other, schedule)
    assert np.array_equal(mixed.weights[1], together.weights[5])


@pytest.mark.parametrize("model_name", ["logreg", "mlp"])
def test_seed_blocks_do_not_change_a_runs_bits(digits, monkeypatch, model_name):
    """The one-minibatch-per-seed step: a run's weights are bit-identical whether its seed's runs are
    trained together (20 runs of seed 7: two blocks), alone, in another order (other columns of the
    block), split across chunks, mixed with other seeds, with fixed- and variable-init runs of one seed
    side by side, and at 1, 2 or 3 threads; its metrics agree to rounding."""
    model = build_model(model_name, digits["x_train"].shape[1:], 2, hidden=6, dropout=0.2)
    schedule = Schedule(lr=0.5, batch_size=8, epochs=2, cadence=16)  # B = 8: 9-row products
    data = DeviceData.from_arrays(digits, torch.device("cpu"), torch.float32)
    fixed_init = model.init(torch.tensor([99]), Purpose.FIXED_INIT, torch.float32)
    n = len(digits["x_train"])
    seeds = np.array([7] * 20 + [2, 5, 2])
    replace = np.array([*(1 + np.arange(20) * 13 % (n - 1)), 4, 4, 200])
    fixed = np.array([k % 3 == 0 for k in range(20)] + [False, True, False])
    runs = Runs(seeds, replace, fixed)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        together = train_batch(model, data, runs, schedule, fixed_init)
        order = np.arange(len(runs))[::-1].copy()
        reversed_ = train_batch(model, data, Runs(seeds[order], replace[order], fixed[order]), schedule, fixed_init)
        import sgd_privacy.train.batched as batched_module

        monkeypatch.setattr(batched_module, "chunking", lambda *args: (6, 50))  # seed 7 split over 4 chunks
        chunked = train_many(model, data, runs, schedule, fixed_init, progress=None)
        results = {"reversed": (reversed_, order), "chunked": (chunked, np.arange(len(runs)))}
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            for k in (0, 3, 19, 21):
                alone = train_batch(model, data, runs.take(slice(k, k + 1)), schedule, fixed_init)
                results[f"run {k} alone, {threads} threads"] = (alone, np.array([k]))
            mixed_idx = np.array([21, 5, 22, 19])  # seeds 5, 7, 2, 7
            mixed = train_batch(
                model, data, Runs(seeds[mixed_idx], replace[mixed_idx], fixed[mixed_idx]), schedule, fixed_init
            )
            results[f"mixed, {threads} threads"] = (mixed, mixed_idx)
    finally:
        torch.set_num_threads(before)
    assert not np.array_equal(together.weights[:, -1], together.weights[:, 0])  # it trained
    assert not np.array_equal(together.weights[0, -1], together.weights[1, -1])  # runs of one seed differ
    for name, (result, idx) in results.items():
        assert np.array_equal(result.weights, together.weights[idx]), name
        for metric, values in result.metrics.items():
            np.testing.assert_allclose(values, together.metrics[metric][idx], rtol=1e-5, atol=1e-6, err_msg=name)


def test_cnn_grouping_does_not_change_results():
    arrays = images(seed=3)
    model = CNN((1, 8, 8), size=2, n_classes=3)
    schedule = Schedule(lr=0.1, batch_size=4, epochs=3, cadence=9)
    data = DeviceData.from_arrays(arrays, torch.device("cpu"), torch.float32)
    runs = Runs(np.array([0, 1, 2, 3, 4]), np.array([1, 2, 3, 4, 5]), np.zeros(5, bool))
    together = train_batch(model, data, runs, schedule)
    alone = train_batch(model, data, runs.take(slice(2, 3)), schedule)
    assert np.array_equal(together.weights[2], alone.weights[0])


def test_neighbouring_runs_diverge_only_once_i_or_j_is_drawn(digits):
    model = build_model("logreg", digits["x_train"].shape[1:], 2)
    schedule = Schedule(lr=0.5, batch_size=8, epochs=2, cadence=1)
    i, j, seed = 40, 97, 6
    result = batched(model, digits, Runs(np.array([seed, seed]), np.array([i, j]), np.zeros(2, bool)), schedule)
    n_rows, b = len(digits["x_train"]) - 1, 8
    spe = n_rows // b
    first = None
    for epoch in range(schedule.epochs):
        perm = permutation(seed, Purpose.PERMUTATION, epoch, n_rows).numpy()[: spe * b].reshape(spe, b)
        hits = np.flatnonzero(np.isin(perm, [i - 1, j - 1]).any(axis=1))
        if hits.size:
            first = epoch * spe + int(hits[0])
            break
    assert first is not None
    same = np.all(result.weights[0] == result.weights[1], axis=1)  # per logged step t
    assert same[: first + 1].all()  # weights logged before step `first` runs are identical
    assert not same[first + 1]  # the step that draws position i-1 or j-1 separates them


def test_too_large_learning_rate_is_flagged_diverged(digits):
    model = build_model("mlp", digits["x_train"].shape[1:], 2, hidden=6, dropout=0.0)
    data = DeviceData.from_arrays(digits, torch.device("cpu"), torch.float32)
    runs = Runs(np.array([0, 1]), np.array([1, 2]), np.zeros(2, bool))
    bad = train_batch(model, data, runs, Schedule(lr=1e38, batch_size=8, epochs=2, cadence=8))
    assert bad.diverged.all()
    good = train_batch(model, data, runs, Schedule(lr=0.5, batch_size=8, epochs=2, cadence=8))
    assert not good.diverged.any()


def test_weights_kept_only_at_configured_steps(digits):
    model = build_model("logreg", digits["x_train"].shape[1:], 2)
    schedule = Schedule(lr=0.5, batch_size=8, epochs=2, cadence=10, log_weights_at=(0, 33, 64))
    result = batched(model, digits, Runs(np.array([0]), np.array([1]), np.zeros(1, bool)), schedule)
    assert result.weight_steps.tolist() == [0, 33, 64]
    assert 33 in result.steps.tolist() and 30 in result.steps.tolist()
    assert result.weights.shape == (1, 3, model.n_params)


def test_chunking_hand_computed():
    from sgd_privacy.train.batched import chunking

    # logistic regression on 12 features, b = 32, float32, 1 MiB: half of it (524,288 bytes) for training;
    # a model takes 4 bytes x (6 x 13 parameters + 3 x 16 activations x 32 examples) = 6,456 bytes, plus
    # 4 int64 permutation rows of 1000 entries (32,000 bytes) = 38,456 bytes, so 13 models (499,928 bytes;
    # 14 would need 538,384); evaluation: 524,288 // (4 x 16 x 13) = 630 rows
    model = build_model("logreg", (12,), 2)
    schedule = Schedule(lr=0.1, batch_size=32, epochs=1, cadence=10)
    assert chunking(model, schedule, 1000, budget_mb=1, itemsize=4) == (13, 630)
    # 50 rows: 6,456 + 1,600 = 8,056 bytes a model, 65 models; never more evaluation rows than exist
    assert chunking(model, schedule, 50, budget_mb=1, itemsize=4) == (65, 50)
    # float64: 12,912 + 32,000 = 44,912 bytes a model, 11 models; 524,288 // (8 x 16 x 11) = 372 rows
    assert chunking(model, schedule, 1000, budget_mb=1, itemsize=8) == (11, 372)
    cnn = CNN((3, 32, 32), 16, 10)
    assert chunking(cnn, schedule, 13_500, budget_mb=1, itemsize=4) == (1, 16)  # floors: one model, 16 rows


# ------------------------------------------------------------------ the random draws, computed independently
M32 = 0xFFFFFFFF
HASH_0_1_0_0, HASH_MAX_4_12345_7 = 2257115219, 1686475010


def mix32(x):
    """The xorshift-multiply finaliser on plain Python ints."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x68E31DA5) & M32
    return x ^ (x >> 16)


def plain_hash(seed, purpose, step, index):
    """Counter hash of (seed, purpose, step, index) written out in plain ints."""
    h = mix32(seed ^ 0x9E3779B9)
    h = mix32(h ^ purpose)
    h = mix32(h ^ (step & M32))
    salt = mix32(h ^ 0x9E3779B9)
    return mix32(mix32(h ^ (index & M32)) ^ salt)


def plain_uniform(seed, purpose, step, index):
    """53-bit uniform: 26 bits of hash(2i) then 27 bits of hash(2i + 1)."""
    hi = plain_hash(seed, purpose, step, 2 * index) >> 6
    lo = plain_hash(seed, purpose, step, 2 * index + 1) >> 5
    return (hi * 2**27 + lo) * 2.0**-53


def test_counter_hash_matches_plain_integer_arithmetic():
    from sgd_privacy.rng import hash32, uniform

    # two values pinned as literals (computed once with plain_hash), so a change of either side fails
    assert plain_hash(0, 1, 0, 0) == HASH_0_1_0_0 and plain_hash(2**32 - 1, 4, 12345, 7) == HASH_MAX_4_12345_7
    for seed, purpose, step, index in [
        (0, 1, 0, 0),
        (2**32 - 1, 4, 12345, 7),
        (42, 3, 2**33 + 5, 2**31),
        (7, 9, 1, 99),
    ]:
        assert int(hash32(seed, purpose, step, index)) == plain_hash(seed, purpose, step, index)
        assert float(uniform(seed, purpose, step, torch.tensor([index]))[0]) == plain_uniform(
            seed, purpose, step, index
        )


def test_glorot_init_values_from_the_hash():
    model = build_model("logreg", (8,), 2)
    w, b = model.init(torch.tensor([0, 5]), Purpose.INIT, F64)
    limit = (6 / (8 + 1)) ** 0.5  # Glorot uniform: fan_in 8, fan_out 1
    for row, seed in enumerate((0, 5)):
        expected = [(2 * plain_uniform(seed, int(Purpose.INIT), 0, i) - 1) * limit for i in range(8)]
        np.testing.assert_allclose(w[row, :, 0].numpy(), expected, rtol=0, atol=1e-15)
    assert (w.abs() <= limit).all() and (b == 0).all()


def test_permutations_are_valid_and_uniform():
    from sgd_privacy.rng import permutations

    n, seeds = 6, torch.arange(6000)
    perms = permutations(seeds, Purpose.PERMUTATION, 3, n).numpy()
    assert (np.sort(perms, axis=1) == np.arange(n)).all()  # every row a permutation
    # order of range(n) by its plain-int hash keys (ties impossible: the hash is bijective in the index)
    for seed in (0, 17, 5999):
        keys = [plain_hash(seed, int(Purpose.PERMUTATION), 3, i) for i in range(n)]
        assert perms[seed].tolist() == sorted(range(n), key=keys.__getitem__)
    # every element at every position equally often: chi-square on the 6 x 6 table, 25 dof
    counts = np.zeros((n, n))
    np.add.at(counts, (perms, np.broadcast_to(np.arange(n), perms.shape)), 1)
    chi2 = ((counts - len(seeds) / n) ** 2 / (len(seeds) / n)).sum()
    assert stats.chi2.sf(chi2, (n - 1) ** 2) > 1e-3


def test_dropout_masks_rate_and_values():
    from sgd_privacy.train.models import dropout_keep

    keep = dropout_keep(torch.tensor([3, 8]), 11, 64, 50, 0.2, F64).numpy()
    assert keep.shape == (2, 64, 50) and set(np.unique(keep)) == {0.0, 1.25}  # inverted dropout: 1 / (1 - 0.2)
    dropped = (keep == 0).mean()
    assert abs(dropped - 0.2) < 4 * (0.2 * 0.8 / keep.size) ** 0.5  # Binomial(6400, 0.2), 4 standard errors
    for r, seed in enumerate((3, 8)):
        for unit in (0, 1, 3199):
            expected = 1.25 if plain_uniform(seed, int(Purpose.DROPOUT), 11, unit) >= 0.2 else 0.0
            assert keep[r].reshape(-1)[unit] == expected


def test_model_errors_name_the_problem():
    with pytest.raises(ValueError, match="model 'cnn' needs image inputs"):
        build_model("cnn", (50,), 2, cnn_size=4)
    with pytest.raises(ValueError, match="model 'logreg' needs feature vectors"):
        build_model("logreg", (1, 28, 28), 10)
    with pytest.raises(ValueError, match="model 'mlp' is binary, the dataset has 10 classes"):
        build_model("mlp", (50,), 10, hidden=4, dropout=0.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_gpu_is_explained():
    from sgd_privacy.train.shard import pick_device

    with pytest.raises(TrainingError, match="training.device is 'cuda' but PyTorch sees no GPU"):
        pick_device("cuda")
    assert pick_device("auto", {}).type == "cpu"


@pytest.mark.parametrize("model_name", ["logreg", "mlp"])
def test_dense_trainers_bits_do_not_depend_on_the_thread_count(digits, model_name):
    """The same runs trained with 1, 2 and 3 torch threads: bit-identical weights and metrics (the
    README's CPU contract; only the CNN's was tested before). The caller's thread count is restored."""
    model = build_model(model_name, digits["x_train"].shape[1:], 2, hidden=16, dropout=0.2)
    schedule = Schedule(lr=0.5, batch_size=16, epochs=2, cadence=20)
    data = DeviceData.from_arrays(digits, torch.device("cpu"), torch.float32)
    runs = Runs(np.arange(12) % 5, 1 + np.arange(12) * 11, np.zeros(12, bool))
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            results.append(train_batch(model, data, runs, schedule))
    finally:
        torch.set_num_threads(before)
    assert not np.array_equal(results[0].weights[:, -1], results[0].weights[:, 0])  # it trained
    for result in results[1:]:
        assert np.array_equal(result.weights, results[0].weights)
        for name, values in results[0].metrics.items():
            assert np.array_equal(result.metrics[name], values), name
