"""Grid planning: shards tile the grid, and growing it leaves finished shards untouched."""

import copy

import numpy as np
import pytest

from sgd_privacy.data import DataError
from sgd_privacy.train.grid import (
    Shard,
    plan_shards,
    resolve_replace,
    sampled_replace_indices,
    shard_runs,
    shard_spec,
    training_slice,
)

EXP = {
    "dataset": "digits_binary",
    "model": "logreg",
    "lr": 0.5,
    "batch_size": 32,
    "epochs": 2,
    "cadence": 5,
    "log_weights_at": None,
    "seeds": 7,
    "replace_indices": 5,
    "replace_seed": 0,
    "init_modes": ["variable", "fixed"],
    "fixed_init_seed": 0,
    "hidden": 10,
    "dropout": 0.2,
    "cnn_size": 16,
    "shard": {"seeds": 3, "replace_indices": 2},
}


def all_runs(exp, n_base=100):
    runs = set()
    for shard in plan_shards(exp):
        seeds, replace, fixed = shard_runs(shard_spec(exp, shard), n_base)
        runs |= {(int(s), int(r), bool(f)) for s, r, f in zip(seeds, replace, fixed, strict=True)}
    return runs


def test_shards_tile_the_grid_exactly_once():
    shards = plan_shards(EXP)
    assert len(shards) == 3 * 3 * 2  # ceil(7/3) seed blocks, ceil(5/2) replace blocks, 2 init modes
    total = sum(len(shard_runs(shard_spec(EXP, s), 100)[0]) for s in shards)
    runs = all_runs(EXP)
    assert total == len(runs) == 7 * 5 * 2
    assert {s for s, _, _ in runs} == set(range(7))


def test_growing_the_grid_keeps_existing_shard_specs():
    grown = copy.deepcopy(EXP)
    grown["seeds"], grown["replace_indices"] = 9, 6
    before = {s.name: shard_spec(EXP, s) for s in plan_shards(EXP)}
    after = {s.name: shard_spec(grown, s) for s in plan_shards(grown)}
    # complete blocks are unchanged; only the partial last blocks and new blocks differ
    unchanged = [n for n in before if after.get(n) == before[n]]
    assert {"s0_r0_variable", "s1_r1_fixed", "s0_r1_variable"} <= set(unchanged)
    assert all_runs(EXP) < all_runs(grown)


def test_sampled_replace_indices_are_prefix_stable_and_valid():
    first = sampled_replace_indices(1000, 3, 10)
    assert np.array_equal(sampled_replace_indices(1000, 3, 20)[:10], first)
    assert len(set(first)) == 10 and first.min() >= 1 and first.max() <= 999
    assert not np.array_equal(first, sampled_replace_indices(1000, 4, 10))
    with pytest.raises(ValueError, match="asked for 12 replace indices but the base set has only 9"):
        sampled_replace_indices(10, 0, 12)


def test_explicit_replace_lists_are_checked():
    exp = {**EXP, "replace_indices": [5, 0]}
    spec = shard_spec(exp, Shard(0, 0, "variable"))
    with pytest.raises(DataError, match="replace index 0 is invalid"):
        resolve_replace(spec, 100)


def test_training_slice_holds_only_what_changes_weights():
    logreg = training_slice(EXP, "float32")
    assert "hidden" not in logreg and "seeds" not in logreg and "shard" not in logreg and "T" not in logreg
    mlp = training_slice({**EXP, "model": "mlp"}, "float32")
    assert mlp["hidden"] == 10 and mlp["dropout"] == 0.2
    assert Shard.parse("s3_r12_fixed") == Shard(3, 12, "fixed")
    with pytest.raises(ValueError, match="not a shard name"):
        Shard.parse("s3_r12")
