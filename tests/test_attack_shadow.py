"""Per-class threshold and neural-network shadow attacks, checked on constructed inputs with known answers."""

import numpy as np
import pytest
import torch

from sgd_privacy.attacks.shadow import (
    attack_metrics,
    attack_scores,
    class_threshold_scores,
    class_thresholds,
    confidence_features,
    evaluate_attacks,
    fit_attack,
)


def test_class_thresholds_are_per_class_mean_training_losses():
    losses = np.array([0.1, 0.3, 2.0, 4.0, 1.0])
    labels = np.array([0, 0, 1, 1, 2])
    # class 3 has no training example: the overall mean 7.4 / 5
    np.testing.assert_allclose(class_thresholds(losses, labels, 4), [0.2, 3.0, 1.0, 1.48])


def test_class_threshold_scores_decide_member_when_loss_at_most_its_class_threshold():
    scores = class_threshold_scores(np.array([0.2, 0.25, 3.0, 3.5]), np.array([0, 0, 1, 1]), np.array([0.2, 3.0]))
    np.testing.assert_allclose(scores, [0.0, -0.05, 0.0, -0.5])
    assert list(scores >= 0) == [True, False, True, False]


def test_confidence_features_are_sorted_top_k():
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    np.testing.assert_allclose(confidence_features(probs, 2), [[0.7, 0.2], [0.5, 0.3]])
    assert confidence_features(probs, 10).shape == (2, 3)


def _probs(top: np.ndarray, k: int = 4) -> np.ndarray:
    rest = (1 - top)[:, None] / (k - 1) * np.ones((1, k - 1))
    return np.column_stack([top, rest])


def test_nn_attack_learns_a_separable_shadow_and_is_deterministic():
    rng = np.random.default_rng(0)
    members = confidence_features(_probs(rng.uniform(0.9, 1.0, 80)), 3)
    nonmembers = confidence_features(_probs(rng.uniform(0.3, 0.6, 40)), 3)
    net = fit_attack(members, nonmembers, hidden=16, epochs=300, lr=0.05, seed=1)
    m, n = attack_scores(net, members), attack_scores(net, nonmembers)
    metrics = attack_metrics(m, n, 0.5)
    assert metrics["auc"] == 1.0
    assert metrics["p_err"] < 0.05
    again = fit_attack(members, nonmembers, hidden=16, epochs=300, lr=0.05, seed=1)
    np.testing.assert_array_equal(attack_scores(again, members), m)


def test_per_class_threshold_beats_global_threshold_on_class_dependent_losses():
    # class 0: members 0.1, non-members 0.3; class 1: members 1.0, non-members 2.0
    members = {"loss": np.array([0.1, 0.1, 1.0, 1.0]), "y": np.array([0, 0, 1, 1])}
    nonmembers = {"loss": np.array([0.3, 0.3, 2.0, 2.0]), "y": np.array([0, 0, 1, 1])}
    for d in (members, nonmembers):
        d["probs"] = _probs(np.exp(-d["loss"]), 2)[:, [0, 1]]
    torch.manual_seed(0)
    net = fit_attack(np.ones((2, 2)), np.zeros((2, 2)), hidden=4, epochs=5, lr=0.01, seed=0)
    metrics, identified = evaluate_attacks(members, nonmembers, net, top_k=2)
    # global threshold = mean member loss 0.55: class-0 non-members (0.3) look like members and
    # class-1 members (1.0) like non-members, so the attack is no better than a coin
    lt = metrics["loss_threshold"]
    assert (lt["fpr"], lt["fnr"], lt["p_err"], lt["advantage"]) == pytest.approx((0.5, 0.5, 0.5, 0.0))
    assert lt["max_advantage"] == pytest.approx(0.5)  # no single loss threshold separates both classes
    assert lt["auc"] == pytest.approx(0.75)
    ct = metrics["class_threshold"]
    assert (ct["fpr"], ct["fnr"], ct["p_err"], ct["advantage"], ct["auc"]) == pytest.approx((0, 0, 0, 1, 1))
    mem_hit, non_hit = identified["loss_threshold"]
    assert list(mem_hit) == [True, True, False, False]
    assert list(non_hit) == [False, False, True, True]
    assert set(metrics) == {"loss_threshold", "class_threshold", "nn_shadow"}
