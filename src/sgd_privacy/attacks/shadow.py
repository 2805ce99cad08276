"""Membership attacks of the DP study beyond the global loss threshold: one loss threshold per class,
and a neural-network attack on sorted confidence vectors trained on one shadow model (Salem et al.).

Every attack yields a member score (larger = "member") and a decision rule "member if score >=
threshold", so all metrics come from `sgd_privacy.attacks.metrics`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .metrics import auc, max_advantage, threshold_metrics

ATTACKS = ("loss_threshold", "class_threshold", "nn_shadow")


def class_thresholds(member_losses: np.ndarray, member_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Each class's mean training loss (the attacker knows per-class training losses); the overall mean for
    classes without training examples."""
    losses = np.asarray(member_losses, dtype=np.float64)
    labels = np.asarray(member_labels)
    counts = np.bincount(labels, minlength=n_classes)
    sums = np.bincount(labels, weights=losses, minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), losses.mean())


def class_threshold_scores(losses: np.ndarray, labels: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Margin tau[y] - loss: "member" (score >= 0) when the loss is at most its class's threshold."""
    return thresholds[np.asarray(labels)] - np.asarray(losses, dtype=np.float64)


def confidence_features(probs: np.ndarray, top_k: int) -> np.ndarray:
    """The `top_k` largest class probabilities of each row, in decreasing order (Salem et al.'s features)."""
    p = np.asarray(probs, dtype=np.float64)
    return -np.sort(-p, axis=1)[:, : min(top_k, p.shape[1])]


class AttackNet(nn.Module):
    """Binary classifier on confidence features: one hidden ReLU layer, one logit (member)."""

    def __init__(self, n_features: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Member logits, shape (N,)."""
        return self.net(x).squeeze(-1)


def fit_attack(
    member_features: np.ndarray,
    nonmember_features: np.ndarray,
    hidden: int,
    epochs: int,
    lr: float,
    seed: int,
) -> AttackNet:
    """Train the attack on a shadow model's confidence features (full-batch Adam, classes weighted equally)."""
    x = torch.as_tensor(np.concatenate([member_features, nonmember_features]), dtype=torch.float32)
    y = torch.cat([torch.ones(len(member_features)), torch.zeros(len(nonmember_features))])
    pos_weight = torch.tensor(len(nonmember_features) / max(len(member_features), 1))
    gen = torch.Generator().manual_seed(seed)
    net = AttackNet(x.shape[1], hidden)
    with torch.no_grad():
        for p in net.parameters():
            bound = 1.0 / np.sqrt(p.shape[-1])
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    for _ in range(epochs):
        opt.zero_grad()
        loss_fn(net(x), y).backward()
        opt.step()
    return net.eval()


def attack_scores(net: AttackNet, features: np.ndarray) -> np.ndarray:
    """The attack's probability that each row is a member."""
    with torch.no_grad():
        return torch.sigmoid(net(torch.as_tensor(features, dtype=torch.float32))).double().numpy()


def attack_metrics(member_scores: np.ndarray, nonmember_scores: np.ndarray, threshold: float) -> dict[str, float]:
    """FPR, FNR, P_err and advantage of "member if score >= threshold", plus the best-threshold advantage and AUC."""
    m = threshold_metrics(member_scores, nonmember_scores, threshold)
    return {
        "fpr": float(m["fpr"]),
        "fnr": float(m["fnr"]),
        "p_err": float(m["p_err"]),
        "advantage": float(m["advantage"]),
        "max_advantage": max_advantage(member_scores, nonmember_scores),
        "auc": float(auc(member_scores, nonmember_scores)),
    }


def evaluate_attacks(
    members: dict[str, np.ndarray],
    nonmembers: dict[str, np.ndarray],
    attack_net: AttackNet,
    top_k: int,
) -> tuple[dict[str, dict[str, float]], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The three attacks on one model. `members`/`nonmembers` hold per-example `loss`, `probs` and `y`.

    Returns {attack: metrics} and {attack: (members identified, non-members identified)} as boolean
    arrays (an example is identified when the attack classifies its membership correctly)."""
    n_classes = members["probs"].shape[1]
    tau = float(np.mean(members["loss"]))
    per_class = class_thresholds(members["loss"], members["y"], n_classes)
    scored = {
        "loss_threshold": (-members["loss"], -nonmembers["loss"], -tau),
        "class_threshold": (
            class_threshold_scores(members["loss"], members["y"], per_class),
            class_threshold_scores(nonmembers["loss"], nonmembers["y"], per_class),
            0.0,
        ),
        "nn_shadow": (
            attack_scores(attack_net, confidence_features(members["probs"], top_k)),
            attack_scores(attack_net, confidence_features(nonmembers["probs"], top_k)),
            0.5,
        ),
    }
    metrics, identified = {}, {}
    for name, (mem, non, threshold) in scored.items():
        metrics[name] = attack_metrics(mem, non, threshold)
        identified[name] = (mem >= threshold, non < threshold)
    return metrics, identified
