"""The Henze-Zirkler power simulation: the test's size under normals and its power against a Laplace."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sgd_privacy.analysis import hz_power


@pytest.fixture(scope="module")
def power():
    sim = hz_power.simulate([2], [150], replicates=40, seed=0)
    return sim, hz_power.power_table(sim).set_index("distribution")


def test_the_test_keeps_its_level_under_normals_and_rejects_a_laplace(power):
    _, table = power
    # a Laplace has excess kurtosis 3: with 150 samples in 2 dimensions HZ rejects nearly always
    assert table.loc["laplace", "power"] >= 0.8
    for normal in ("normal_full", "normal_diagonal"):
        # the size is 5%: 40 replicates reject more than 8 times with probability < 0.005
        assert table.loc[normal, "power"] <= 0.2
    assert (table["replicates"] == 40).all()
    assert (table["power_lo"] <= table["power"]).all() and (table["power"] <= table["power_hi"]).all()


def test_replicates_are_seeded_and_dimension_at_least_seeds_is_not_tested(power):
    sim, _ = power
    again = hz_power.simulate([2], [150], replicates=40, seed=0)
    assert np.array_equal(sim["p_value"].to_numpy(), again["p_value"].to_numpy())
    small = hz_power.power_table(hz_power.simulate([5], [5], replicates=2))
    assert small["replicates"].eq(0).all() and small["power"].map(math.isnan).all()


def test_inverse_wishart_draws_have_full_covariance():
    x = hz_power.draw("normal_full", 20000, 3, np.random.default_rng(0))
    cov = np.cov(x, rowvar=False)
    off = cov[~np.eye(3, dtype=bool)]
    assert np.abs(off).max() > 0.05 * np.sqrt(np.diag(cov)).min() ** 2  # correlated coordinates


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="unknown distribution 'cauchy'"):
        hz_power.draw("cauchy", 10, 2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="hz_power.replicates must be >= 1"):
        hz_power.simulate([2], [10], replicates=0)
