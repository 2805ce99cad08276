"""Neighbouring datasets D_i (docs/methods.md, section 2)."""

import itertools

import numpy as np
import pytest
import torch

from sgd_privacy.data import DataError, check_replace_indices, neighbour_index, neighbour_rows


def test_structure_of_one_neighbour():
    idx = neighbour_index(6, 3)
    assert idx.tolist() == [1, 2, 0, 4, 5]  # x_3 overwritten by x_0, row 0 deleted


@pytest.mark.parametrize("n", [5, 9])
def test_pairs_differ_in_exactly_one_example(n):
    sets = {i: neighbour_index(n, i) for i in range(1, n)}
    for i, j in itertools.combinations(range(1, n), 2):
        a, b = sets[i], sets[j]
        assert len(a) == len(b) == n - 1
        differ = np.flatnonzero(a != b)
        assert differ.tolist() == [i - 1, j - 1]  # every other row keeps its position
        assert sorted(set(a) ^ set(b)) == [i, j]  # as sets: one example swapped for another
        assert 0 in a and i not in a and 0 in b and j not in b


def test_batched_rows_match_index_arrays():
    n = 11
    positions = torch.randint(0, n - 1, (4, 7))
    replace = torch.tensor([1, 4, 10, 4])
    rows = neighbour_rows(positions, replace)
    for m in range(4):
        expected = neighbour_index(n, int(replace[m]))[positions[m].numpy()]
        assert rows[m].tolist() == expected.tolist()


def test_replace_index_zero_is_rejected():
    with pytest.raises(DataError, match="replace index 0 is invalid.*index 0 is the row that replaces x_i"):
        neighbour_index(10, 0)
    with pytest.raises(DataError, match="replace index 10 is invalid: replace indices lie in 1..9"):
        check_replace_indices([3, 10], 10)
