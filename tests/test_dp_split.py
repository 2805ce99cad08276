"""The DP study's member / non-member split: the halves by default, [OR]'s sizes through `dp.split_sizes`."""

import math

import numpy as np
import pytest

from sgd_privacy.config import ConfigError, load_schema, validate_config
from sgd_privacy.dp.settings import configurations
from sgd_privacy.dp.study import run_job, shadow_features
from sgd_privacy.dp.train import stratified_halves, study_split
from workflow_helpers import ROOT

pytestmark = pytest.mark.filterwarnings(
    "ignore:Secure RNG turned off", "ignore:Full backward hook", "ignore:Optimal order is the largest alpha"
)
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
Y_TRAIN = np.random.default_rng(1).integers(0, 10, 600)
Y_TEST = np.random.default_rng(2).integers(0, 10, 100)


def test_without_sizes_the_split_is_the_stratified_halves_with_every_member_challenged():
    split = study_split(Y_TRAIN, Y_TEST, 4)
    first, second = stratified_halves(Y_TRAIN, 4)
    np.testing.assert_array_equal(split.members, first)
    np.testing.assert_array_equal(split.shadow_members, second)
    np.testing.assert_array_equal(split.nonmembers, stratified_halves(Y_TEST, 5)[0])
    np.testing.assert_array_equal(split.shadow_nonmembers, stratified_halves(Y_TEST, 5)[1])
    np.testing.assert_array_equal(split.challenge, np.arange(len(first)))  # all members
    assert split.shadow_nonmembers_from == "test"
    assert validate_config({}, load_schema(SCHEMA))["dp"]["split_sizes"] == {}  # the default: halves everywhere


def test_sizes_give_disjoint_sets_of_the_asked_sizes_reproducibly():
    sizes = {"n_members": 500, "n_nonmembers": 100, "n_challenge_members": 100}  # [OR]'s 50,000 / 10,000 / 10,000
    split = study_split(Y_TRAIN, Y_TEST, 4, sizes)
    assert len(split.members) == 500 and len(split.nonmembers) == 100 and len(split.challenge) == 100
    np.testing.assert_array_equal(np.sort(split.nonmembers), np.arange(100))  # every test row is a non-member
    train_sets = (split.members, split.shadow_members, split.shadow_nonmembers)
    assert sum(len(s) for s in train_sets) == 600  # the 100 other training rows are the shadow model's
    np.testing.assert_array_equal(np.sort(np.concatenate(train_sets)), np.arange(600))  # disjoint, all used
    # stratified halves: per class the first half takes the odd row, so the sizes differ by at most 10 classes
    assert abs(len(split.shadow_members) - len(split.shadow_nonmembers)) <= 10
    assert split.shadow_nonmembers_from == "train"
    assert len(np.unique(split.challenge)) == 100 and split.challenge.max() < 500  # positions in members
    again = study_split(Y_TRAIN, Y_TEST, 4, sizes)
    for a, b in zip(vars(split).values(), vars(again).values(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = study_split(Y_TRAIN, Y_TEST, 5, sizes)
    assert not np.array_equal(split.members, other.members)
    # members are a uniform draw: over many seeds each training row is a member about 500 / 600 of the time
    counts = np.zeros(600)
    for seed in range(200):
        counts[study_split(Y_TRAIN, Y_TEST, seed, sizes).members] += 1
    assert abs(counts.mean() / 200 - 5 / 6) < 1e-12 and counts.min() > 200 * 5 / 6 - 6 * math.sqrt(200 * 5 / 36)
    # n_challenge_members null: every member is challenged
    all_in = study_split(Y_TRAIN, Y_TEST, 4, {"n_members": 500, "n_nonmembers": 50})
    np.testing.assert_array_equal(all_in.challenge, np.arange(500))


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({"n_members": 599, "n_nonmembers": 10}, r"dp\.split_sizes\.mnist'.*n_members 599 .*at most 598"),
        ({"n_members": 500, "n_nonmembers": 101}, r"dp\.split_sizes\.mnist'.*n_nonmembers 101 exceeds the 100 test"),
        (
            {"n_members": 500, "n_nonmembers": 10, "n_challenge_members": 501},
            r"dp\.split_sizes\.mnist'.*n_challenge_members 501 exceeds n_members 500",
        ),
    ],
)
def test_a_dataset_too_small_for_the_sizes_names_the_key(sizes, message):
    with pytest.raises(ConfigError, match=message):
        study_split(Y_TRAIN, Y_TEST, 0, sizes, "mnist")


def test_schema_rejects_an_unknown_or_missing_size():
    schema = load_schema(SCHEMA)
    with pytest.raises(ConfigError, match="n_member"):
        validate_config({"dp": {"split_sizes": {"mnist": {"n_member": 5, "n_nonmembers": 5}}}}, schema)
    with pytest.raises(ConfigError, match="n_nonmembers"):
        validate_config({"dp": {"split_sizes": {"mnist": {"n_members": 5}}}}, schema)


def test_run_job_attacks_the_challenge_members_and_tests_on_the_nonmembers():
    config = {
        "dp": {
            "shadow": {"epochs": 1, "batch_size": 16},
            "attack": {"epochs": 5},
            "defaults": {"dataset": "mnist5k", "epochs": 1, "batch_size": 8},
            "configurations": {"s": {"algorithm": "sgd"}},
            "split_sizes": {"mnist5k": {"n_members": 40, "n_nonmembers": 24, "n_challenge_members": 12}},
        }
    }
    dp = validate_config(config, load_schema(SCHEMA))["dp"]
    sizes = dp["split_sizes"]["mnist5k"]
    g = np.random.default_rng(0)
    arrays = {
        "x_train": g.random((64, 1, 16, 16), dtype=np.float32),
        "y_train": g.integers(0, 3, 64),
        "x_test": g.random((32, 1, 16, 16), dtype=np.float32),
        "y_test": g.integers(0, 3, 32),
    }
    arch = {"model": "cnn", "backbone_weights": None}
    shadow = shadow_features(arch, dp["shadow"], arrays, 0, "mnist5k", split_sizes=sizes)
    assert len(shadow) == 24 and 9 <= shadow["member"].sum() <= 15  # the 24 training rows left, stratified halves
    settings = {"delta": dp["delta"], "split_seed": 0, "attack": dp["attack"], "split": sizes}
    table, examples = run_job("s", configurations(dp)["s"], 0, arrays, shadow, settings)
    last = examples[examples["epoch"] == 1].groupby(["attack", "member"]).size()
    assert set(last.xs(True, level="member")) == {12} and set(last.xs(False, level="member")) == {24}
    # 5 (expected batches of 8 over 40 members) steps: the target trained on the 40 members
    assert table["test_accuracy"].mul(24).round(9).mod(1).eq(0).all()  # a fraction of the 24 non-members
    assert table["train_accuracy"].mul(40).round(9).mod(1).eq(0).all()  # a fraction of all 40 members
