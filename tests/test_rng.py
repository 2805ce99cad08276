"""Counter-based random streams."""

import numpy as np
import torch
from scipy import stats

from sgd_privacy.rng import MASK32, Purpose, hash32, permutation, permutations, uniform


def test_hash_is_a_pure_function_and_bijective_in_index():
    idx = torch.arange(100_000)
    a = hash32(7, Purpose.PERMUTATION, 3, idx)
    assert torch.equal(a, hash32(7, Purpose.PERMUTATION, 3, idx))
    assert len(torch.unique(a)) == len(idx) and int(a.min()) >= 0 and int(a.max()) <= MASK32
    assert not torch.equal(a, hash32(8, Purpose.PERMUTATION, 3, idx))
    assert not torch.equal(a, hash32(7, Purpose.DROPOUT, 3, idx))
    assert not torch.equal(a, hash32(7, Purpose.PERMUTATION, 4, idx))


def test_broadcasting_equals_elementwise():
    seeds = torch.tensor([0, 5, 2**32 - 1]).reshape(-1, 1)
    idx = torch.arange(6).reshape(1, -1)
    grid = hash32(seeds, Purpose.INIT, 1, idx)
    for r, s in enumerate(seeds.flatten().tolist()):
        for c in range(6):
            assert int(grid[r, c]) == int(hash32(s, Purpose.INIT, 1, c))


def test_uniform_is_uniform_and_independent_across_streams():
    u = uniform(3, Purpose.INIT, 0, torch.arange(200_000)).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    v = uniform(4, Purpose.INIT, 0, torch.arange(200_000)).numpy()
    assert abs(np.corrcoef(u, v)[0, 1]) < 0.01
    lag = np.corrcoef(u[:-1], u[1:])[0, 1]
    assert abs(lag) < 0.01


def test_permutations_are_valid_and_match_single_seed_version():
    seeds = torch.tensor([0, 1, 99])
    perms = permutations(seeds, Purpose.PERMUTATION, 2, 1000)
    for k, s in enumerate(seeds.tolist()):
        assert sorted(perms[k].tolist()) == list(range(1000))
        assert torch.equal(perms[k], permutation(s, Purpose.PERMUTATION, 2, 1000))
    assert not torch.equal(perms[0], perms[1])
    # position of element 0 is uniform over seeds
    firsts = permutations(torch.arange(4000), Purpose.PERMUTATION, 0, 10)[:, 0].numpy()
    assert stats.chisquare(np.bincount(firsts, minlength=10)).pvalue > 1e-3


def test_seeds_out_of_range_are_rejected():
    import pytest

    with pytest.raises(ValueError, match=r"seeds must lie in \[0, 2\*\*32\)"):
        hash32(-1, Purpose.INIT, 0, 0)
    with pytest.raises(ValueError, match="seeds must lie"):
        hash32(torch.tensor([1, 2**32]), Purpose.INIT, 0, 0)
